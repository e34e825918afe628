r"""Training quality with bfloat16 moments (``mu_dtype`` / ``nu_dtype``) against float32 moments.

``adamjax.adam`` with moments stored in float32 or bfloat16 (arithmetic in float32), from
several seeds, on the quickstart's make_moons MLP (full batch, lr 0.01, 1000 epochs) and the
digits 64-64-10 ReLU MLP of examples/low_precision.py (minibatches of 64, lr 1e-3, 40 epochs);
then :math:`v \leftarrow b_2 v + (1 - b_2) g^2` stored in bfloat16 on gradients whose scale
drops tenfold at step 1000.
docs/performance.md describes the tables.

    python -m benchmarks.moment_precision [--quick] [--plot docs/moment_precision.png]
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import adamjax
from benchmarks import harness
from examples import _moons, low_precision

Params = dict[str, jax.Array]
BF16 = jnp.bfloat16
MOMENTS: dict[str, tuple[Any, Any]] = {  # name: (mu_dtype, nu_dtype)
    "float32 m, v": (None, None), "bfloat16 m": (BF16, None), "bfloat16 v": (None, BF16),
    "bfloat16 m, v": (BF16, BF16),
}  # fmt: skip
REFERENCE = "float32 m, v"
COLUMNS = ("task", "moments", "state bytes", "final train loss", "test accuracy",
           "loss-curve gap")  # fmt: skip


@dataclass(frozen=True)
class Task:
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array]  # x_train, y_train, x_test, y_test
    init: Callable[[int], Params]  # seed -> params
    loss: Callable[[Params, jax.Array, jax.Array], jax.Array]
    accuracy: Callable[[Params, jax.Array, jax.Array], Any]
    learning_rate: float
    epochs: int
    minibatches: bool  # of 64, reshuffled every epoch; False: full batch


def moons_task(epochs: int) -> Task:
    x_tr, x_te, y_tr, y_te = _moons.load_moons()
    init = lambda seed: _moons.init_mlp(jax.random.key(seed))  # noqa: E731
    return Task((x_tr, y_tr, x_te, y_te), init, _moons.loss_fn, _moons.accuracy, 0.01, epochs,
                minibatches=False)  # fmt: skip


def digits_task(epochs: int) -> Task:
    """The digits MLP of examples/low_precision.py: a stratified quarter held out."""
    init = lambda seed: low_precision.init_mlp(seed, jnp.float32)  # noqa: E731
    return Task(low_precision.load(), init, low_precision.loss_fn, low_precision.accuracy, 1e-3,
                epochs, minibatches=True)  # fmt: skip


def batches(task: Task, seed: int) -> np.ndarray:
    """Row indices of every step's batch: (steps, batch)."""
    n = int(task.data[0].shape[0])
    if task.minibatches:
        return low_precision.batches(n, task.epochs, seed)
    return np.tile(np.arange(n), (task.epochs, 1))


