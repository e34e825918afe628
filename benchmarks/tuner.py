"""A plain-Python random search over Adam's settings against one compiled sweep.

The baseline: trials of Adam on ``x^2 + y^2`` drawn from a seeded ``random.Random``, run by
an ``Adam`` class on two Python floats; NumPy and ``adamjax.sweep.run`` replay the same trials.
docs/ensembles.md describes the contenders and the columns.

    python -m benchmarks.tuner [--quick] [--json PATH]
"""

import math
import random
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)  # the baseline computes in Python floats (float64)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import adamjax  # noqa: E402
from benchmarks import harness  # noqa: E402

# adamjax contenders: (dtype, point as one array, record every loss, scan unroll)
SWEEPS = [(jnp.float64, True, False, 1), (jnp.float64, True, True, 1),
          (jnp.float64, False, False, 1), (jnp.float64, False, True, 4),
          (jnp.float32, True, False, 1)]  # fmt: skip
RANGES = [(0.0001, 0.01), (0.8, 0.999), (0.8, 0.999), (1e-8, 1e-6)]  # lr, beta1, beta2, eps


class Adam:
    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate, self.beta1, self.beta2 = learning_rate, beta1, beta2
        self.epsilon, self.m, self.v, self.t = epsilon, [], [], 0

    def update(self, params, grads):
        if not self.m:
            self.m, self.v = [0] * len(params), [0] * len(params)
        self.t += 1
        for i in range(len(params)):
            self.m[i] = self.beta1 * self.m[i] + (1 - self.beta1) * grads[i]
            self.v[i] = self.beta2 * self.v[i] + (1 - self.beta2) * (grads[i] ** 2)
            m_hat = self.m[i] / (1 - self.beta1**self.t)
            v_hat = self.v[i] / (1 - self.beta2**self.t)
            params[i] -= self.learning_rate * m_hat / (math.sqrt(v_hat) + self.epsilon)
        return params


