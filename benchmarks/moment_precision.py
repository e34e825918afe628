r"""Training quality with bfloat16 moments (``mu_dtype`` / ``nu_dtype``) against float32 moments.

``adamjax.adam`` with moments stored in float32 or bfloat16 (arithmetic in float32), from
several seeds, on the quickstart's make_moons MLP (full batch, lr 0.01, 1000 epochs) and a
digits 64-64-10 ReLU MLP (minibatches of 64, lr 1e-3, 40 epochs); then :math:`v \leftarrow b_2
v + (1 - b_2) g^2` stored in bfloat16 on gradients whose scale drops tenfold at step 1000.
docs/performance.md describes the tables.

    python -m benchmarks.moment_precision [--quick] [--plot docs/moment_precision.png]
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import adamjax
from benchmarks import harness
from examples import _moons

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
    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, jax.Array, jax.Array], jax.Array]
    accuracy: Callable[[Params, jax.Array, jax.Array], jax.Array]
    learning_rate: float
    epochs: int
    batch_size: int | None = None  # None: full batch


def moons_task(epochs: int) -> Task:
    x_tr, x_te, y_tr, y_te = _moons.load_moons()
    return Task((x_tr, y_tr, x_te, y_te), _moons.init_mlp, _moons.loss_fn, _moons.accuracy,
                0.01, epochs)  # fmt: skip


def digits_init(key: jax.Array) -> Params:
    k1, k2 = jax.random.split(key)
    w1 = (2 / 64) ** 0.5 * jax.random.normal(k1, (64, 64))
    w2 = 0.125 * jax.random.normal(k2, (64, 10))
    return {"w1": w1, "b1": jnp.zeros(64), "w2": w2, "b2": jnp.zeros(10)}


def digits_logits(p: Params, x: jax.Array) -> jax.Array:
    return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def digits_loss(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    z = digits_logits(p, x)
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0])


def digits_accuracy(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(digits_logits(p, x), axis=1) == y)


def digits_task(epochs: int) -> Task:
    """scikit-learn's digits, a stratified quarter held out, standardized on the rest."""
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    mean, std = np.mean(x_tr, 0), np.std(x_tr, 0) + 1e-6
    features = lambda x: jnp.asarray((x - mean) / std, jnp.float32)  # noqa: E731
    labels = lambda y: jnp.asarray(y, jnp.int32)  # noqa: E731
    data = (features(x_tr), labels(y_tr), features(x_te), labels(y_te))
    return Task(data, digits_init, digits_loss, digits_accuracy, 1e-3, epochs, batch_size=64)


def batches(task: Task, seed: int) -> np.ndarray:
    """Row indices of every step's minibatch: (steps, batch), reshuffled every epoch."""
    n = task.data[0].shape[0]
    if task.batch_size is None:
        return np.tile(np.arange(n), (task.epochs, 1))
    rng, per_epoch = np.random.default_rng(seed), n // task.batch_size
    order = [rng.permutation(n)[: per_epoch * task.batch_size] for _ in range(task.epochs)]
    return np.concatenate(order).reshape(-1, task.batch_size)


def train(task: Task, mu_dtype: Any, nu_dtype: Any, seed: int) -> dict[str, Any]:
    """One run: the training-batch loss of every step, final metrics, state bytes."""
    x_tr, y_tr, x_te, y_te = task.data
    optimizer = adamjax.adam(task.learning_rate, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    params = task.init(jax.random.key(seed))

    def step(carry: tuple[Params, Any], rows: jax.Array) -> tuple[Any, jax.Array]:
        loss, grads = jax.value_and_grad(task.loss)(carry[0], x_tr[rows], y_tr[rows])
        return harness.optimizer_step(optimizer)(carry[0], carry[1], grads), loss

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
    harness.write_json(args.json, results)
    if args.plot:
        plot(results, args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
