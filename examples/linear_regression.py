"""Linear regression trained with Adam, checked against the closed-form least-squares solution.

Fits ``y = X w + b`` on 100 samples of 3 features (uniform in [0, 1), targets
``X [2, -1, 3] + 1.5`` plus Gaussian noise of standard deviation 0.1) with full-batch Adam at
learning rate 0.05 on the mean squared error. The gradients come from ``jax.grad``
(``dW = 2 X^T e / n``, ``db = 2 mean(e)`` for the residuals ``e``), and the answer is compared
with ``numpy.linalg.lstsq``. Adam's step is ``lr m_hat / (sqrt(v_hat) + eps)``: dividing by
``v_hat + eps`` instead is not Adam, as the step would then shrink with the square of the
gradient's scale.

    .venv/bin/python examples/linear_regression.py            # 5000 epochs
    .venv/bin/python examples/linear_regression.py --quick    # 2000 epochs
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
CHUNK = 100  # epochs per compiled scan; the progress bar advances once per chunk


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``y = X @ [2, -1, 3] + 1.5`` on uniform features, plus noise of std 0.1."""
    rng = np.random.default_rng(seed)
    x = rng.random((100, 3))
    y = x @ np.array([2.0, -1.0, 3.0]) + 1.5 + 0.1 * rng.normal(size=100)
    return x.astype(np.float32), y.astype(np.float32)


def predict(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return x @ params["weights"] + params["bias"]


def mse(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((predict(params, x) - y) ** 2)


def closed_form(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares in float64: ``[X 1] [w; b] = y``."""
    design = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    solution = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]
    return solution[:3], float(solution[3])


def train(x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int = 0):
    """Full-batch Adam; returns the params and the loss after every epoch."""
    key_w, key_b = jax.random.split(jax.random.key(seed))
    params = {"weights": jax.random.normal(key_w, (3,)), "bias": jax.random.normal(key_b, ())}
    optimizer = adamjax.adam(lr)
    state = optimizer.init(params)
    xs, ys = jnp.asarray(x), jnp.asarray(y)

    def epoch(carry: Any, _: Any) -> tuple[Any, jax.Array]:
        params, state = carry
        loss, grads = jax.value_and_grad(mse)(params, xs, ys)
        updates, state = optimizer.update(grads, state, params)
        return (adamjax.apply_updates(params, updates), state), loss

    run_chunk = jax.jit(lambda carry: jax.lax.scan(epoch, carry, length=CHUNK))
    carry, losses = (params, state), []
    for _ in trange(
        epochs // CHUNK, desc="epochs / 100", leave=False, disable=not sys.stderr.isatty()
    ):
        carry, chunk_losses = run_chunk(carry)
        losses.append(np.asarray(chunk_losses))
    return carry[0], np.concatenate(losses)


def plot(losses: np.ndarray, best: float, out: Path) -> Path:
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_loss, ax_gap = fig.subplots(1, 2)
    epochs = np.arange(len(losses))
    ax_loss.semilogy(epochs, losses, label="Adam, full batch")
    ax_loss.axhline(best, color="black", ls="--", lw=1, label="closed-form least squares")
    ax_loss.set(xlabel="epoch", ylabel="mean squared error", title="Linear regression with Adam")
    ax_loss.legend()
    # float32 losses can dip a rounding error below the float64 optimum: clip for the log scale
    ax_gap.semilogy(epochs, np.maximum(losses - best, 1e-9))
    ax_gap.set(xlabel="epoch", ylabel="loss - least-squares loss", title="excess loss")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "linear_regression.png"
    fig.savefig(path, dpi=120)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--quick", action="store_true", help="2000 epochs")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    epochs = 2000 if args.quick else args.epochs

    x, y = make_data()
    params, losses = train(x, y, max(epochs // CHUNK, 1) * CHUNK, args.lr)
    for i in range(0, len(losses), 1000):
        print(f"epoch {i:5d}  loss {losses[i]:.6f}")
    w_star, b_star = closed_form(x, y)
    best = float(np.mean((x @ w_star + b_star - y) ** 2))
    weights, bias = np.asarray(params["weights"]), float(params["bias"])
    print(f"adam         weights {np.array2string(weights, precision=4)}  bias {bias:.4f}")
    print(f"closed form  weights {np.array2string(w_star, precision=4)}  bias {b_star:.4f}")
    gap = max(float(np.max(np.abs(weights - w_star))), abs(bias - b_star))
    print(f"largest difference from the closed form {gap:.2e}")
    print(f"final loss {float(losses[-1]):.6f}  closed-form loss {best:.6f}")
    print(f"saved {plot(losses, best, args.out)}")


if __name__ == "__main__":
    main()
