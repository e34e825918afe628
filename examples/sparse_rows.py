"""Dense Adam and lazy Adam on sparse gradients: seed 004's sparse quadratic and an embedding.

Two problems where most of the gradient is zero on most steps:

* the sparse quadratic of the Adam slides this project started from: ``f(x) = sum(x**2)`` in
  100 dimensions, where each coordinate's gradient is observed with probability 0.1 per step;
* an embedding table of 1000 rows whose lookups follow a Zipf law, so rare rows receive a
  gradient once in hundreds of steps, fitted to per-row targets through a fixed linear head.

Dense Adam (``adamjax.adam``) keeps moving a row on the steps where its gradient is zero, with
the momentum left from its last observed gradient; lazy Adam (``adamjax.lazy_adam``, torch's
``SparseAdam``) moves a row only when it is observed. The loss curves go to
``examples/out/sparse_rows.png``.

    python examples/sparse_rows.py            # the full run
    python examples/sparse_rows.py --quick    # 100 steps, for a smoke test
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.figure import Figure
from tqdm import trange

import adamjax

OUT = Path(__file__).resolve().parent / "out"


def sparse_quadratic(optimizer: Any, steps: int, seed: int = 0, dim: int = 100) -> np.ndarray:
    """Minimize sum(x**2) seeing each coordinate's gradient with probability 0.1 per step."""
    key = jax.random.key(seed)
    x = jax.random.uniform(key, (dim,), minval=-1.0, maxval=1.0)
    state = optimizer.init(x)

    @jax.jit
    def step(x: jax.Array, state: Any, key: jax.Array) -> tuple[jax.Array, Any, jax.Array]:
        seen = jax.random.uniform(key, x.shape) < 0.1
        grads = jnp.where(seen, 2.0 * x, 0.0)
        updates, state = optimizer.update(grads, state, x)
        x = adamjax.apply_updates(x, updates)
        return x, state, jnp.sum(x**2)

    losses = []
    for i in trange(steps, desc="sparse quadratic", leave=False):
        x, state, loss = step(x, state, jax.random.fold_in(key, i))
        losses.append(float(loss))
    return np.asarray(losses)


def zipf_embedding(
    optimizer: Any, steps: int, seed: int = 0, rows: int = 1000, dim: int = 8, batch: int = 32
) -> np.ndarray:
    """Fit per-row targets through a fixed head; lookups follow a Zipf law over the rows."""
    rng = np.random.default_rng(seed)
    head = jnp.asarray(rng.normal(size=dim) / np.sqrt(dim), jnp.float32)
    targets = jnp.asarray(rng.normal(size=rows), jnp.float32)
    frequency = 1.0 / np.arange(1, rows + 1)
    frequency /= frequency.sum()
    table = jnp.zeros((rows, dim), jnp.float32)
    state = optimizer.init(table)

    def loss_fn(table: jax.Array, ids: jax.Array) -> jax.Array:
        return jnp.mean((table[ids] @ head - targets[ids]) ** 2)

    @jax.jit
    def step(table: jax.Array, state: Any, ids: jax.Array) -> tuple[jax.Array, Any]:
        updates, state = optimizer.update(jax.grad(loss_fn)(table, ids), state, table)
        return adamjax.apply_updates(table, updates), state

    @jax.jit
    def full_loss(table: jax.Array) -> jax.Array:
        """Loss over all rows weighted equally: rare rows count as much as frequent ones."""
        return jnp.mean((table @ head - targets) ** 2)

    losses = []
    for _ in trange(steps, desc="zipf embedding", leave=False):
        ids = jnp.asarray(rng.choice(rows, size=batch, p=frequency))
        table, state = step(table, state, ids)
        losses.append(float(full_loss(table)))
    return np.asarray(losses)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Dense and lazy Adam on sparse gradients.")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true", help="100 steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    steps = 100 if args.quick else args.steps

    optimizers: dict[str, Callable[[], Any]] = {
        "adam (dense)": lambda: adamjax.adam(args.lr),
        "lazy_adam": lambda: adamjax.lazy_adam(args.lr),
    }
    problems = {"sparse quadratic": sparse_quadratic, "Zipf embedding": zipf_embedding}
    curves: dict[str, dict[str, np.ndarray]] = {}
    for problem, run in problems.items():
        curves[problem] = {name: run(factory(), steps) for name, factory in optimizers.items()}
        for name, losses in curves[problem].items():
            print(f"{problem:17s} {name:13s} final loss {losses[-1]:.3e}")
            if not np.all(np.isfinite(losses)):
                raise SystemExit(f"{name} diverged on the {problem}")

    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, (problem, runs) in zip(fig.subplots(1, 2), curves.items(), strict=True):
        for name, losses in runs.items():
            ax.plot(np.arange(1, len(losses) + 1), losses, label=name)
        ax.set(title=problem, xlabel="step", ylabel="loss", yscale="log")
        ax.legend()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sparse_rows.png"
    fig.savefig(path, dpi=120)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
