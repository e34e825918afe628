"""Sparse gradients: Adam against SGD, and Adam's lazy-row mode, on loss curves.

The objective is ``sum(x_i^2)`` over 100 coordinates, but each step only sees the gradient of
a random tenth of them (``2 x_i`` with probability 0.1, else 0), as an embedding table sees
only the rows a batch looks up. Every optimizer gets the same sequence of masks.

* SGD moves a coordinate only when its gradient is there, by ``lr * 2 x_i``.
* Dense Adam (``adamjax.adam``) keeps moving every coordinate between its gradients, on the
  momentum left in ``m``, with a step normalized by ``sqrt(v_hat)``. Far from the minimum that
  is fast; near it, a coordinate keeps moving for several steps without seeing where it went,
  overshoots, and the loss jumps around instead of converging.
* Lazy Adam (``adamjax.lazy_adam``, torch's ``SparseAdam``) updates a row's ``m``, ``v`` and
  value only on steps where its gradient is nonzero, so untouched rows stay exactly as they are
  and it keeps converging.

SGD here is ``adamjax.sgd``, ``x <- x - lr g``; Adam with ``beta1 = beta2 = 0`` would be sign
descent instead. The loss curves and the share of coordinates moved per step go to
``sparse_gradients.png`` in ``--out`` (default ``examples/out/``).

    .venv/bin/python examples/sparse_gradients.py            # 3000 steps
    .venv/bin/python examples/sparse_gradients.py --quick    # 300 steps
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import adamjax

OUT = Path(__file__).resolve().parent / "out"
DIM, DENSITY = 100, 0.1


def run(
    optimizer: adamjax.GradientTransformation, x0: jax.Array, masks: jax.Array
) -> tuple[np.ndarray, np.ndarray]:
    """Loss after each step and the fraction of coordinates that moved on it.

    ``masks[t]`` says which coordinates' gradients step ``t`` observes.
    """

    def step(carry, present):
        x, state = carry
        grad = jnp.where(present, 2.0 * x, jnp.zeros_like(x))
        updates, state = optimizer.update(grad, state, x)
        new_x = adamjax.apply_updates(x, updates)
        moved = jnp.mean((new_x != x).astype(jnp.float32))
        return (new_x, state), (jnp.sum(new_x**2), moved)

    run_all = jax.jit(lambda x: jax.lax.scan(step, (x, optimizer.init(x)), masks)[1])
    losses, moved = run_all(x0)
    return np.asarray(losses), np.asarray(moved)


def plot(results: dict[str, tuple[np.ndarray, np.ndarray]], initial: float, out: Path) -> Path:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_loss, ax_moved = fig.subplots(1, 2)
    styles = {"SGD": "--", "Adam": "-", "lazy Adam": "-"}
    for name, (losses, moved) in results.items():
        steps = np.arange(1, len(losses) + 1)
        style = styles.get(name, "-")
        ax_loss.semilogy(np.r_[0, steps], np.r_[initial, losses], style, label=name)
        window = 20
        smooth = np.convolve(moved, np.ones(window) / window, mode="valid")
        ax_moved.plot(steps[window - 1 :], smooth, style, label=name)
    ax_loss.set(xlabel="step", ylabel="sum x_i^2", title="loss, 10% of gradients present")
    ax_loss.legend()
    ax_moved.set(
        xlabel="step",
        ylabel="fraction of coordinates moved",
        title="coordinates changed per step (20-step mean)",
        ylim=(0, 1.05),
    )
    ax_moved.legend()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sparse_gradients.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="300 steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    steps = 300 if args.quick else args.steps

    rng = np.random.default_rng(args.seed)
    x0 = jnp.asarray(rng.uniform(-1.0, 1.0, DIM), jnp.float32)
    masks = jnp.asarray(rng.random((steps, DIM)) < DENSITY)  # the same for every optimizer
    initial = float(jnp.sum(x0**2))
    optimizers = {
        "SGD": adamjax.sgd(args.lr),
        "Adam": adamjax.adam(args.lr),
        "lazy Adam": adamjax.lazy_adam(args.lr),
    }
    results = {name: run(opt, x0, masks) for name, opt in optimizers.items()}
    print(f"initial loss {initial:.4f}")
    for name, (losses, moved) in results.items():
        print(
            f"{name:10s} final loss {losses[-1]:.3e}  "
            f"coordinates moved per step {moved[steps // 2 :].mean():.3f}"
        )
    print(f"saved {plot(results, initial, args.out)}")


if __name__ == "__main__":
    main()
