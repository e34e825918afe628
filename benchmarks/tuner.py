"""Benchmark: a plain-Python random search over Adam's settings against one compiled sweep.

What is measured
----------------
A random search draws, for each of 100 trials, a learning rate in [1e-4, 1e-2), beta1 and beta2
in [0.8, 0.999) and eps in [1e-8, 1e-6), then a start (x, y) in [-10, 10)^2, runs 1000 Adam
iterations on ``x^2 + y^2`` and keeps the configuration with the lowest final objective.
Contenders, all on the same sampled configurations and starts:

* ``Python loop, floats``: the baseline, an ``Adam`` class stepping a list of two Python floats
  (``math.sqrt``), driven by an ``AdamTuner`` loop over trials, one trial after another. The
  draws come from a seeded ``random.Random`` and are recorded so that every other contender
  replays them.
* ``Python loop, NumPy arrays``: the same loop with the two coordinates in a NumPy array.
* ``NumPy, vectorised over trials``: one loop of 1000 iterations over (trials, 2) arrays, the
  strongest plain-NumPy version, shown for context.
* ``adamjax.sweep.run``: every trial in one ``jit(vmap(scan))`` program, float64 (x64 on, like
  the Python floats) and float32. The point is one array ``[x, y]`` (the baseline's list of
  two parameters) or two leaves ``{"x": x, "y": y}``; ``final loss only`` keeps, like the
  baseline, just each trial's final objective (``log_every=iterations``), ``every loss`` also
  records all 1000 losses of every trial (``log_every=1``); ``unroll=4`` runs four steps per
  loop iteration. Timed on repeated calls with the same shapes, which reuse the compiled
  program; the first call's compile time is reported separately.

Each round runs every contender once in a rotating order; the table gives the median wall time
per search over the rounds, the p10-p90 spread, the fastest round, the speed-up over the
Python loop on floats (median over median, and fastest over fastest), the best trial each
contender finds with its score, and the largest difference between a contender's final
objective and the baseline's over all trials.

Usage::

    python -m benchmarks.tuner [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)  # the baseline computes in Python floats (float64)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import adamjax  # noqa: E402
from adamjax import sweep  # noqa: E402

# adamjax contenders: (dtype, point as one array, record every loss, scan unroll)
SWEEPS = [
    (jnp.float64, True, False, 1),
    (jnp.float64, True, True, 1),
    (jnp.float64, False, False, 1),
    (jnp.float64, False, True, 4),
    (jnp.float32, True, False, 1),
]
RANGES = [(0.0001, 0.01), (0.8, 0.999), (0.8, 0.999), (1e-8, 1e-6)]  # lr, beta1, beta2, eps


# ----------------------------------------------------------------------------------------------
# The baseline: Adam on a list of Python floats, and a random search over trials. The draws come
# from a seeded ``random.Random`` and are recorded with every trial's score, so that the other
# contenders replay exactly the same trials.


class Adam:
    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate = learning_rate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.m = None
        self.v = None
        self.t = 0

    def update(self, params, grads):
        if self.m is None:
            self.m = [0] * len(params)
            self.v = [0] * len(params)
        assert self.m is not None and self.v is not None  # for the type checker
        self.t += 1
        for i in range(len(params)):
            self.m[i] = self.beta1 * self.m[i] + (1 - self.beta1) * grads[i]
            self.v[i] = self.beta2 * self.v[i] + (1 - self.beta2) * (grads[i] ** 2)
            m_hat = self.m[i] / (1 - self.beta1**self.t)
            v_hat = self.v[i] / (1 - self.beta2**self.t)
            params[i] -= self.learning_rate * m_hat / (math.sqrt(v_hat) + self.epsilon)
        return params


def objective_function(x, y):
    return x**2 + y**2


def compute_gradients(x, y):
    return 2 * x, 2 * y


class AdamTuner:
    def __init__(self, objective_function, parameter_ranges, rng: random.Random):
        self.objective_function = objective_function
        self.parameter_ranges = parameter_ranges
        self.rng = rng
        self.trials: list[tuple[list[float], tuple[float, float], float]] = []

    def tune(self, num_trials=100, iterations=1000):
        best_params = None
        best_score = float("inf")
        for _ in range(num_trials):
            params = [self.rng.uniform(r[0], r[1]) for r in self.parameter_ranges]
            adam = Adam(*params)
            x, y = self.rng.uniform(-10, 10), self.rng.uniform(-10, 10)
            start = (x, y)
            for _ in range(iterations):
                grad_x, grad_y = compute_gradients(x, y)
                x, y = adam.update([x, y], [grad_x, grad_y])
            score = self.objective_function(x, y)
            self.trials.append((params, start, score))
            if score < best_score:
                best_score = score
                best_params = params
        return best_params, best_score


# ----------------------------------------------------------------------------------------------
# The same trials, replayed


@dataclass(frozen=True)
class Trials:
    """Recorded draws: hyperparameters (trials, 4) in RANGES order, starts (trials, 2)."""

    hyperparameters: np.ndarray
    starts: np.ndarray

    @property
    def n(self) -> int:
        return len(self.starts)


def draw_trials(n: int, seed: int, iterations: int) -> tuple[Trials, np.ndarray]:
    """Run the baseline search once; return its draws and every trial's score."""
    tuner = AdamTuner(objective_function, RANGES, random.Random(seed))
    tuner.tune(num_trials=n, iterations=iterations)
    hp = np.array([t[0] for t in tuner.trials])
    starts = np.array([t[1] for t in tuner.trials])
    return Trials(hp, starts), np.array([t[2] for t in tuner.trials])


