"""Adam on x^2 + y^2 from a seeded start, printing the point and the objective after each step.

The start point is drawn uniformly in [-1, 1]^2 by NumPy's global generator seeded with 1
(``np.random.seed(1)``, then ``np.random.rand(2)``); 60 steps of ``adamjax.adam`` with step size
0.02, beta1 0.8, beta2 0.999 and eps 1e-8 follow, each printing ``>t f([x y]) = score``. The
steps run in float64, so every printed digit is reproducible; the test suite checks all 60 rows
against a float64 NumPy Adam.

Adam's normalization is ``m_hat / (sqrt(v_hat) + eps)``, eps outside the root.
``--eps-inside-root`` runs the variant ``m_hat / sqrt(v_hat + eps)``
(``normalize(eps=0, eps_root=eps)``); at eps = 1e-8 the two tables differ by about 1e-8, in
the last printed digit of some rows.

    .venv/bin/python examples/adam_table.py
    .venv/bin/python examples/adam_table.py --quick      # the same 60 rows: it takes milliseconds
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


def objective(x: jax.Array) -> jax.Array:
    return x[0] ** 2.0 + x[1] ** 2.0


def start_point(seed: int = 1) -> np.ndarray:
    """Uniform in the bounds: ``bounds[:, 0] + rand(2) * (bounds[:, 1] - bounds[:, 0])``."""
    bounds = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    np.random.seed(seed)  # NumPy's legacy global generator, so the start is reproducible
    return bounds[:, 0] + np.random.rand(len(bounds)) * (bounds[:, 1] - bounds[:, 0])


def optimizer(alpha: float, beta1: float, beta2: float, eps: float, inside: bool):
    if not inside:
        return adamjax.adam(alpha, beta1, beta2, eps)
    return adamjax.chain(
        adamjax.moments(beta1, beta2),
        adamjax.bias_correction(),
        adamjax.normalize(eps=0.0, eps_root=eps),
        adamjax.scale_by_learning_rate(alpha),
    )


def run(x0: np.ndarray, n_iter: int, opt: adamjax.GradientTransformation) -> np.ndarray:
    """The point after each of ``n_iter`` steps, in float64."""
    with jax.enable_x64(True):

        def step(carry, _):
            x, state = carry
            updates, state = opt.update(jax.grad(objective)(x), state, x)
            x = adamjax.apply_updates(x, updates)
            return (x, state), x

        x = jnp.asarray(x0, jnp.float64)
        points = jax.jit(lambda x: jax.lax.scan(step, (x, opt.init(x)), length=n_iter)[1])(x)
        return np.asarray(points, np.float64)


def plot(x0: np.ndarray, points: np.ndarray, out: Path) -> Path:
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    grid = np.linspace(-1.0, 1.0, 201)
    xx, yy = np.meshgrid(grid, grid)
    ax.contourf(xx, yy, xx**2 + yy**2, levels=30, cmap="viridis")
    path = np.vstack([x0, points])
    ax.plot(path[:, 0], path[:, 1], ".-", color="white", lw=1, ms=4)
    ax.plot(*x0, "o", color="red", label="start")
    ax.set(xlabel="x", ylabel="y", title="Adam on x^2 + y^2: 60 steps", aspect="equal")
    ax.legend(loc="lower right")
    out.mkdir(parents=True, exist_ok=True)
    path_png = out / "adam_table.png"
    fig.savefig(path_png, dpi=120)
    return path_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--n-iter", type=int, default=60)
    parser.add_argument("--alpha", type=float, default=0.02)
    parser.add_argument("--beta1", type=float, default=0.8)
    parser.add_argument("--beta2", type=float, default=0.999)
    parser.add_argument("--eps", type=float, default=1e-8)
    parser.add_argument("--eps-inside-root", action="store_true")
    parser.add_argument("--quick", action="store_true", help="same run (it is already quick)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)

    x0 = start_point()
    opt = optimizer(args.alpha, args.beta1, args.beta2, args.eps, args.eps_inside_root)
    points = run(x0, args.n_iter, opt)
    for t, x in enumerate(points):
        score = x[0] ** 2.0 + x[1] ** 2.0
        print(">%d f(%s) = %.5f" % (t, x, score))  # noqa: UP031 -- NumPy's array repr, as in the docs
    best, score = points[-1], points[-1][0] ** 2.0 + points[-1][1] ** 2.0
    print("Done!")
    print("f(%s) = %f" % (best, score))  # noqa: UP031
    print(f"saved {plot(x0, points, args.out)}")


if __name__ == "__main__":
    main()
