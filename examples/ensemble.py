"""Train 32 MLPs on make_moons from 32 seeds at once, in one compiled step.

Each member is the quickstart's 2-10-1 network with its own random initialisation and its own
Adam state; ``jax.jit(jax.vmap(train_step))`` trains all of them together. Prints each
member's test accuracy, their mean and spread, and the accuracy of the ensemble's averaged
prediction, and saves the ensemble's decision boundary to ``ensemble.png`` in ``--out``
(default ``examples/out/``).

    .venv/bin/python examples/ensemble.py            # 32 members, 1000 epochs
    .venv/bin/python examples/ensemble.py --quick    # 200 epochs, for a smoke test
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from _moons import Params, init_mlp, load_moons, logits, loss_fn
from tqdm import tqdm, trange

import adamjax

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OUT = pathlib.Path(__file__).resolve().parent / "out"


def train_step(
    params: Params, opt_state: Any, x: jax.Array, y: jax.Array, optimizer: Any
) -> tuple[Params, Any, jax.Array]:
    """One full-batch step of one member: the same code as for a single model."""
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return adamjax.apply_updates(params, updates), opt_state, loss


@jax.jit
def member_logits(params: Params, x: jax.Array) -> jax.Array:
    """Every member's logits for every row of ``x``: shape (members, rows)."""
    return jax.vmap(logits, in_axes=(0, None))(params, x)


def plot_boundary(
    params: Params, x: np.ndarray, y: np.ndarray, path: pathlib.Path, resolution: int
) -> None:
    """The averaged probability, each member's boundary (grey) and the ensemble's (black)."""
    xs = np.linspace(x[:, 0].min() - 0.5, x[:, 0].max() + 0.5, resolution)
    ys = np.linspace(x[:, 1].min() - 0.5, x[:, 1].max() + 0.5, resolution)
    gx, gy = np.meshgrid(xs, ys)
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=jnp.float32)
    member_probs = 1.0 / (1.0 + np.exp(-np.asarray(member_logits(params, grid))))
    mean = member_probs.mean(axis=0).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    filled = ax.contourf(gx, gy, mean, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    for probs in member_probs:
        ax.contour(gx, gy, probs.reshape(gx.shape), levels=[0.5], colors="0.4", linewidths=0.4)
    ax.contour(gx, gy, mean, levels=[0.5], colors="k", linewidths=2.0)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", edgecolors="k", s=14)
    fig.colorbar(filled, ax=ax, label="ensemble mean of P(y = 1)")
    ax.set_title(f"{len(member_probs)} MLPs: member boundaries (grey), ensemble (black)")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train an ensemble of MLPs on make_moons.")
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="200 epochs")
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    epochs = 200 if args.quick else args.epochs

    x_train, x_test, y_train, y_test = load_moons()
    keys = jax.random.split(jax.random.key(args.seed), args.members)
    params = adamjax.ensemble.members(init_mlp, keys)  # every leaf: leading axis = members
    optimizer = adamjax.adam(args.lr)
    opt_state = adamjax.ensemble.init(optimizer, params)
    step = jax.jit(
        jax.vmap(lambda p, s, x, y: train_step(p, s, x, y, optimizer), in_axes=(0, 0, None, None))
    )

    losses = jnp.zeros(args.members)
    start = time.perf_counter()
    bar = trange(
        epochs,
        desc=f"training {args.members} members",
        leave=False,
        disable=not sys.stderr.isatty(),  # a bar only on a terminal, not in logs
    )
    for epoch in bar:
        params, opt_state, losses = step(params, opt_state, x_train, y_train)
        if epoch % 100 == 0:
            shown = np.asarray(losses)
            tqdm.write(
                f"epoch {epoch:4d}  loss mean {shown.mean():.4f}  "
                f"min {shown.min():.4f}  max {shown.max():.4f}"
            )
    jax.block_until_ready(params)
    seconds = time.perf_counter() - start

    test_logits = np.asarray(member_logits(params, x_test))  # (members, n_test)
    labels = np.asarray(y_test) > 0.5
    member_accuracy = np.mean((test_logits > 0) == labels, axis=1)
    for i, acc in enumerate(member_accuracy):
        print(f"member {i:2d}  test accuracy {acc:.4f}")
    print(
        f"members: mean test accuracy {member_accuracy.mean():.4f}, "
        f"std {member_accuracy.std():.4f}, "
        f"min {member_accuracy.min():.4f}, max {member_accuracy.max():.4f}"
    )
    averaged = np.mean(1.0 / (1.0 + np.exp(-test_logits)), axis=0)  # mean probability
    ensemble_accuracy = float(np.mean((averaged > 0.5) == labels))
    print(f"ensemble (averaged probabilities) test accuracy {ensemble_accuracy:.4f}")
    print(f"{epochs} ensemble steps in {seconds:.2f} s (including compilation)")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "ensemble.png"
    x_all = np.concatenate([np.asarray(x_train), np.asarray(x_test)])
    y_all = np.concatenate([np.asarray(y_train), np.asarray(y_test)])
    plot_boundary(params, x_all, y_all, path, resolution=100 if args.quick else 250)
    print(f"saved {path}")
    if not np.all(np.isfinite(np.asarray(losses))):
        raise SystemExit("a member diverged")


if __name__ == "__main__":
    main()