def draw_trials(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's draws: hyperparameters (n, 4) in RANGES order and starts (n, 2)."""
    rng, hp, starts = random.Random(seed), [], []
    for _ in range(n):
        hp.append([rng.uniform(low, high) for low, high in RANGES])
        starts.append([rng.uniform(-10, 10), rng.uniform(-10, 10)])
    return np.array(hp), np.array(starts)


def python_loop_floats(hp: np.ndarray, starts: np.ndarray, iterations: int) -> np.ndarray:
    """The baseline: one trial after another, ``Adam`` on a list of two Python floats."""
    scores = []
    for config, (x, y) in zip(hp.tolist(), starts.tolist(), strict=True):
        adam = Adam(*config)
        for _ in range(iterations):
            x, y = adam.update([x, y], [2 * x, 2 * y])  # the gradient of x^2 + y^2
        scores.append(x**2 + y**2)
    return np.array(scores)


def numpy_vectorised(hp: np.ndarray, starts: np.ndarray, iterations: int) -> np.ndarray:
    """One loop over all trials at once: Adam on arrays of shape (trials, 2); ``sum(p ** 2)``."""
    lr, b1, b2, eps = (hp[:, i : i + 1] for i in range(4))
    p, m, v = starts.copy(), np.zeros_like(starts), np.zeros_like(starts)
    for t in range(1, iterations + 1):
        g = 2 * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return np.sum(p**2, axis=-1)


def sweep_contender(hp: np.ndarray, starts: np.ndarray, iterations: int, sweep: Any) -> Any:
    """Every trial in one compiled ``adamjax.sweep.run``; ``first_call_s`` includes compiling."""
    dtype, one_array, every_loss, unroll = sweep
    configs = {name: hp[:, i] for i, name in enumerate(("learning_rate", "b1", "b2", "eps"))}
    point: Any = jnp.asarray(starts, dtype)
    loss: Any = lambda p: jnp.sum(p**2)  # noqa: E731
    if not one_array:
        point, loss = {"x": point[:, 0], "y": point[:, 1]}, lambda p: p["x"] ** 2 + p["y"] ** 2

    def search() -> np.ndarray:
        result = adamjax.sweep.run(
            adamjax.adam, configs, loss, point, iterations, batched_params=True, unroll=unroll,
            log_every=1 if every_loss else iterations,
        )  # fmt: skip
        return np.asarray(result.final_loss, dtype=np.float64)

    first = harness.seconds(search)
    name = (f"adamjax.sweep.run, {jnp.dtype(dtype).name}, "
            f"{'[x, y] one array' if one_array else 'x, y two leaves'}, "
            f"{'every loss' if every_loss else 'final loss only'}"
            f"{f', unroll={unroll}' if unroll > 1 else ''}")  # fmt: skip
    run = lambda n: [search() for _ in range(n)][-1]  # noqa: E731
    return harness.Contender(name, run, {"first_call_s": first})


def best_of(scores: np.ndarray) -> int:
    return int(np.argmin(np.where(np.isfinite(scores), scores, np.inf)))


def contenders(hp: np.ndarray, starts: np.ndarray, iterations: int) -> list[harness.Contender]:
    """The plain searches (``run(k)``: ``k`` searches, the last one's scores), then the sweeps."""
    plain = {"Python loop, floats": python_loop_floats,
             "NumPy, vectorised over trials": numpy_vectorised}  # fmt: skip
    search = lambda f, k: [f(hp, starts, iterations) for _ in range(k)][-1]  # noqa: E731
    found = [harness.Contender(name, partial(search, f)) for name, f in plain.items()]
    return found + [sweep_contender(hp, starts, iterations, sweep) for sweep in SWEEPS]


COLUMNS = ("contender", "median us", "p10-p90 us", "min us", "speed-up (median)",
           "speed-up (min)", "best trial", "best score", "same best", "max abs. score diff",
           "first call s")  # fmt: skip


def table_row(r: dict[str, Any], base: dict[str, Any], scores: np.ndarray) -> list[Any]:
    """Fills in ``r`` the speed-ups and score checks against the baseline's; the row's cells."""
    best = best_of(scores)
    r.update(speedup=base["median_s"] / r["median_s"], speedup_min=base["min_s"] / r["min_s"],
             best_trial=best, same_best=best == best_of(base["scores"]),
             best_score=float(scores[best]),
             max_abs_score_diff=np.max(np.abs(scores - base["scores"])))  # fmt: skip
    return [
        r["contender"], harness.us(r["median_s"]), harness.spread(r), harness.us(r["min_s"]),
        f"{r['speedup']:.1f}x", f"{r['speedup_min']:.1f}x", best, f"{r['best_score']:.6g}",
        "yes" if r["same_best"] else "NO", f"{r['max_abs_score_diff']:.1e}",
        f"{r['first_call_s']:.2f}" if "first_call_s" in r else "",
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "20 trials, 3 rounds")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n, iterations = args.trials or (20 if args.quick else 100), args.iterations
    rounds, _ = harness.start(args, full=(7, 0), quick=(3, 0))  # a batch: one search
    hp, starts = draw_trials(n, args.seed)
    found = contenders(hp, starts, iterations)
    samples = harness.interleaved(found, rounds, batch_seconds=0.0)  # one search a batch
    rows = harness.records(found, samples)
    scores = {c.name: c.run(1) for c in found}
    base = {**rows[0], "scores": scores[found[0].name]}
    best = best_of(base["scores"])
    settings = ", ".join(f"{x:.6g}" for x in hp[best])
    print(f"{n} trials x {iterations} iterations on x^2 + y^2; wall time per search\n"
          f"Python loop's best: trial {best}, lr, beta1, beta2, eps "
          f"{settings}, score {base['scores'][best]:.6g}\n")  # fmt: skip
    table = [table_row(r, base, scores[r["contender"]]) for r in rows]
    print(harness.markdown(COLUMNS, table))
    harness.finish(args.json, {"trials": n, "iterations": iterations, "rows": rows})


if __name__ == "__main__":
    main()
