"""Adam on a one-dimensional quadratic: the parameter walks to the minimum at 2.

The loss is (phi - 2)^2 + const, so the gradient is g_t = 2 phi_t - 4, taken at the current
phi: each step's result is the next step's starting point,
phi_{t+1} = phi_t - lr m_hat_t / (sqrt(v_hat_t) + eps). (A loop that stores the update in a new
variable but keeps differentiating at the old phi never moves.) The run starts away from the
minimum at phi = 0 with learning rate 0.01, b1 0.9, b2 0.999, eps 1e-8, and checks adamjax
against a float64 NumPy loop of the same rule; a second run started at the minimum, where the
gradient is zero, stays there.

    .venv/bin/python examples/quadratic_1d.py            # 1000 steps from phi = 0
    .venv/bin/python examples/quadratic_1d.py --quick    # 600 steps
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


def gradient(phi: jax.Array) -> jax.Array:
    """The gradient of (phi - 2)^2: 2 phi - 4."""
    return 2 * phi - 4


def numpy_adam(phi0: float, steps: int, lr: float, b1: float, b2: float, eps: float):
    """Adam in float64 NumPy, one step at a time: each gradient is taken at the updated phi."""
    phi, m, v = np.float64(phi0), 0.0, 0.0
    path = []
    for t in range(1, steps + 1):
        g = 2 * phi - 4
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        phi = phi - lr * m_hat / (np.sqrt(v_hat) + eps)
        path.append(phi)
    return np.array(path)


def adamjax_path(phi0: float, steps: int, lr: float, b1: float, b2: float, eps: float):
    """phi after each of ``steps`` Adam updates, the whole loop compiled as one ``scan``."""
    optimizer = adamjax.adam(lr, b1, b2, eps)

    def step(carry, _):
        phi, state = carry
        updates, state = optimizer.update(gradient(phi), state, phi)
        phi = adamjax.apply_updates(phi, updates)
        return (phi, state), phi

    phi = jnp.asarray(phi0, jnp.float32)
    run = jax.jit(lambda phi: jax.lax.scan(step, (phi, optimizer.init(phi)), length=steps)[1])
    return np.asarray(run(phi))


def plot(path: np.ndarray, reference: np.ndarray, lr: float, out: Path) -> Path:
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    steps = np.arange(1, len(path) + 1)
    ax.plot(steps, path, label="adamjax.adam")
    ax.plot(steps, reference, "--", label="float64 NumPy loop")
    ax.axhline(2.0, color="gray", lw=0.8, ls=":", label="minimum phi = 2")
    ax.set(xlabel="step", ylabel="phi", title=f"Adam on (phi - 2)^2, learning rate {lr}")
    ax.legend()
    out.mkdir(parents=True, exist_ok=True)
    path_png = out / "quadratic_1d.png"
    fig.savefig(path_png, dpi=120)
    return path_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--start", type=float, default=0.0, help="initial phi")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true", help="600 steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    steps = 600 if args.quick else args.steps
    b1, b2, eps = 0.9, 0.999, 1e-8

    path = adamjax_path(args.start, steps, args.lr, b1, b2, eps)
    reference = numpy_adam(args.start, steps, args.lr, b1, b2, eps)
    for t in range(0, steps, max(steps // 10, 1)):
        print(f"step {t + 1:5d}  phi {path[t]:.6f}")
    print(f"final phi {path[-1]:.6f}")
    print(f"largest difference from the float64 NumPy loop {np.max(np.abs(path - reference)):.2e}")
    at_minimum = adamjax_path(2.0, 10, args.lr, b1, b2, eps)
    print(f"started at the minimum, phi stays at {at_minimum[-1]:.6f}")
    print(f"saved {plot(path, reference, args.lr, args.out)}")


if __name__ == "__main__":
    main()
