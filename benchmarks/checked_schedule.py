"""What ``adamjax.schedules.checked`` costs: jitted Adam steps with and without the check.

The schedule is ``warmup_cosine_decay(0.0, 1e-3, 100, 10_000)``. Variants:

* ``plain``: ``jax.jit(step)`` with the schedule as it is;
* ``checked, throw``: ``jax.jit(checkify.checkify(step))`` with ``checked(schedule)``, and
  ``error.throw()`` after every step, as a training loop that stops at the first bad value
  does (each ``throw`` waits for the step to finish);
* ``checked, unread``: the same compiled step, the error returned but not read, which leaves
  only the device-side cost of the check.

Cases (float32):

* ``1 leaf x 1M``: the bare optimizer step ``(params, state, grads) -> (params, state)`` on
  fixed gradients;
* ``make_moons MLP``: the quickstart's train step, ``value_and_grad`` of the 2-10-1 MLP's
  binary cross-entropy on the 700 training points of make_moons, then the Adam update.

Every step is jitted with params and state donated. Each variant runs a batch of steps per
round (the batch is sized so that the plain step's batch lasts about ``--batch-ms``); the order
of the variants rotates every round. The table gives, per variant, the median and the 10th
percentile over the rounds of the time per step, each with its ratio to the plain step's (on a
busy machine the 10th percentile is the steadier of the two). Nothing here asserts a time.

    python -m benchmarks.checked_schedule            # 41 rounds, ~10 ms batches
    python -m benchmarks.checked_schedule --quick    # 3 rounds, ~5 ms batches
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

import adamjax
from adamjax import schedules
from adamjax._base import Schedule
from examples._moons import init_mlp, load_moons, loss_fn

VARIANTS = ("plain", "checked, throw", "checked, unread")
CASES = ("1 leaf x 1M", "make_moons MLP")


def schedule() -> Schedule:
    """The learning rate of every variant (wrapped in ``checked`` by the checked ones)."""
    return schedules.warmup_cosine_decay(0.0, 1e-3, 100, 10_000)


def case_inputs(case: str) -> tuple[Any, tuple[Any, ...], Callable[..., Any]]:
    """Initial params, the step's extra arguments, and ``grads_of(params, *extra)``."""
    if case == "1 leaf x 1M":
        rng = np.random.default_rng(0)
        grads = jnp.asarray(rng.standard_normal(1_000_000), jnp.float32)
        return jnp.zeros(1_000_000, jnp.float32), (grads,), lambda params, grads: grads
    x_train, _, y_train, _ = load_moons()
    params = init_mlp(jax.random.key(0))
    return params, (x_train, y_train), jax.grad(loss_fn)


def make_step(
    optimizer: adamjax.GradientTransformation, grads_of: Callable[..., Any]
) -> Callable[..., tuple[Any, Any]]:
    def step(params: Any, state: Any, *extra: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads_of(params, *extra), state, params)
        return adamjax.apply_updates(params, updates), state

    return step


class Runner:
    """One variant of one case: its compiled step and the params and state it carries."""

    def __init__(self, case: str, variant: str) -> None:
        params, self.extra, grads_of = case_inputs(case)
        lr = schedule() if variant == "plain" else schedules.checked(schedule())
        optimizer = adamjax.adam(lr)
        step = make_step(optimizer, grads_of)
        self.checked = variant != "plain"
        self.throw = variant == "checked, throw"
        fn = checkify.checkify(step) if self.checked else step
        self.step = jax.jit(fn, donate_argnums=(0, 1))
        self.params = jax.tree.map(lambda x: jnp.array(x, copy=True), params)
        self.state = optimizer.init(self.params)

    def run(self, n: int) -> None:
        params, state, error = self.params, self.state, None
        for _ in range(n):
            if self.checked:
                error, (params, state) = self.step(params, state, *self.extra)
                if self.throw:
                    error.throw()
            else:
                params, state = self.step(params, state, *self.extra)
        jax.block_until_ready((params, state))
        if error is not None and not self.throw:
            error.throw()  # after the timed batch: the check did run, and passed
        self.params, self.state = params, state


def _seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(case: str, rounds: int, batch_seconds: float) -> dict[str, list[float]]:
    """Seconds per step of each variant, one sample per round, from interleaved rounds."""
    runners = {variant: Runner(case, variant) for variant in VARIANTS}
    for runner in runners.values():
        runner.run(3)  # compile and warm up
    per_step = _seconds(lambda: runners["plain"].run(10)) / 10
    batch = max(1, round(batch_seconds / per_step))
    times: dict[str, list[float]] = {variant: [] for variant in runners}
    for r in range(rounds):
        order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
        for variant in order:
            runner = runners[variant]
            times[variant].append(_seconds(lambda runner=runner: runner.run(batch)) / batch)
    return times


def _time(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def markdown_table(results: dict[str, dict[str, list[float]]]) -> str:
    """Median and 10th percentile of each variant, in us, with ratios to the plain step."""
    header = [f"{variant}: median, p10 (us)" for variant in VARIANTS]
    lines = ["| case | " + " | ".join(header) + " |", "|---|" + "---|" * len(VARIANTS)]
    for case, samples in results.items():
        stats = {v: (statistics.median(t), float(np.percentile(t, 10))) for v, t in samples.items()}
        plain_median, plain_p10 = stats["plain"]
        cells = [
            f"{_time(median)} ({median / plain_median:.2f}x), {_time(p10)} ({p10 / plain_p10:.2f}x)"
            for median, p10 in stats.values()
        ]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--batch-ms", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="3 rounds of ~5 ms batches")
    args = parser.parse_args(argv)
    rounds, batch_ms = (3, 5.0) if args.quick else (args.rounds, args.batch_ms)
    print(f"jax {jax.__version__} on {', '.join(str(d) for d in jax.devices())}")
    print(f"{rounds} interleaved rounds, ~{batch_ms:.0f} ms batches; time per step\n")
    results = {case: measure(case, rounds, batch_ms / 1e3) for case in CASES}
    print(markdown_table(results))


if __name__ == "__main__":
    main()