def train(task: Task, mu_dtype: Any, nu_dtype: Any, seed: int) -> dict[str, Any]:
    """One run: the training-batch loss of every step, final metrics, state bytes."""
    x_tr, y_tr, x_te, y_te = task.data
    optimizer = adamjax.adam(task.learning_rate, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    params, train_step = task.init(seed), harness.optimizer_step(optimizer, loss=task.loss)

    def step(carry: tuple[Params, Any], rows: jax.Array) -> tuple[Any, jax.Array]:
        params, state, loss = train_step(*carry, x_tr[rows], y_tr[rows])
        return (params, state), loss

    run = jax.jit(lambda carry, rows: jax.lax.scan(step, carry, rows))
    (params, state), losses = run((params, optimizer.init(params)), batches(task, seed))
    return {"losses": np.asarray(losses), "train_loss": float(task.loss(params, x_tr, y_tr)),
            "test_accuracy": float(task.accuracy(params, x_te, y_te)),
            "state_bytes": harness.nbytes(state)}  # fmt: skip


def mean_std(runs: list[dict[str, Any]], key: str) -> str:
    values = np.array([run[key] for run in runs])
    return f"{values.mean():.4f} ± {values.std():.4f}"


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    """A row per task and moment dtypes; the gap: the largest relative loss difference from the
    float32 run of the same seed, averaged over seeds."""
    rows = []
    for task, by_moments in results.items():
        for moments, runs in by_moments.items():
            gaps = [np.max(np.abs(r["losses"] - f["losses"]) / np.abs(f["losses"]))
                    for r, f in zip(runs, by_moments[REFERENCE], strict=True)]  # fmt: skip
            rows.append([task, moments, f"{runs[0]['state_bytes']:,}", mean_std(runs, "train_loss"),
                         mean_std(runs, "test_accuracy"), f"{np.mean(gaps):.2%}"])  # fmt: skip
    return harness.markdown(COLUMNS, rows)


def smooth(curve: np.ndarray, width: int) -> np.ndarray:
    return np.convolve(curve, np.ones(width) / width, mode="valid") if width > 1 else curve


def plot(results: dict[str, dict[str, list[dict]]], out: str) -> None:
    """Mean loss curves (top) and their ratio to the float32 run's (bottom), per task."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * len(results), 6.5))
    axes = np.asarray(fig.subplots(2, len(results), sharex="col")).reshape(2, -1)
    for column, (task, by_moments) in enumerate(results.items()):
        top, bottom = axes[0, column], axes[1, column]
        reference = np.mean([r["losses"] for r in by_moments[REFERENCE]], axis=0)
        width = 1 if len(reference) <= 1000 else 25  # minibatch losses are noisy: smooth them
        for moments, runs in by_moments.items():
            curve = smooth(np.mean([r["losses"] for r in runs], axis=0), width)
            top.plot(curve, label=moments, lw=1.2)
            bottom.plot(curve / smooth(reference, width), label=moments, lw=1.2)
        top.set(yscale="log", ylabel="training loss (mean over seeds)", title=task)
        top.legend(fontsize=8)
        bottom.axhline(1.0, color="black", lw=0.6)
        bottom.set_ylabel("loss / float32-moments loss")
        bottom.set_xlabel("step" + (f" (moving average of {width})" if width > 1 else ""))
    fig.tight_layout()
    harness.replace_atomically(out, lambda path: fig.savefig(path, dpi=110, format="png"))


def tracking_table(at: Sequence[int] = (999, 1500, 2999), drop_at: int = 1000) -> str:
    """Median second moment over 1000 coordinates, stored in float32 or bfloat16."""
    scale = jnp.where(jnp.arange(3000) < drop_at, 1.0, 0.1)[:, None]
    grads = scale * jax.random.normal(jax.random.key(0), (3000, 1000))
    rows = []
    for b2 in (0.999, 0.99):
        for name, dtype in (("float32", jnp.float32), ("bfloat16", BF16)):

            def step(v: jax.Array, g: jax.Array, dtype: Any = dtype, b2: float = b2) -> Any:
                v = (b2 * v.astype(jnp.float32) + (1 - b2) * g * g).astype(dtype)
                return v, jnp.median(v.astype(jnp.float32))

            curve = np.asarray(jax.lax.scan(step, jnp.zeros(1000, dtype), grads)[1])
            rows.append([b2, name, *(f"{curve[t]:.4f}" for t in at)])
    return harness.markdown(["b2", "stored in", *(f"median v at step {t + 1}" for t in at)], rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "2 seeds, short runs", interleaving=False)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--plot", metavar="PNG", help="also save the mean loss curves")
    args = parser.parse_args(argv)
    seeds = range(2 if args.quick else args.seeds)
    tasks = {"make_moons MLP 2-10-1": moons_task(100 if args.quick else 1000),
             "digits MLP 64-64-10": digits_task(3 if args.quick else 40)}  # fmt: skip
    results = {name: {m: [train(task, *MOMENTS[m], seed) for seed in seeds] for m in MOMENTS}
               for name, task in tasks.items()}  # fmt: skip
    print(f"{len(seeds)} seeds; mean ± standard deviation over seeds\n\n{table(results)}")
    print("\nSecond moment of a gradient stream whose scale drops 10x at step 1000:\n")
    print(tracking_table())
    harness.finish(args.json, results)
    if args.plot:
        plot(results, args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
