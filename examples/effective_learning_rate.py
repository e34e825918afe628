"""Adam's effective learning rate over time, read from ``adamjax.monitor``.

Adam's update is ``-eta_t * m_hat_t`` with a per-parameter step size
``eta_t = lr / (sqrt(v_hat_t) + eps)``. On ``f(x) = x^2`` the gradient ``2x`` shrinks as ``x``
approaches 0, ``v_hat`` (an average of past squared gradients, over about ``1 / (1 - b2)``
steps) shrinks more slowly, and ``eta`` grows: Adam takes larger steps relative to the
gradient as the gradient fades.

The step size uses the bias-corrected ``v_hat = v / (1 - b2^t)``. Computed from the
uncorrected ``v`` instead, ``lr / (sqrt(v) + eps)`` starts about 30 times too large: after one
step ``v = (1 - b2) g^2`` is a thousand times too small for ``1 - b2 = 0.001``. The plot shows
both: the effective step size that Adam uses (from ``adamjax.monitor``, which reports the
bias-corrected moments), and the uncorrected one.

    .venv/bin/python examples/effective_learning_rate.py            # 500 steps
    .venv/bin/python examples/effective_learning_rate.py --quick    # 200 steps
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import adamjax

OUT = Path(__file__).resolve().parent / "out"


def monitored_adam(lr: float, b1: float, b2: float, eps: float) -> adamjax.GradientTransformation:
    """``adamjax.adam`` with ``monitor`` right after the moment estimator."""
    return adamjax.chain(
        adamjax.moments(b1, b2),
        adamjax.monitor(learning_rate=lr, eps=eps),
        adamjax.bias_correction(),
        adamjax.normalize(eps),
        adamjax.scale_by_learning_rate(lr),
    )


def run(x0: float, steps: int, lr: float, b1: float, b2: float, eps: float) -> dict[str, Any]:
    """Train on ``x^2``; per step: x, the recorded diagnostics and the raw second moment."""
    optimizer = monitored_adam(lr, b1, b2, eps)

    def step(carry, _):
        x, state = carry
        updates, state = optimizer.update(jax.grad(lambda x: x**2)(x), state, x)
        x = adamjax.apply_updates(x, updates)
        return (x, state), (x, state[1], state[0].nu)

    x = jnp.asarray(x0, jnp.float32)
    run_all = jax.jit(lambda x: jax.lax.scan(step, (x, optimizer.init(x)), length=steps)[1])
    xs, diagnostics, raw_v = run_all(x)
    return {
        "x": np.asarray(xs),
        "eta": np.asarray(diagnostics.step_size_mean),  # one leaf of one entry: the value itself
        "eta_uncorrected": lr / (np.sqrt(np.asarray(raw_v)) + eps),
        "bias_correction1": np.asarray(diagnostics.bias_correction1),
        "bias_correction2": np.asarray(diagnostics.bias_correction2),
    }


def plot(history: dict[str, Any], lr: float, out: Path) -> Path:
    steps = np.arange(1, len(history["x"]) + 1)
    fig = Figure(figsize=(8, 9), layout="constrained")
    ax_x, ax_eta, ax_bc = fig.subplots(3, 1, sharex=True)
    ax_x.plot(steps, history["x"])
    ax_x.set(ylabel="x", title=f"Adam on f(x) = x^2, lr = {lr}")
    ax_eta.semilogy(steps, history["eta"], label="lr / (sqrt(v_hat) + eps): what Adam uses")
    ax_eta.semilogy(
        steps, history["eta_uncorrected"], "--", label="lr / (sqrt(v) + eps), no bias correction"
    )
    ax_eta.set(ylabel="effective step size")
    ax_eta.legend()
    ax_bc.plot(steps, history["bias_correction1"], label="1 - b1^t")
    ax_bc.plot(steps, history["bias_correction2"], label="1 - b2^t")
    factor = np.sqrt(history["bias_correction2"]) / history["bias_correction1"]
    ax_bc.plot(steps, factor, ":", label="sqrt(1 - b2^t) / (1 - b1^t)")
    ax_bc.set(xlabel="step", ylabel="bias correction")
    ax_bc.legend()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "effective_learning_rate.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--start", type=float, default=5.0, help="initial x")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="200 steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    steps = 200 if args.quick else args.steps
    b1, b2, eps = 0.9, 0.999, 1e-8

    history = run(args.start, steps, args.lr, b1, b2, eps)
    for t in [0, *range(steps // 10 - 1, steps, steps // 10)]:
        print(
            f"step {t + 1:4d}  x {history['x'][t]:+.6f}  effective lr {history['eta'][t]:.6f}  "
            f"uncorrected {history['eta_uncorrected'][t]:.6f}"
        )
    first = args.lr / (2 * abs(args.start) + eps)
    print(f"first step: effective lr {history['eta'][0]:.6f}, lr / |g_1| = {first:.6f}")
    print(f"saved {plot(history, args.lr, args.out)}")


if __name__ == "__main__":
    main()