def python_loop_floats(trials: Trials, iterations: int) -> np.ndarray:
    """The baseline loop on Python floats, replaying the recorded draws."""
    scores = []
    for (lr, b1, b2, eps), (x, y) in zip(trials.hyperparameters, trials.starts, strict=True):
        adam = Adam(float(lr), float(b1), float(b2), float(eps))
        x, y = float(x), float(y)
        for _ in range(iterations):
            grad_x, grad_y = compute_gradients(x, y)
            x, y = adam.update([x, y], [grad_x, grad_y])
        scores.append(objective_function(x, y))
    return np.array(scores)


def python_loop_numpy(trials: Trials, iterations: int) -> np.ndarray:
    """The baseline loop with the two coordinates in a NumPy array."""
    scores = []
    for (lr, b1, b2, eps), start in zip(trials.hyperparameters, trials.starts, strict=True):
        p = start.astype(np.float64).copy()
        m, v = np.zeros(2), np.zeros(2)
        for t in range(1, iterations + 1):
            g = 2 * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        scores.append(float(np.sum(p**2)))
    return np.array(scores)


def numpy_vectorised(trials: Trials, iterations: int) -> np.ndarray:
    """One loop over all trials at once: arrays of shape (trials, 2)."""
    lr, b1, b2, eps = (trials.hyperparameters[:, i : i + 1] for i in range(4))
    p = trials.starts.astype(np.float64).copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, iterations + 1):
        g = 2 * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return np.sum(p**2, axis=1)


def bowl(params: dict[str, jax.Array]) -> jax.Array:
    return params["x"] ** 2 + params["y"] ** 2


def bowl_of_point(point: jax.Array) -> jax.Array:
    return jnp.sum(point**2)


def adamjax_sweep(
    trials: Trials, iterations: int, dtype: Any, one_array: bool, every_loss: bool, unroll: int
) -> Callable[[], np.ndarray]:
    """One compiled run of every trial; returns a function that runs it again."""
    configs = {
        name: trials.hyperparameters[:, i]
        for i, name in enumerate(("learning_rate", "b1", "b2", "eps"))
    }
    starts: Any = jnp.asarray(trials.starts, dtype)
    loss_fn: Callable[..., jax.Array] = bowl_of_point
    if not one_array:
        starts, loss_fn = {"x": starts[:, 0], "y": starts[:, 1]}, bowl
    log_every = 1 if every_loss else iterations

    def run() -> np.ndarray:
        result = sweep.run(
            adamjax.adam,
            configs,
            loss_fn,
            starts,
            iterations,
            batched_params=True,
            unroll=unroll,
            log_every=log_every,
        )
        return np.asarray(result.final_loss, dtype=np.float64)

    return run


def sweep_name(dtype: Any, one_array: bool, every_loss: bool, unroll: int) -> str:
    point = "[x, y] one array" if one_array else "x, y two leaves"
    kept = "every loss" if every_loss else "final loss only"
    extra = f", unroll={unroll}" if unroll > 1 else ""
    return f"adamjax.sweep.run, {jnp.dtype(dtype).name}, {point}, {kept}{extra}"


