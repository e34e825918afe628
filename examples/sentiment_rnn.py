"""A small recurrent network with an embedding, trained with Adam on a synthetic sentiment task.

The task is synthetic, so it runs offline: sentences of 12 tokens from a 60-word vocabulary,
where words 0-9 are positive, 10-19 negative and the rest neutral. Each sentence holds one to
three sentiment words, and its label is the polarity of the *last* one ("good ... but bad" is
negative), so word counts are not enough and the network has to read in order.

The model embeds each token (16 dimensions), runs an Elman cell
``h_t = tanh(W_x e_t + W_h h_{t-1} + b)`` with 32 hidden units over the sentence with
``jax.lax.scan``, and reads a logit from the last state. ``adamjax.adam`` trains it on
mini-batches of 64.

    .venv/bin/python examples/sentiment_rnn.py            # 10 epochs
    .venv/bin/python examples/sentiment_rnn.py --quick    # 3 epochs
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
from tqdm import trange

import adamjax

OUT = Path(__file__).resolve().parent / "out"
Params = dict[str, jax.Array]
VOCAB, LENGTH, EMBED, HIDDEN, BATCH = 60, 12, 16, 32, 64
POSITIVE, NEGATIVE = range(0, 10), range(10, 20)


def make_sentences(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` token sequences of shape ``(n, LENGTH)`` and their labels (1: positive)."""
    tokens = rng.integers(20, VOCAB, size=(n, LENGTH))
    labels = np.zeros(n, np.int32)
    for i in range(n):
        count = rng.integers(1, 4)
        places = np.sort(rng.choice(LENGTH, size=count, replace=False))
        polarity = rng.integers(0, 2, size=count)  # 1: positive
        tokens[i, places] = np.where(
            polarity == 1, rng.integers(0, 10, count), rng.integers(10, 20, count)
        )
        labels[i] = polarity[-1]
    return tokens.astype(np.int32), labels


def init_rnn(seed: int) -> Params:
    """Normal embeddings; input and recurrent kernels scaled by 1/sqrt(fan in)."""
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, ...], scale: float) -> jax.Array:
        return jnp.asarray(rng.normal(size=shape) * scale, jnp.float32)

    return {
        "embedding": normal((VOCAB, EMBED), 1.0),
        "w_x": normal((EMBED, HIDDEN), 1.0 / np.sqrt(EMBED)),
        "w_h": normal((HIDDEN, HIDDEN), 1.0 / np.sqrt(HIDDEN)),
        "b": jnp.zeros(HIDDEN),
        "w_out": normal((HIDDEN, 1), 1.0 / np.sqrt(HIDDEN)),
        "b_out": jnp.zeros(1),
    }


def hidden_states(params: Params, tokens: jax.Array) -> jax.Array:
    """The cell's state after each token: shape ``(LENGTH, batch, HIDDEN)``."""
    embedded = params["embedding"][tokens]  # (batch, LENGTH, EMBED)

    def cell(h: jax.Array, e: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = jnp.tanh(e @ params["w_x"] + h @ params["w_h"] + params["b"])
        return h, h

    h0 = jnp.zeros((tokens.shape[0], HIDDEN))
    return jax.lax.scan(cell, h0, jnp.swapaxes(embedded, 0, 1))[1]


def readout(params: Params, h: jax.Array) -> jax.Array:
    return (h @ params["w_out"] + params["b_out"])[..., 0]


def loss_fn(params: Params, tokens: jax.Array, labels: jax.Array) -> jax.Array:
    """Binary cross-entropy on the logit read from the last state."""
    z = readout(params, hidden_states(params, tokens)[-1])
    return jnp.mean(jnp.logaddexp(0.0, z) - labels * z)


@jax.jit
def accuracy(params: Params, tokens: jax.Array, labels: jax.Array) -> jax.Array:
    z = readout(params, hidden_states(params, tokens)[-1])
    return jnp.mean((z > 0) == (labels == 1))


def train(params: Params, tokens: np.ndarray, labels: np.ndarray, epochs: int, lr: float):
    """Mini-batch Adam, one compiled ``scan`` per epoch; mean training loss of each epoch."""
    optimizer = adamjax.adam(lr)
    xs, ys = jnp.asarray(tokens), jnp.asarray(labels, jnp.float32)

    @jax.jit
    def epoch(carry: Any, batches: jax.Array) -> tuple[Any, jax.Array]:
        def batch_step(carry: Any, idx: jax.Array) -> tuple[Any, jax.Array]:
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, xs[idx], ys[idx])
            updates, state = optimizer.update(grads, state, params)
            return (adamjax.apply_updates(params, updates), state), loss

        carry, losses = jax.lax.scan(batch_step, carry, batches)
        return carry, jnp.mean(losses)

    rng = np.random.default_rng(1)
    n_batches = len(tokens) // BATCH
    carry, history = (params, optimizer.init(params)), []
    for _ in trange(epochs, desc="epochs", leave=False, disable=not sys.stderr.isatty()):
        batches = rng.permutation(len(tokens))[: n_batches * BATCH].reshape(n_batches, BATCH)
        carry, loss = epoch(carry, jnp.asarray(batches))
        history.append(float(loss))
    return carry[0], history


def plot(history: list[float], params: Params, tokens: np.ndarray, out: Path) -> Path:
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_loss, ax_read = fig.subplots(1, 2)
    ax_loss.plot(np.arange(1, len(history) + 1), history, "o-")
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="training")
    mixed = np.isin(tokens, POSITIVE).any(1) & np.isin(tokens, NEGATIVE).any(1)
    shown = tokens[mixed][:3]  # sentences holding both polarities: the reading flips
    states = hidden_states(params, jnp.asarray(shown))
    p_positive = np.asarray(jax.nn.sigmoid(readout(params, states)))  # (LENGTH, 3)
    for j in range(len(shown)):
        line = ax_read.plot(np.arange(1, LENGTH + 1), p_positive[:, j], "-", lw=1.5)[0]
        for t, token in enumerate(shown[j]):
            if token in POSITIVE or token in NEGATIVE:
                mark = "^" if token in POSITIVE else "v"
                ax_read.plot(t + 1, p_positive[t, j], mark, color=line.get_color(), ms=9)
    ax_read.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax_read.set(
        xlabel="tokens read",
        ylabel="p(positive) read from the state",
        title="test sentences with both polarities (^ positive word, v negative)",
        ylim=(-0.02, 1.02),
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sentiment_rnn.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--quick", action="store_true", help="3 epochs")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else args.epochs

    rng = np.random.default_rng(0)
    x_train, y_train = make_sentences(4000, rng)
    x_test, y_test = make_sentences(1000, rng)
    params, history = train(init_rnn(0), x_train, y_train, epochs, args.lr)
    for i, loss in enumerate(history):
        print(f"epoch {i + 1:2d}  loss {loss:.4f}")
    # what counting words would get: the majority polarity, ties read as positive
    counts = np.isin(x_test, POSITIVE).sum(1) - np.isin(x_test, NEGATIVE).sum(1)
    print(f"counting sentiment words, test accuracy {np.mean((counts >= 0) == y_test):.4f}")
    score = float(accuracy(params, jnp.asarray(x_test), jnp.asarray(y_test)))
    print(f"test accuracy {score:.4f}")
    print(f"saved {plot(history, params, x_test, args.out)}")


if __name__ == "__main__":
    main()
