"""What ``adamjax.schedules.checked`` costs: jitted Adam steps with and without the check.

``warmup_cosine_decay(0.0, 1e-3, 100, 10_000)`` as it is (``plain``), and ``checked(...)`` under
``checkify.checkify``, with ``error.throw()`` after every step or with the error unread (the
device-side cost alone); on one leaf of 1M parameters with fixed gradients and on the make_moons
MLP train step; params and state donated, steps queued without waiting, interleaved.

    python -m benchmarks.checked_schedule [--quick]
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import checkify

import adamjax
from adamjax import schedules
from benchmarks import harness
from examples._moons import init_mlp, load_moons, loss_fn

VARIANTS = ("plain", "checked, throw", "checked, unread")


def case_inputs(case: str) -> tuple[Any, tuple[Any, ...], Any]:
    """Initial params, the step's constant arguments (gradients, or a batch) and the loss."""
    if case == "1 leaf x 1M":
        return jnp.zeros(1_000_000, jnp.float32), tuple(harness.random_trees((1_000_000,), 1)), None
    x_train, _, y_train, _ = load_moons()
    return init_mlp(jax.random.key(0)), (x_train, y_train), loss_fn


def contender(case: str, variant: str) -> harness.Contender:
    params, args, loss = case_inputs(case)
    schedule = schedules.warmup_cosine_decay(0.0, 1e-3, 100, 10_000)
    optimizer = adamjax.adam(schedule if variant == "plain" else schedules.checked(schedule))
    step = harness.optimizer_step(optimizer, loss=loss)

    def checked_step(params: Any, state: Any, *args: Any) -> tuple[Any, Any, Any]:
        error, (params, state) = checkify.checkify(step)(params, state, *args)
        return params, state, error

    throw = (lambda out: out[2].throw()) if variant == "checked, throw" else None
    fn = step if variant == "plain" else checked_step
    return harness.step_contender(variant, fn, (params, optimizer.init(params)), args, throw)


def main(argv: Sequence[str] | None = None) -> None:
    args = harness.parser(__doc__, "3 rounds of ~5 ms batches").parse_args(argv)
    rounds, batch_seconds = harness.start(args, full=(41, 10), quick=(3, 5))
    rows = []
    for case in ("1 leaf x 1M", "make_moons MLP"):
        contenders = [contender(case, variant) for variant in VARIANTS]
        rows += harness.timed_rows(contenders, rounds, batch_seconds, "plain", case)
        for c in contenders[1:]:
            c.run(1)[2].throw()  # the check ran, and passed
    print(harness.markdown(["case", "variant", *harness.columns("plain")], rows))
    harness.finish(args.json, rows)


if __name__ == "__main__":
    main()