# ----------------------------------------------------------------------------------------------
# Timing


@dataclass
class Contender:
    name: str
    run: Callable[[], np.ndarray]
    info: dict[str, float]


def measure(contenders: Sequence[Contender], rounds: int) -> dict[str, list[float]]:
    """Seconds per search, one sample per round; the order rotates every round."""
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        k = r % len(contenders)
        for c in [*contenders[k:], *contenders[:k]]:
            start = time.perf_counter()
            c.run()
            samples[c.name].append(time.perf_counter() - start)
    return samples


def best_of(scores: np.ndarray) -> int:
    return int(np.argmin(np.where(np.isfinite(scores), scores, np.inf)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 trials, 3 rounds")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    n = args.trials or (20 if args.quick else 100)
    rounds = args.rounds or (3 if args.quick else 7)

    trials, tuner_scores = draw_trials(n, args.seed, args.iterations)
    contenders = [
        Contender("Python loop, floats", lambda: python_loop_floats(trials, args.iterations), {}),
        Contender(
            "Python loop, NumPy arrays", lambda: python_loop_numpy(trials, args.iterations), {}
        ),
        Contender(
            "NumPy, vectorised over trials", lambda: numpy_vectorised(trials, args.iterations), {}
        ),
    ]
    for dtype, one_array, every_loss, unroll in SWEEPS:
        run = adamjax_sweep(trials, args.iterations, dtype, one_array, every_loss, unroll)
        start = time.perf_counter()
        run()  # compiles
        first = time.perf_counter() - start
        name = sweep_name(dtype, one_array, every_loss, unroll)
        contenders.append(Contender(name, run, {"first_call_s": first}))

    scores = {c.name: c.run() for c in contenders}
    samples = measure(contenders, rounds)
    baseline = float(np.median(samples[contenders[0].name]))
    baseline_min = float(np.min(samples[contenders[0].name]))
    reference_best = best_of(tuner_scores)
    rows = []
    for c in contenders:
        p10, median, p90 = np.percentile(samples[c.name], [10, 50, 90])
        best = best_of(scores[c.name])
        rows.append(
            {
                "contender": c.name,
                "median_s": median,
                "p10_s": p10,
                "p90_s": p90,
                "min_s": float(np.min(samples[c.name])),
                "speedup": baseline / median,
                "speedup_min": baseline_min / float(np.min(samples[c.name])),
                "best_trial": best,
                "best_score": float(scores[c.name][best]),
                "same_best": best == reference_best,
                "max_abs_score_diff": float(np.max(np.abs(scores[c.name] - tuner_scores))),
                **c.info,
            }
        )

    print(
        f"jax {jax.__version__} on {', '.join(str(d) for d in jax.devices())}; "
        f"python {platform.python_version()}"
    )
    print(
        f"{n} trials x {args.iterations} iterations on x^2 + y^2; {rounds} interleaved rounds; "
        "wall time per search"
    )
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    best_lr, best_b1, best_b2, best_eps = trials.hyperparameters[reference_best]
    print(
        f"Python loop's best: trial {reference_best}, lr {best_lr:.6g}, beta1 "
        f"{best_b1:.6g}, beta2 {best_b2:.6g}, eps {best_eps:.3g}, "
        f"score {tuner_scores[reference_best]:.6g}"
    )
    print()
    columns = ("contender", "median s", "p10-p90 s", "min s", "speed-up (median)",
               "speed-up (min)", "best trial", "best score", "same best", "max abs. score diff",
               "first call s")  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        first = f"{r['first_call_s']:.2f}" if "first_call_s" in r else ""
        print(
            f"| {r['contender']} | {r['median_s']:.4f} | {r['p10_s']:.4f}-{r['p90_s']:.4f} | "
            f"{r['min_s']:.4f} | {r['speedup']:.1f}x | {r['speedup_min']:.1f}x | "
            f"{r['best_trial']} | {r['best_score']:.6g} | "
            f"{'yes' if r['same_best'] else 'NO'} | {r['max_abs_score_diff']:.1e} | {first} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trials": n, "iterations": args.iterations, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
