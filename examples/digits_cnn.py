"""A small convolutional network on scikit-learn's digits, trained with Adam and with AdamW.

The data are the 8x8 digits that ship with scikit-learn (1797 images, no download). The
network: two 3x3 convolutions (``jax.lax.conv_general_dilated``) with ReLU and 2x2 max pooling,
then two dense layers; mini-batches of 32; the same initialisation trained with Adam and with
AdamW (weight decay on the kernels only, through a mask). Test accuracy is reported on a
held-out quarter of the images.

``adamjax.adam`` is ``adamjax.adamw`` with ``weight_decay=0`` exactly (the decay term adds
``0 * params``), and adamjax hyperparameters are data: the training step takes the weight
decay as an argument and builds the optimizer inside, so both runs share one compilation.

    .venv/bin/python examples/digits_cnn.py            # 15 epochs
    .venv/bin/python examples/digits_cnn.py --quick    # 3 epochs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import trange

import adamjax

OUT = Path(__file__).resolve().parent / "out"
Params = dict[str, jax.Array]
BATCH = 32


def load(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Images as ``(n, 8, 8, 1)`` float32 in [0, 1], labels as int32; 75/25 stratified split."""
    pixels, labels = load_digits(return_X_y=True)
    images = (np.asarray(pixels) / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    labels = np.asarray(labels).astype(np.int32)
    split = train_test_split(images, labels, test_size=0.25, stratify=labels, random_state=seed)
    return tuple(np.asarray(part) for part in split)


def init_cnn(seed: int) -> Params:
    """He-normal kernels (HWIO for convolutions), zero biases, float32."""
    rng = np.random.default_rng(seed)

    def he(shape: tuple[int, ...], fan_in: int) -> jax.Array:
        return jnp.asarray(rng.normal(size=shape) * np.sqrt(2.0 / fan_in), jnp.float32)

    return {
        "conv1": he((3, 3, 1, 16), 9),
        "conv1_b": jnp.zeros(16),
        "conv2": he((3, 3, 16, 32), 9 * 16),
        "conv2_b": jnp.zeros(32),
        "dense1": he((2 * 2 * 32, 64), 2 * 2 * 32),
        "dense1_b": jnp.zeros(64),
        "dense2": he((64, 10), 64),
        "dense2_b": jnp.zeros(10),
    }


def conv(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """3x3 convolution, stride 1, 'SAME' padding, NHWC images and HWIO kernels."""
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + bias


def max_pool(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2 (NHWC, even height and width)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@jax.jit
def logits(params: Params, images: jax.Array) -> jax.Array:
    x = max_pool(jax.nn.relu(conv(images, params["conv1"], params["conv1_b"])))  # 4x4x16
    x = max_pool(jax.nn.relu(conv(x, params["conv2"], params["conv2_b"])))  # 2x2x32
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(x @ params["dense1"] + params["dense1_b"])
    return x @ params["dense2"] + params["dense2_b"]


def loss_fn(params: Params, images: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy."""
    log_p = jax.nn.log_softmax(logits(params, images))
    return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))


def accuracy(params: Params, images: jax.Array, labels: jax.Array) -> float:
    return float(jnp.mean(jnp.argmax(logits(params, images), axis=1) == labels))


def kernels_only(params: Params) -> dict[str, bool]:
    """Weight-decay mask: decay kernels, not biases."""
    return {name: not name.endswith("_b") for name in params}


def make_epoch(x: np.ndarray, y: np.ndarray, lr: float) -> Any:
    """One pass over the data as a compiled ``scan`` over mini-batches of indices.

    The weight decay is an argument: the optimizer is built inside the step from it.
    """
    xs, ys = jnp.asarray(x), jnp.asarray(y)

    @jax.jit
    def epoch(carry: Any, batches: jax.Array, weight_decay: jax.Array) -> tuple[Any, jax.Array]:
        optimizer = adamjax.adamw(lr, weight_decay=weight_decay, mask=kernels_only)

        def batch_step(carry: Any, idx: jax.Array) -> tuple[Any, jax.Array]:
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, xs[idx], ys[idx])
            updates, state = optimizer.update(grads, state, params)
            return (adamjax.apply_updates(params, updates), state), loss

        carry, losses = jax.lax.scan(batch_step, carry, batches)
        return carry, jnp.mean(losses)

    return epoch


def train(
    epoch: Any, params: Params, weight_decay: float, n: int, epochs: int, name: str
) -> tuple[Params, list[float]]:
    """``epochs`` shuffled passes over ``n`` examples; the mean training loss of each."""
    state = adamjax.adamw(weight_decay=weight_decay, mask=kernels_only).init(params)
    carry, history = (params, state), []
    rng = np.random.default_rng(0)  # the same shuffles for every run
    n_batches = n // BATCH
    for _ in trange(epochs, desc=name, leave=False, disable=not sys.stderr.isatty()):
        batches = rng.permutation(n)[: n_batches * BATCH].reshape(n_batches, BATCH)
        carry, loss = epoch(carry, jnp.asarray(batches), jnp.float32(weight_decay))
        history.append(float(loss))
    return carry[0], history


def plot(histories: dict[str, list[float]], scores: dict[str, float], params, x, y, out: Path):
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    for name, history in histories.items():
        label = f"{name} (test accuracy {scores[name]:.3f})"
        ax.plot(np.arange(1, len(history) + 1), history, "o-", label=label)
    ax.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="digits CNN")
    ax.legend()
    rows, cols = 4, 6
    shown = x[: rows * cols, :, :, 0]
    predictions = np.asarray(jnp.argmax(logits(params, jnp.asarray(x[: rows * cols])), axis=1))
    padded = np.pad(shown, ((0, 0), (3, 1), (1, 1)), constant_values=0.0)  # room for labels
    mosaic = padded.reshape(rows, cols, 12, 10).transpose(0, 2, 1, 3).reshape(rows * 12, cols * 10)
    grid = fig.add_subplot(1, 2, 2)
    grid.imshow(mosaic, cmap="gray_r", interpolation="nearest")
    for i, label in enumerate(predictions):
        color = "tab:green" if label == y[i] else "tab:red"
        grid.text((i % cols) * 10 + 5, (i // cols) * 12 + 1, str(label), color=color, ha="center")
    grid.set_title("test images, AdamW's predictions")
    grid.axis("off")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "digits_cnn.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--quick", action="store_true", help="3 epochs")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else args.epochs

    x_train, x_test, y_train, y_test = load()
    params0 = init_cnn(0)
    epoch = make_epoch(x_train, y_train, args.lr)
    histories, scores, trained = {}, {}, {}
    for name, weight_decay in (("Adam", 0.0), ("AdamW", args.weight_decay)):
        trained[name], histories[name] = train(
            epoch, params0, weight_decay, len(x_train), epochs, name
        )
        scores[name] = accuracy(trained[name], jnp.asarray(x_test), jnp.asarray(y_test))
    for epoch in range(epochs):
        losses = "  ".join(f"{name} loss {h[epoch]:.4f}" for name, h in histories.items())
        print(f"epoch {epoch + 1:2d}  {losses}")
    for name, score in scores.items():
        print(f"{name} test accuracy {score:.4f}")
    print(f"saved {plot(histories, scores, trained['AdamW'], x_test, y_test, args.out)}")


if __name__ == "__main__":
    main()
