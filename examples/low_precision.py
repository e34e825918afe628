"""bfloat16 params without a float32 master copy: plain, and with adamjax.compensated.

A 64-64-10 ReLU MLP on scikit-learn's digits (1797 8x8 images, standardized pixels, a 75/25
stratified split), trained with ``adamjax.adam(3e-4)`` on minibatches of 64, three ways from the
same initialisation and the same batches:

- float32 params;
- bfloat16 params, plain: an Adam step of about ``3e-4`` is below half a unit in the last place
  of a bfloat16 weight of magnitude 0.125 or more (units of ``2**-10`` from 0.125 up), so those
  weights' steps round away and they stop moving;
- bfloat16 params with ``adamjax.compensated(adamjax.adam(3e-4))``: a bfloat16 buffer keeps what
  each rounding lost and adds it back, so the steps add up. No float32 copy of the params
  exists anywhere (the forward pass runs in bfloat16 too; only the loss is summed in float32).

It prints each run's final training loss (on the whole training set) and test accuracy, and the
share of the gap between plain bfloat16 and float32 final losses that compensation closes; the
training curves go to ``low_precision.png`` in ``--out`` (default ``examples/out/``).

    .venv/bin/python examples/low_precision.py            # 60 epochs
    .venv/bin/python examples/low_precision.py --quick    # 15 epochs
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
Data = tuple[jax.Array, jax.Array, jax.Array, jax.Array]  # x_train, y_train, x_test, y_test
BATCH = 64
LEARNING_RATE = 3e-4


def load(seed: int = 0) -> Data:
    """Standardized float32 pixels (training mean and spread) and int32 labels, 75/25 split."""
    pixels, labels = load_digits(return_X_y=True)
    split = train_test_split(pixels, labels, test_size=0.25, random_state=seed, stratify=labels)
    x_train, x_test, y_train, y_test = (np.asarray(part) for part in split)
    mean, spread = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    x_train, x_test = (x_train - mean) / spread, (x_test - mean) / spread
    return (jnp.asarray(x_train, jnp.float32), jnp.asarray(y_train, jnp.int32),
            jnp.asarray(x_test, jnp.float32), jnp.asarray(y_test, jnp.int32))  # fmt: skip


def init_mlp(seed: int, dtype: Any) -> Params:
    """He-normal weights and zero biases, drawn in float64 and rounded once to ``dtype``."""
    rng = np.random.default_rng(seed)
    params = {
        "w1": rng.normal(size=(64, 64)) * np.sqrt(2.0 / 64),
        "b1": np.zeros(64),
        "w2": rng.normal(size=(64, 10)) * np.sqrt(1.0 / 64),
        "b2": np.zeros(10),
    }
    return {name: jnp.asarray(value).astype(dtype) for name, value in params.items()}


def logits(params: Params, x: jax.Array) -> jax.Array:
    """The network in the params' dtype (bfloat16 params: a bfloat16 forward pass)."""
    dtype = params["w1"].dtype
    hidden = jax.nn.relu(x.astype(dtype) @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy, summed in float32."""
    z = logits(params, x).astype(jnp.float32)
    picked = jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked)


def accuracy(params: Params, x: jax.Array, y: jax.Array) -> float:
    return float(jnp.mean(jnp.argmax(logits(params, x), axis=1) == y))


def batches(n: int, epochs: int, seed: int = 0) -> np.ndarray:
    """Row indices of every step's minibatch, ``(epochs * (n // BATCH), BATCH)``."""
    rng, per_epoch = np.random.default_rng(seed), n // BATCH
    order = [rng.permutation(n)[: per_epoch * BATCH] for _ in range(epochs)]
    return np.concatenate(order).reshape(-1, BATCH)


def make_epoch(optimizer: Any, data: Data) -> Any:
    """One epoch as a jitted ``scan``: ``(params, state), rows -> (params, state), losses``."""
    x_train, y_train = data[0], data[1]

    def step(carry: tuple[Params, Any], rows: jax.Array) -> tuple[Any, jax.Array]:
        params, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, x_train[rows], y_train[rows])
        updates, state = optimizer.update(grads, state, params)
        return (adamjax.apply_updates(params, updates), state), loss

    return jax.jit(lambda carry, rows: jax.lax.scan(step, carry, rows))


def train(optimizer: Any, params: Params, data: Data, epochs: int, name: str) -> dict[str, Any]:
    """Train for ``epochs`` (the same batches for every run): per-epoch mean minibatch losses,
    the final loss on the whole training set, the test accuracy and the final params."""
    epoch, state = make_epoch(optimizer, data), optimizer.init(params)
    steps = batches(int(data[0].shape[0]), epochs).reshape(epochs, -1, BATCH)
    curve = []
    for e in trange(epochs, desc=name, leave=False, disable=not sys.stderr.isatty()):
        (params, state), losses = epoch((params, state), jnp.asarray(steps[e]))
        curve.append(float(jnp.mean(losses)))
    return {
        "curve": curve,
        "train_loss": float(loss_fn(params, data[0], data[1])),
        "test_accuracy": accuracy(params, data[2], data[3]),
        "params": params,
    }


RUNS = {
    "float32 params": (jnp.float32, False),
    "bfloat16 params, plain": (jnp.bfloat16, False),
    "bfloat16 params, compensated": (jnp.bfloat16, True),
}


def plot(results: dict[str, dict[str, Any]], out: Path) -> Path:
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for name, result in results.items():
        label = f"{name}: final {result['train_loss']:.4f}, test {result['test_accuracy']:.3f}"
        curve = result["curve"]
        ax.plot(np.arange(1, len(curve) + 1), curve, label=label)
    ax.set(xlabel="epoch", ylabel="mean training loss (minibatches)", yscale="log",
           title=f"digits MLP 64-64-10, adamjax.adam({LEARNING_RATE:g})")  # fmt: skip
    ax.legend()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "low_precision.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="15 epochs")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    epochs = 15 if args.quick else args.epochs

    data = load()
    results = {}
    for name, (dtype, compensate) in RUNS.items():
        optimizer = adamjax.adam(LEARNING_RATE)
        if compensate:
            optimizer = adamjax.compensated(optimizer)
        results[name] = train(optimizer, init_mlp(0, dtype), data, epochs, name)
        leaves = jax.tree.leaves(results[name]["params"])
        assert all(leaf.dtype == dtype for leaf in leaves)  # no float32 copy came back
    for name, result in results.items():
        print(f"{name:30s} final train loss {result['train_loss']:.4f}  "
              f"test accuracy {result['test_accuracy']:.4f}")  # fmt: skip
    f32, plain, comp = (results[name]["train_loss"] for name in RUNS)
    print(f"compensation closes {(plain - comp) / (plain - f32):.1%} of the bfloat16-to-float32 "
          f"final-loss gap ({plain:.4f} -> {comp:.4f}, float32 {f32:.4f})")  # fmt: skip
    print(f"saved {plot(results, args.out)}")


if __name__ == "__main__":
    main()
