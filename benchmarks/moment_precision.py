r"""Training quality with bfloat16 moments (``mu_dtype`` / ``nu_dtype``) against float32 moments.

``adamjax.adam`` with moments stored in float32 or bfloat16 (arithmetic in float32), from
several seeds, on the quickstart's make_moons MLP (full batch, lr 0.01, 1000 epochs) and a
digits 64-64-10 ReLU MLP (minibatches of 64, lr 1e-3, 40 epochs); then :math:`v \leftarrow b_2
v + (1 - b_2) g^2` stored in bfloat16 on gradients whose scale drops tenfold at step 1000.
docs/performance.md describes the tables.

    python -m benchmarks.moment_precision [--quick] [--plot docs/moment_precision.png]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import adamjax
from benchmarks import harness
from examples import _moons

Params = dict[str, jax.Array]
BF16 = jnp.bfloat16
MOMENTS: dict[str, tuple[Any, Any]] = {
    "float32 m, v": (None, None),
    "bfloat16 m": (BF16, None),
    "bfloat16 v": (None, BF16),
    "bfloat16 m, v": (BF16, BF16),
}


@dataclass(frozen=True)
class Task:
    name: str
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array]  # x_train, y_train, x_test, y_test
    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, jax.Array, jax.Array], jax.Array]
    accuracy: Callable[[Params, jax.Array, jax.Array], jax.Array]
    learning_rate: float
    epochs: int
    batch_size: int | None  # None: full batch


def moons_task(epochs: int) -> Task:
    x_tr, x_te, y_tr, y_te = _moons.load_moons()
    data = (x_tr, y_tr, x_te, y_te)
    name = "make_moons MLP 2-10-1"
    return Task(name, data, _moons.init_mlp, _moons.loss_fn, _moons.accuracy, 0.01, epochs, None)


def digits_task(epochs: int) -> Task:
    x, y = load_digits(return_X_y=True)
    split = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    x_tr, x_te, y_tr, y_te = (np.asarray(a) for a in split)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std

    def init(key: jax.Array) -> Params:
        k1, k2 = jax.random.split(key)
        w1 = (2 / 64) ** 0.5 * jax.random.normal(k1, (64, 64))
        return {"w1": w1, "b1": jnp.zeros(64), "w2": 0.125 * jax.random.normal(k2, (64, 10)),
                "b2": jnp.zeros(10)}  # fmt: skip

    def logits(p: Params, x: jax.Array) -> jax.Array:
        return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        z = logits(p, x)
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0])

    def accuracy(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean(jnp.argmax(logits(p, x), axis=1) == y)

    data = (jnp.asarray(x_tr, jnp.float32), jnp.asarray(y_tr, jnp.int32),
            jnp.asarray(x_te, jnp.float32), jnp.asarray(y_te, jnp.int32))  # fmt: skip
    return Task("digits MLP 64-64-10", data, init, loss, accuracy, 1e-3, epochs, 64)


def batches(task: Task, seed: int) -> np.ndarray:
    """Row indices of every step's minibatch: (steps, batch), reshuffled every epoch."""
    n = task.data[0].shape[0]
    if task.batch_size is None:
        return np.tile(np.arange(n), (task.epochs, 1))
    rng, per_epoch = np.random.default_rng(seed), n // task.batch_size
    order = [rng.permutation(n)[: per_epoch * task.batch_size] for _ in range(task.epochs)]
    return np.concatenate(order).reshape(-1, task.batch_size)


