"""Adam as a signal-to-noise ratio, shown on a noisy objective.

Without ``eps`` and the learning rate, Adam's update is ``m_hat / sqrt(v_hat)``: the running
mean of the gradient divided by the root of its running mean square. Where the gradient keeps
its sign, that ratio is near +-1 and Adam moves at full speed; where the gradient is mostly
noise, ``m_hat`` averages the noise away while ``v_hat`` still measures it, the ratio falls and
Adam slows down by itself ("automatic annealing"). For pure white noise the ratio's root mean
square settles near ``sqrt((1 - b1) / (1 + b1))``, about 0.23 for ``b1 = 0.9`` (a mean
magnitude of about 0.18); it stays lower while ``v_hat`` still remembers the larger gradients of
earlier steps (``b2 = 0.999`` averages over about a thousand).

The objective is ``sum_i a_i theta_i^2 / 2`` over four parameters with curvatures
``a = (0.3, 1, 3, 10)``, started at ``theta = (0.864, 0.980, 0.681, 0.464)``; every gradient
carries Gaussian noise of standard deviation 0.3. The ratio is read on demand from the
optimizer state with ``adamjax.moments_from_state`` and ``adamjax.signal_to_noise``.

Each moment has its own bias correction, ``m_hat = m / (1 - b1^t)`` and
``v_hat = v / (1 - b2^t)``.

    .venv/bin/python examples/signal_to_noise.py            # 3000 steps
    .venv/bin/python examples/signal_to_noise.py --quick    # 1500 steps
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
THETA0 = (0.864, 0.980, 0.681, 0.464)
CURVATURE = (0.3, 1.0, 3.0, 10.0)
B1, B2 = 0.9, 0.999


def run(steps: int, lr: float, noise: float, seed: int) -> dict[str, np.ndarray]:
    """Per step: theta, the signal-to-noise ratio per parameter and the update per parameter."""
    optimizer = adamjax.adam(lr, B1, B2)
    a = jnp.asarray(CURVATURE, jnp.float32)
    noises = jnp.asarray(np.random.default_rng(seed).normal(size=(steps, 4)) * noise, jnp.float32)

    def step(carry, eps_t):
        theta, state = carry
        grad = a * theta + eps_t  # the gradient of sum(a theta^2 / 2), plus noise
        updates, state = optimizer.update(grad, state, theta)
        snr = adamjax.signal_to_noise(adamjax.moments_from_state(state[0], B1, B2))
        return (adamjax.apply_updates(theta, updates), state), (theta, snr, updates)

    theta0 = jnp.asarray(THETA0, jnp.float32)
    run_all = jax.jit(lambda theta: jax.lax.scan(step, (theta, optimizer.init(theta)), noises)[1])
    thetas, snrs, updates = run_all(theta0)
    return {"theta": np.asarray(thetas), "snr": np.asarray(snrs), "update": np.asarray(updates)}


def plot(history: dict[str, np.ndarray], lr: float, out: Path) -> Path:
    steps = np.arange(1, len(history["theta"]) + 1)
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax_theta, ax_snr, ax_update = fig.subplots(1, 3)
    for i, a in enumerate(CURVATURE):
        ax_theta.plot(steps, history["theta"][:, i], lw=1, label=f"a = {a:g}")
        window = 50
        smooth = np.convolve(np.abs(history["snr"][:, i]), np.ones(window) / window, "valid")
        ax_snr.plot(steps[window - 1 :], smooth, lw=1, label=f"a = {a:g}")
    ax_theta.set(xlabel="step", ylabel="theta_i", title="parameters (noisy gradients)")
    ax_theta.legend()
    white = np.sqrt(2 / np.pi) * np.sqrt((1 - B1) / (1 + B1))  # mean |N(0, rms^2)|
    ax_snr.axhline(white, color="gray", ls=":", label="pure noise")
    ax_snr.set(xlabel="step", ylabel="|m_hat| / sqrt(v_hat), 50-step mean", title="signal to noise")
    ax_snr.set_ylim(0, 1.1)
    ax_snr.legend()
    snr, update = np.abs(history["snr"]).ravel(), np.abs(history["update"]).ravel() / lr
    ax_update.plot(snr, update, ".", ms=2, alpha=0.3)
    ax_update.plot([0, snr.max()], [0, snr.max()], "k--", lw=1, label="|update| / lr = |SNR|")
    ax_update.set(xlabel="|m_hat| / sqrt(v_hat)", ylabel="|update| / lr", title="Adam's step")
    ax_update.legend()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "signal_to_noise.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--noise", type=float, default=0.3, help="gradient noise std")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1500 steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    steps = 1500 if args.quick else args.steps

    history = run(steps, args.lr, args.noise, args.seed)
    snr = np.abs(history["snr"])
    for t in range(0, steps, steps // 10):
        row = "  ".join(f"{s:.2f}" for s in snr[t])
        print(f"step {t + 1:5d}  |snr| per parameter {row}")
    early, late = snr[:50].mean(), snr[-500:].mean()
    rms_late = float(np.sqrt(np.mean(history["snr"][-500:] ** 2)))
    print(f"mean |snr| over the first 50 steps {early:.3f}, over the last 500 {late:.3f}")
    white = np.sqrt((1 - B1) / (1 + B1))
    print(f"rms snr over the last 500 steps {rms_late:.3f}, white noise gives {white:.3f}")
    ratio = np.abs(history["update"]) / (args.lr * np.maximum(snr, 1e-12))
    print(f"|update| / (lr |snr|) between {ratio.min():.4f} and {ratio.max():.4f}")
    print(f"saved {plot(history, args.lr, args.out)}")


if __name__ == "__main__":
    main()
