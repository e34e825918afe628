"""Adam against plain gradient descent on the Rosenbrock function, trajectories plotted.

``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2`` has its minimum at (1, 1) at the end of a long,
narrow, curved valley. Gradient descent's learning rate is capped by the valley's steep walls
(from the start used here, rates above about 2e-3 zigzag between them and end farther from the
minimum), so it crawls along the floor; Adam rescales each coordinate by its own gradient
history and follows the valley to the minimum.

Both start from the classic (-1.2, 1). Gradient descent is ``adamjax.sgd``,
``p <- p - lr grad f(p)``. (Adam with ``beta1 = beta2 = 0`` is not gradient descent: its step
``lr g / (|g| + eps)`` is sign descent, ``adamjax.normalized_gradient``.)

    .venv/bin/python examples/rosenbrock.py            # 3000 steps each
    .venv/bin/python examples/rosenbrock.py --quick    # 2000 steps
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

import adamjax

OUT = Path(__file__).resolve().parent / "out"
START = (-1.2, 1.0)


def rosenbrock(p: jax.Array) -> jax.Array:
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def trajectory(optimizer: adamjax.GradientTransformation, steps: int) -> np.ndarray:
    """The start and the point after each step, shape ``(steps + 1, 2)``."""

    def step(carry, _):
        p, state = carry
        updates, state = optimizer.update(jax.grad(rosenbrock)(p), state, p)
        p = adamjax.apply_updates(p, updates)
        return (p, state), p

    p0 = jnp.asarray(START, jnp.float32)
    run = jax.jit(lambda p: jax.lax.scan(step, (p, optimizer.init(p)), length=steps)[1])
    return np.vstack([np.asarray(p0)[None], np.asarray(run(p0))])


def plot(paths: dict[str, np.ndarray], out: Path) -> Path:
    x = np.linspace(-2.0, 2.0, 300)
    y = np.linspace(-1.0, 3.0, 300)
    xx, yy = np.meshgrid(x, y)
    zz = (1.0 - xx) ** 2 + 100.0 * (yy - xx**2) ** 2
    fig = Figure(figsize=(12, 5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (name, path), color in zip(axes, paths.items(), ("tab:red", "tab:blue"), strict=True):
        ax.contour(xx, yy, zz, levels=np.logspace(-1, 3, 20), norm=LogNorm(), cmap="viridis")
        every = max(len(path) // 60, 1)
        ax.plot(path[:, 0], path[:, 1], "-", color=color, lw=1.2)
        ax.plot(path[::every, 0], path[::every, 1], "o", color=color, ms=3)
        ax.plot(1.0, 1.0, "*", color="gold", ms=14, mec="black")
        f_end = (1.0 - path[-1, 0]) ** 2 + 100.0 * (path[-1, 1] - path[-1, 0] ** 2) ** 2
        ax.set(xlabel="x", title=f"{name}: f = {f_end:.2e} after {len(path) - 1} steps")
    axes[0].set_ylabel("y")
    out.mkdir(parents=True, exist_ok=True)
    path_png = out / "rosenbrock.png"
    fig.savefig(path_png, dpi=90)
    return path_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--adam-lr", type=float, default=0.02)
    parser.add_argument("--gd-lr", type=float, default=2e-3)
    parser.add_argument("--quick", action="store_true", help="2000 steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    steps = 2000 if args.quick else args.steps

    paths = {
        f"Adam (lr {args.adam_lr:g})": trajectory(adamjax.adam(args.adam_lr), steps),
        f"gradient descent (lr {args.gd_lr:g})": trajectory(adamjax.sgd(args.gd_lr), steps),
    }
    for name, path in paths.items():
        end = path[-1]
        value = float(rosenbrock(jnp.asarray(end)))
        distance = float(np.hypot(end[0] - 1.0, end[1] - 1.0))
        print(
            f"{name:28s} final ({end[0]:.5f}, {end[1]:.5f})  f {value:.3e}  "
            f"distance to (1, 1) {distance:.2e}"
        )
    print(f"saved {plot(paths, args.out)}")


if __name__ == "__main__":
    main()