def train(task: Task, mu_dtype: Any, nu_dtype: Any, seed: int) -> dict[str, Any]:
    """One run: the training-batch loss of every step, final metrics, state bytes."""
    x_tr, y_tr, x_te, y_te = task.data
    optimizer = adamjax.adam(task.learning_rate, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    params = task.init(jax.random.key(seed))
    state = optimizer.init(params)

    def step(carry: tuple[Params, Any], rows: jax.Array) -> tuple[Any, jax.Array]:
        params, state = carry
        loss, grads = jax.value_and_grad(task.loss)(params, x_tr[rows], y_tr[rows])
        updates, state = optimizer.update(grads, state, params)
        return (adamjax.apply_updates(params, updates), state), loss

    run = jax.jit(lambda carry, rows: jax.lax.scan(step, carry, rows))
    (params, _), losses = run((params, state), jnp.asarray(batches(task, seed)))
    return {
        "losses": np.asarray(losses),
        "train_loss": float(task.loss(params, x_tr, y_tr)),
        "test_accuracy": float(task.accuracy(params, x_te, y_te)),
        "state_bytes": harness.nbytes(state),
    }


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    rows = []
    for task, by_moments in results.items():
        for moments, runs in by_moments.items():
            loss, acc = (
                np.array([r[key] for r in runs]) for key in ("train_loss", "test_accuracy")
            )
            gap = np.mean([
                np.max(np.abs(r["losses"] - f["losses"]) / np.abs(f["losses"]))
                for r, f in zip(runs, by_moments["float32 m, v"], strict=True)
            ])  # fmt: skip
            rows.append([task, moments, f"{runs[0]['state_bytes']:,}",
                         f"{loss.mean():.4f} ± {loss.std():.4f}",
                         f"{acc.mean():.4f} ± {acc.std():.4f}", f"{gap:.2%}"])  # fmt: skip
    columns = ("task", "moments", "state bytes", "final train loss", "test accuracy",
               "loss-curve gap")  # fmt: skip
    return harness.markdown(columns, rows)


def smooth(curve: np.ndarray, width: int) -> np.ndarray:
    return np.convolve(curve, np.ones(width) / width, mode="valid") if width > 1 else curve


def plot(results: dict[str, dict[str, list[dict]]], out: str) -> None:
    """Mean loss curves (top) and their ratio to the float32 run's (bottom), per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(6 * len(results), 6.5), sharex="col")
    axes = np.asarray(axes).reshape(2, -1)
    for column, (task, by_moments) in enumerate(results.items()):
        top, bottom = axes[0, column], axes[1, column]
        reference = np.mean([r["losses"] for r in by_moments["float32 m, v"]], axis=0)
        width = 1 if len(reference) <= 1000 else 25  # minibatch losses are noisy: smooth them
        for moments, runs in by_moments.items():
            curve = smooth(np.mean([r["losses"] for r in runs], axis=0), width)
            top.plot(curve, label=moments, lw=1.2)
            bottom.plot(curve / smooth(reference, width), label=moments, lw=1.2)
        top.set(yscale="log", ylabel="training loss (mean over seeds)", title=task)
        top.legend(fontsize=8)
        bottom.axhline(1.0, color="black", lw=0.6)
        bottom.set_ylabel("loss / float32-moments loss")
        bottom.set_xlabel("step" + (f" (moving average of {width})" if width > 1 else ""))
    fig.tight_layout()
    harness.replace_atomically(out, lambda path: fig.savefig(path, dpi=110, format="png"))
    plt.close(fig)


def tracking_table(at: Sequence[int] = (999, 1500, 2999), drop_at: int = 1000) -> str:
    """Median second moment over 1000 coordinates, stored in float32 or bfloat16."""
    scale = jnp.where(jnp.arange(3000) < drop_at, 1.0, 0.1)[:, None]
    grads = scale * jax.random.normal(jax.random.key(0), (3000, 1000))
    rows = []
    for b2 in (0.999, 0.99):
        for name, dtype in (("float32", jnp.float32), ("bfloat16", BF16)):

            def step(v: jax.Array, g: jax.Array, dtype: Any = dtype, b2: float = b2) -> Any:
                v = (b2 * v.astype(jnp.float32) + (1 - b2) * g * g).astype(dtype)
                return v, jnp.median(v.astype(jnp.float32))

            curve = np.asarray(jax.lax.scan(step, jnp.zeros(1000, dtype), grads)[1])
            rows.append([b2, name, *(f"{curve[t]:.4f}" for t in at)])
    return harness.markdown(["b2", "stored in", *(f"median v at step {t + 1}" for t in at)], rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 seeds, short runs")
    parser.add_argument("--plot", metavar="PNG", help="also save the mean loss curves")
    args = parser.parse_args(argv)
    seeds = range(2 if args.quick else args.seeds)
    tasks = [moons_task(100 if args.quick else 1000), digits_task(3 if args.quick else 40)]
    results = {
        task.name: {m: [train(task, *MOMENTS[m], seed) for seed in seeds] for m in MOMENTS}
        for task in tasks
    }
    print(f"{len(seeds)} seeds; mean ± standard deviation over seeds\n")
    print(table(results))
    print("\nSecond moment of a gradient stream whose scale drops 10x at step 1000:\n")
    print(tracking_table())
    if args.plot:
        plot(results, args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
