r"""Training quality with bfloat16 moments (``mu_dtype`` / ``nu_dtype``) against float32 moments.

Two small tasks, each trained from several seeds with ``adamjax.adam`` whose moments are stored
in float32 (the default), bfloat16 first moment, bfloat16 second moment, or both:

* make_moons (1000 points, noise 0.2, 70/30 split): the quickstart's 2-10-1 tanh MLP,
  full-batch, learning rate 0.01, 1000 epochs (as ``examples/quickstart.py``).
* digits (scikit-learn ``load_digits``: 1797 8x8 images, 10 classes, 75/25 stratified split,
  features standardized): a 64-64-10 ReLU MLP, minibatches of 64, learning rate 1e-3,
  40 epochs.

Arithmetic always runs in float32; only the stored moments are rounded to bfloat16 (8 bits of
mantissa) after every step. The table reports the optimizer-state bytes, the final training
loss and the test accuracy (mean and standard deviation over seeds), and how far the loss curve
strays from the float32 one (largest relative difference over the run, averaged over seeds).

A second table isolates the mechanism that matters for ``nu_dtype=bfloat16``: the moving
average :math:`v \leftarrow b_2 v + (1 - b_2) g^2` stored in bfloat16 after every step, for
1000 coordinates fed Gaussian gradients whose scale drops tenfold at step 1000. bfloat16 keeps
8 significant bits, so a value only changes when the update moves it by more than half a unit
in the last place (0.2% to 0.4%): with ``b2 = 0.999`` each step's decay (0.1%) rounds away and
:math:`v` can never decrease.

    python -m benchmarks.moment_precision                       # 5 seeds, full runs
    python -m benchmarks.moment_precision --plot docs/moment_precision.png
    python -m benchmarks.moment_precision --quick               # smoke test
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import adamjax

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
    """A dataset, a model and a training schedule."""

    name: str
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array]  # x_train, y_train, x_test, y_test
    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, jax.Array, jax.Array], jax.Array]
    accuracy: Callable[[Params, jax.Array, jax.Array], jax.Array]
    learning_rate: float
    epochs: int
    batch_size: int | None  # None: full batch


def _dense(key: jax.Array, n_in: int, n_out: int, scale: float) -> tuple[jax.Array, jax.Array]:
    return scale * jax.random.normal(key, (n_in, n_out)), jnp.zeros(n_out)


def moons_task(epochs: int) -> Task:
    x, y = make_moons(n_samples=1000, noise=0.2, random_state=42)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=42)

    def init(key: jax.Array) -> Params:
        k1, k2 = jax.random.split(key)
        (w1, b1), (w2, b2) = _dense(k1, 2, 10, 1.0), _dense(k2, 10, 1, 1.0)
        return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}

    def logits(p: Params, x: jax.Array) -> jax.Array:
        return (jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"])[:, 0]

    def loss(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        z = logits(p, x)
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    def accuracy(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean((logits(p, x) > 0) == (y > 0.5))

    x_tr, y_tr, x_te, y_te = (jnp.asarray(a, jnp.float32) for a in (x_tr, y_tr, x_te, y_te))
    data = (x_tr, y_tr, x_te, y_te)
    return Task("make_moons MLP 2-10-1", data, init, loss, accuracy, 0.01, epochs, None)


def digits_task(epochs: int) -> Task:
    x, y = load_digits(return_X_y=True)
    split = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    x_tr, x_te, y_tr, y_te = (np.asarray(a) for a in split)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std

    def init(key: jax.Array) -> Params:
        k1, k2 = jax.random.split(key)
        (w1, b1), (w2, b2) = _dense(k1, 64, 64, (2 / 64) ** 0.5), _dense(k2, 64, 10, 0.125)
        return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}

    def logits(p: Params, x: jax.Array) -> jax.Array:
        return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        z = logits(p, x)
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0])

    def accuracy(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean(jnp.argmax(logits(p, x), axis=1) == y)

    data = (
        jnp.asarray(x_tr, jnp.float32), jnp.asarray(y_tr, jnp.int32),
        jnp.asarray(x_te, jnp.float32), jnp.asarray(y_te, jnp.int32),
    )  # fmt: skip
    return Task("digits MLP 64-64-10", data, init, loss, accuracy, 1e-3, epochs, 64)


def _batches(task: Task, seed: int) -> np.ndarray:
    """Row indices of every step's minibatch: (steps, batch), reshuffled every epoch."""
    n = task.data[0].shape[0]
    if task.batch_size is None:
        return np.tile(np.arange(n), (task.epochs, 1))
    rng = np.random.default_rng(seed)
    per_epoch = n // task.batch_size
    order = [rng.permutation(n)[: per_epoch * task.batch_size] for _ in range(task.epochs)]
    return np.concatenate(order).reshape(-1, task.batch_size)


