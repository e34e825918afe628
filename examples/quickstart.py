"""Train a small MLP on make_moons with adamjax.adam under one jitted step.

scikit-learn's ``make_moons`` (1000 samples, noise 0.2, 70/30 train/test split) and a 2-10-1
network (tanh hidden layer, one logit out), trained full-batch with Adam at learning rate 0.01
for 1000 epochs. Adam's first moment is ``m = b1 m + (1 - b1) g`` (a product with the
gradient, not ``(1 - b1) - g``), and the binary cross-entropy is computed from the logit ``z``
as ``logaddexp(0, z) - y z``, which stays finite where ``log(sigmoid(z))`` reaches ``log(0)``
once the sigmoid saturates. The decision boundary is saved to
``quickstart_decision_boundary.png`` in ``--out`` (default ``examples/out/``).

    .venv/bin/python examples/quickstart.py            # the full run
    .venv/bin/python examples/quickstart.py --quick    # 200 epochs, for a smoke test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _moons import Params, accuracy, init_mlp, load_moons, logits, loss_fn
from matplotlib.figure import Figure
from tqdm import tqdm, trange

import adamjax

OUT = Path(__file__).resolve().parent / "out"


def plot_decision_boundary(params: Params, x: jax.Array, y: jax.Array, out: Path) -> Path:
    """The network's probability of class 1 over the plane, with the samples on top."""
    x_np, y_np = np.asarray(x), np.asarray(y)
    low, high = x_np.min(axis=0) - 0.5, x_np.max(axis=0) + 0.5
    g0, g1 = np.meshgrid(np.linspace(low[0], high[0], 200), np.linspace(low[1], high[1], 200))
    grid = jnp.asarray(np.stack([g0.ravel(), g1.ravel()], axis=1), jnp.float32)
    probability = np.asarray(jax.nn.sigmoid(logits(params, grid))).reshape(g0.shape)
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    filled = ax.contourf(
        g0, g1, probability, levels=20, cmap="RdBu_r", vmin=0.0, vmax=1.0, alpha=0.55
    )
    ax.contour(g0, g1, probability, levels=[0.5], colors="black", linewidths=1.5)
    for label, color in ((0, "#2166ac"), (1, "#b2182b")):
        chosen = y_np == label
        ax.scatter(*x_np[chosen].T, color=color, edgecolors="white", s=14, lw=0.5)
    fig.colorbar(filled, ax=ax, label="p(class 1)")
    ax.set(xlabel="x0", ylabel="x1", title="make_moons: 2-10-1 MLP trained with adamjax.adam")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "quickstart_decision_boundary.png"
    fig.savefig(path, dpi=120)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the make_moons MLP with adamjax.adam.")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true", help="200 epochs")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    epochs = 200 if args.quick else args.epochs

    x_train, x_test, y_train, y_test = load_moons()
    params = init_mlp(jax.random.key(42))
    optimizer = adamjax.adam(args.lr)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params: Params, opt_state: Any) -> tuple[Params, Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(params, x_train, y_train)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return adamjax.apply_updates(params, updates), opt_state, loss

    for epoch in trange(epochs, desc="training", leave=False, disable=not sys.stderr.isatty()):
        params, opt_state, loss = step(params, opt_state)
        if epoch % 100 == 0:
            tqdm.write(f"epoch {epoch:4d}  loss {float(loss):.4f}")
    final = float(loss_fn(params, x_train, y_train))
    print(f"final train loss {final:.4f}")
    print(f"test accuracy {float(accuracy(params, x_test, y_test)):.4f}")
    if not np.isfinite(final):
        raise SystemExit("training diverged")
    x_all, y_all = jnp.concatenate([x_train, x_test]), jnp.concatenate([y_train, y_test])
    print(f"saved {plot_decision_boundary(params, x_all, y_all, args.out)}")


if __name__ == "__main__":
    main()
