"""What ``adamjax.schedules.checked`` costs: jitted Adam steps with and without the check.

``warmup_cosine_decay(0.0, 1e-3, 100, 10_000)`` as it is (``plain``), and ``checked(...)`` under
``checkify.checkify``, with ``error.throw()`` after every step or with the error unread (the
device-side cost alone); on one leaf of 1M parameters with fixed gradients and on the make_moons
MLP train step; params and state donated, steps queued without waiting, interleaved.

    python -m benchmarks.checked_schedule [--quick]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

import adamjax
from adamjax import schedules
from benchmarks import harness
from examples._moons import init_mlp, load_moons, loss_fn

VARIANTS = ("plain", "checked, throw", "checked, unread")


def case_inputs(case: str) -> tuple[Any, tuple[Any, ...], Callable[..., Any]]:
    """Initial params, the step's constant arguments, and ``grads_of(params, *args)``."""
    if case == "1 leaf x 1M":
        grads = np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32)
        return jnp.zeros(1_000_000, jnp.float32), (grads,), lambda params, grads: grads
    x_train, _, y_train, _ = load_moons()
    return init_mlp(jax.random.key(0)), (x_train, y_train), jax.grad(loss_fn)


def contender(case: str, variant: str) -> harness.Contender:
    params, args, grads_of = case_inputs(case)
    schedule = schedules.warmup_cosine_decay(0.0, 1e-3, 100, 10_000)
    optimizer = adamjax.adam(schedule if variant == "plain" else schedules.checked(schedule))

    def step(params: Any, state: Any, *args: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads_of(params, *args), state, params)
        return adamjax.apply_updates(params, updates), state

    def checked_step(params: Any, state: Any, *args: Any) -> tuple[Any, Any, Any]:
        error, (params, state) = checkify.checkify(step)(params, state, *args)
        return params, state, error

    throw = (lambda out: out[2].throw()) if variant == "checked, throw" else None
    fn = step if variant == "plain" else checked_step
    return harness.step_contender(variant, fn, (params, optimizer.init(params)), args, throw)


def main(argv: Sequence[str] | None = None) -> None:
    args = harness.parser(__doc__, "3 rounds of ~5 ms batches").parse_args(argv)
    rounds, batch_seconds = harness.timing(args, full=(41, 10), quick=(3, 5))
    print(harness.header())
    print(f"{rounds} interleaved rounds, ~{batch_seconds * 1e3:.0f} ms batches; time per step\n")
    rows = []
    for case in ("1 leaf x 1M", "make_moons MLP"):
        contenders = [contender(case, variant) for variant in VARIANTS]
        samples = harness.interleaved(contenders, rounds, batch_seconds)
        for c in contenders[1:]:
            c.run(1)[2].throw()  # the check ran, and passed
        rows += [[case, *row] for row in harness.rows(contenders, samples, "plain")]
    print(harness.markdown(["case", "variant", *harness.columns("plain")], rows))
    print(f"\nload average after: {harness.load_average()}")


if __name__ == "__main__":
    main()