def train(task: Task, mu_dtype: Any, nu_dtype: Any, seed: int) -> dict[str, Any]:
    """One run; returns the per-step training-batch losses, final metrics and state bytes."""
    x_tr, y_tr, x_te, y_te = task.data
    optimizer = adamjax.adam(task.learning_rate, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    params = task.init(jax.random.key(seed))
    state = optimizer.init(params)

    @jax.jit
    def run(params: Params, state: Any, batches: jax.Array) -> tuple[Params, jax.Array]:
        def step(carry: tuple[Params, Any], rows: jax.Array) -> tuple[Any, jax.Array]:
            params, state = carry
            loss, grads = jax.value_and_grad(task.loss)(params, x_tr[rows], y_tr[rows])
            updates, state = optimizer.update(grads, state, params)
            return (adamjax.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(step, (params, state), batches)
        return params, losses

    params, losses = run(params, state, jnp.asarray(_batches(task, seed)))
    return {
        "losses": np.asarray(losses),
        "train_loss": float(task.loss(params, x_tr, y_tr)),
        "test_accuracy": float(task.accuracy(params, x_te, y_te)),
        "state_bytes": sum(int(leaf.nbytes) for leaf in jax.tree.leaves(state)),
    }


def evaluate(tasks: Sequence[Task], seeds: Sequence[int]) -> dict[str, dict[str, list[dict]]]:
    """task name -> moments name -> one result per seed."""
    results: dict[str, dict[str, list[dict]]] = {}
    jobs = [(t, m, s) for t in tasks for m in MOMENTS for s in seeds]
    for task, moments, seed in tqdm(jobs, desc="training", leave=False):
        run = train(task, *MOMENTS[moments], seed)
        results.setdefault(task.name, {}).setdefault(moments, []).append(run)
    return results


def _curve_gap(runs: list[dict], reference: list[dict]) -> float:
    """Largest relative difference of the loss curve from float32's, averaged over seeds."""
    gaps = [
        np.max(np.abs(r["losses"] - f["losses"]) / np.abs(f["losses"]))
        for r, f in zip(runs, reference, strict=True)
    ]
    return float(np.mean(gaps))


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    lines = [
        "| task | moments | state bytes | final train loss | test accuracy | loss-curve gap |",
        "|---|---|---|---|---|---|",
    ]
    for task, by_moments in results.items():
        reference = by_moments["float32 m, v"]
        for moments, runs in by_moments.items():
            loss = np.array([r["train_loss"] for r in runs])
            acc = np.array([r["test_accuracy"] for r in runs])
            lines.append(
                f"| {task} | {moments} | {runs[0]['state_bytes']:,} | "
                f"{loss.mean():.4f} ± {loss.std():.4f} | {acc.mean():.4f} ± {acc.std():.4f} | "
                f"{_curve_gap(runs, reference):.2%} |"
            )
    return "\n".join(lines)


def _smooth(curve: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return curve
    return np.convolve(curve, np.ones(width) / width, mode="valid")


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
            curve = np.mean([r["losses"] for r in runs], axis=0)
            top.plot(_smooth(curve, width), label=moments, lw=1.2)
            ratio = _smooth(curve, width) / _smooth(reference, width)
            bottom.plot(ratio, label=moments, lw=1.2)
        top.set_yscale("log")
        top.set_ylabel("training loss (mean over seeds)")
        top.set_title(task)
        top.legend(fontsize=8)
        bottom.axhline(1.0, color="black", lw=0.6)
        bottom.set_ylabel("loss / float32-moments loss")
        bottom.set_xlabel("step" + (f" (moving average of {width})" if width > 1 else ""))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def nu_tracking(b2: float, steps: int = 3000, drop_at: int = 1000) -> dict[str, np.ndarray]:
    """Median second moment over 1000 coordinates, stored in float32 or bfloat16, every step."""
    scale = jnp.where(jnp.arange(steps) < drop_at, 1.0, 0.1)[:, None]
    grads = scale * jax.random.normal(jax.random.key(0), (steps, 1000))
    curves = {}
    for name, dtype in (("float32", jnp.float32), ("bfloat16", BF16)):

        def step(v: jax.Array, g: jax.Array, dtype: Any = dtype) -> tuple[jax.Array, jax.Array]:
            v = (b2 * v.astype(jnp.float32) + (1 - b2) * g * g).astype(dtype)
            return v, jnp.median(v.astype(jnp.float32))

        curves[name] = np.asarray(jax.lax.scan(step, jnp.zeros(1000, dtype), grads)[1])
    return curves


def tracking_table(at: Sequence[int] = (999, 1500, 2999)) -> str:
    lines = [
        "| b2 | stored in | " + " | ".join(f"median v at step {t + 1}" for t in at) + " |",
        "|---|---|" + "---|" * len(at),
    ]
    for b2 in (0.999, 0.99):
        for name, curve in nu_tracking(b2).items():
            lines.append(f"| {b2} | {name} | " + " | ".join(f"{curve[t]:.4f}" for t in at) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 seeds, short runs")
    parser.add_argument("--plot", metavar="PNG", help="also save the mean loss curves")
    args = parser.parse_args(argv)
    seeds = range(2 if args.quick else args.seeds)
    tasks = [moons_task(100 if args.quick else 1000), digits_task(3 if args.quick else 40)]
    results = evaluate(tasks, seeds)
    print(f"{len(seeds)} seeds; mean ± standard deviation over seeds\n")
    print(table(results))
    print("\nSecond moment of a gradient stream whose scale drops 10x at step 1000:\n")
    print(tracking_table())
    if args.plot:
        plot(results, args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
