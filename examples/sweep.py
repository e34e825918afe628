"""Random search over Adam's hyperparameters, every trial trained at once in one compiled run.

Two searches with ``adamjax.sweep``:

1. Adam on the bowl ``x^2 + y^2``: 100 trials of 1000 iterations, learning rate in
   [1e-4, 1e-2), beta1 and beta2 in [0.8, 0.999), eps in [1e-8, 1e-6), all drawn uniformly, each
   trial from its own random start in [-10, 10)^2; the score is the objective after the last
   iteration. With a start per trial the score mostly rewards a lucky start; ``--shared-start``
   starts every trial from the same point, so that only the hyperparameters differ.
2. The make_moons MLP of the quickstart: 64 configurations (log-uniform learning rate, beta1,
   beta2) from one shared initialisation, 1000 full-batch epochs; scored by the final train loss.

Saves the loss curves, coloured by learning rate, to ``sweep.png`` in ``--out`` (default
``examples/out/``).

    .venv/bin/python examples/sweep.py            # the full searches
    .venv/bin/python examples/sweep.py --quick    # fewer trials and steps, for a smoke test
"""

from __future__ import annotations

import argparse
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from _moons import accuracy, init_mlp, load_moons, loss_fn

import adamjax
from adamjax import sweep

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm

OUT = pathlib.Path(__file__).resolve().parent / "out"


def objective(params: dict[str, jax.Array]) -> jax.Array:
    """The bowl x^2 + y^2, minimum 0 at the origin."""
    return params["x"] ** 2 + params["y"] ** 2


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    jax.block_until_ready(result.final_loss)
    return result, time.perf_counter() - start


def bowl_search(trials: int, iterations: int, seed: int, shared_start: bool) -> sweep.SweepResult:
    configs = sweep.sample(
        trials,
        seed,
        learning_rate=(1e-4, 1e-2),
        b1=(0.8, 0.999),
        b2=(0.8, 0.999),
        eps=(1e-8, 1e-6),
    )
    rng = np.random.default_rng(seed + 1)
    n_starts = 1 if shared_start else trials
    x, y = rng.uniform(-10, 10, n_starts), rng.uniform(-10, 10, n_starts)
    starts = {
        "x": jnp.asarray(np.broadcast_to(x, trials), jnp.float32),
        "y": jnp.asarray(np.broadcast_to(y, trials), jnp.float32),
    }
    result, seconds = timed(
        sweep.run, adamjax.adam, configs, objective, starts, iterations, batched_params=True
    )
    best = result.best_hyperparameters()
    print(f"x^2 + y^2: {trials} trials x {iterations} iterations in {seconds:.2f} s")
    print(
        "  best hyperparameters: "
        + ", ".join(f"{name} {value:.4g}" for name, value in best.items())
    )
    print(f"  best score: {float(result.final_loss[result.best]):.6g}")
    return result


def moons_search(configs_n: int, epochs: int, seed: int) -> sweep.SweepResult:
    x_train, x_test, y_train, y_test = load_moons()
    configs = sweep.sample(
        configs_n,
        seed,
        learning_rate=sweep.log_uniform(1e-4, 1.0),
        b1=(0.5, 0.99),
        b2=(0.9, 0.9999),
    )
    params = init_mlp(jax.random.key(42))
    result, seconds = timed(
        sweep.run, adamjax.adam, configs, loss_fn, params, epochs, args=(x_train, y_train)
    )
    print(f"make_moons MLP: {configs_n} configurations x {epochs} epochs in {seconds:.2f} s")
    order = np.argsort(np.where(np.isfinite(result.final_loss), result.final_loss, np.inf))
    for rank, i in enumerate(order[:5]):
        member = jax.tree.map(lambda leaf, i=i: leaf[i], result.params)
        print(
            f"  #{rank + 1}: learning_rate {configs['learning_rate'][i]:.4g}, "
            f"b1 {configs['b1'][i]:.3f}, b2 {configs['b2'][i]:.4f}  "
            f"final loss {float(result.final_loss[i]):.4f}  "
            f"test accuracy {float(accuracy(member, x_test, y_test)):.4f}"
        )
    return result


def plot(results: list[tuple[str, sweep.SweepResult]], path: pathlib.Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.8))
    for ax, (title, result) in zip(np.atleast_1d(axes), results, strict=True):
        rates = np.asarray(result.hyperparameters["learning_rate"])
        norm = LogNorm(rates.min(), rates.max())
        losses = np.asarray(result.losses)
        for i in np.argsort(rates):
            ax.plot(losses[i], color=plt.get_cmap("viridis")(norm(rates[i])), lw=0.8, alpha=0.8)
        ax.plot(losses[result.best], color="red", lw=2.0, label="best")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.legend(loc="lower left")
        mappable = plt.cm.ScalarMappable(norm=norm, cmap="viridis")
        fig.colorbar(mappable, ax=ax, label="learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Random search over Adam's hyperparameters.")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--configs", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shared-start", action="store_true", help="start every x^2 + y^2 trial at one point"
    )
    parser.add_argument("--quick", action="store_true", help="20 trials, 200 steps")
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.iterations, args.configs, args.epochs = 20, 200, 16, 200

    bowl = bowl_search(args.trials, args.iterations, args.seed, args.shared_start)
    moons = moons_search(args.configs, args.epochs, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sweep.png"
    plot([("Adam on x^2 + y^2", bowl), ("make_moons MLP, train loss", moons)], path)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
