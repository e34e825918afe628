"""What the opt-in checks cost: jitted Adam steps with and without ``monitor`` or ``checked``.

``monitor``: ``adamjax.adam`` as its chain, with ``adamjax.monitor`` after ``moments``, and with
``monitor(every=10)``. ``checked``: ``adam`` with ``warmup_cosine_decay(0.0, 1e-3, 100, 10_000)``
as it is (``plain``), and with ``schedules.checked(...)`` under ``checkify.checkify``, calling
``error.throw()`` after every step or leaving the error unread (the device-side cost alone).
Cases: the bare step (1 leaf of 1M, 100 leaves of 10k, fixed gradients), a 784-256-256-10 MLP
train step (batch 128) and 8 such MLPs under ``jax.vmap`` (``checked``: the first and the
third); params and state donated, steps queued without waiting, interleaved.

    python -m benchmarks.overhead {monitor,checked} [--quick] [--json PATH]
"""

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

import adamjax
from adamjax import schedules
from benchmarks import harness

CASES = ("1 leaf x 1M", "100 leaves x 10k", "MLP train step", "8 MLPs, vmapped")
SUITES = {  # name: (variants, cases, full timing: rounds, batch ms)
    "monitor": (("adam", "+ monitor", "+ monitor(every=10)"), CASES, (15, 20)),
    "checked": (("plain", "checked, throw", "checked, unread"), CASES[::2], (41, 10)),
}
SCHEDULE = schedules.warmup_cosine_decay(0.0, 1e-3, 100, 10_000)


def optimizer(variant: str) -> adamjax.GradientTransformation:
    """The variant's Adam: with a plain or checked schedule, or as a chain, monitored or not."""
    if variant in SUITES["checked"][0]:
        return adamjax.adam(SCHEDULE if variant == "plain" else schedules.checked(SCHEDULE))
    every = {"adam": None, "+ monitor": 1, "+ monitor(every=10)": 10}[variant]
    middle = [] if every is None else [adamjax.monitor(1e-3, 1e-8, every=every)]
    moments, normalize = adamjax.moments(0.9, 0.999), adamjax.normalize(1e-8)
    rest = [adamjax.bias_correction(), normalize, adamjax.scale_by_learning_rate(1e-3)]
    return adamjax.chain(moments, *middle, *rest)


def mlp_loss(params: list[jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    h = x
    for i in range(0, len(params) - 2, 2):
        h = jax.nn.relu(h @ params[i] + params[i + 1])
    logits = h @ params[-2] + params[-1]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def case_inputs(case: str) -> tuple[list[jax.Array], tuple[Any, ...]]:
    """Initial params and the step's constant arguments (gradients, or a batch)."""
    rng = np.random.default_rng(0)

    def normal(*shape: int) -> jax.Array:
        return jnp.asarray(rng.normal(size=shape) / np.sqrt(shape[0]), jnp.float32)

    if case.startswith("1"):
        leaves, size = (1, 1_000_000) if case == "1 leaf x 1M" else (100, 10_000)
        return [jnp.zeros(size, jnp.float32)] * leaves, ([normal(size) for _ in range(leaves)],)
    params = []
    for fan_in, fan_out in itertools.pairwise((784, 256, 256, 10)):
        params += [normal(fan_in, fan_out), jnp.zeros(fan_out, jnp.float32)]
    if case == "8 MLPs, vmapped":
        params = [jnp.stack([p * (1 + 0.1 * i) for i in range(8)]) for p in params]
    x = jnp.asarray(rng.normal(size=(128, 784)), jnp.float32)
    return params, (x, jnp.asarray(rng.integers(0, 10, size=128), jnp.int32))


def contender(case: str, variant: str) -> harness.Contender:
    """The variant's jitted step on the case; checked steps also return the checkify error,
    last."""
    opt = optimizer(variant)
    params, args = case_inputs(case)
    step = harness.optimizer_step(opt, loss=None if case.startswith("1") else mlp_loss)
    if variant.startswith("checked"):

        def step(params: Any, state: Any, *args: Any, plain: Any = step) -> tuple[Any, ...]:
            error, outputs = checkify.checkify(plain)(params, state, *args)
            return (*outputs, error)

    if case == "8 MLPs, vmapped":
        step, state = jax.vmap(step, in_axes=(0, 0, None, None)), jax.vmap(opt.init)(params)
    else:
        state = opt.init(params)
    wait = (lambda out: out[-1].throw()) if variant == "checked, throw" else None
    return harness.step_contender(variant, step, (params, state), args, wait)


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "3 rounds of ~5 ms batches")
    parser.add_argument("suite", choices=list(SUITES))
    args = parser.parse_args(argv)
    variants, cases, full = SUITES[args.suite]
    rounds, batch_seconds = harness.start(args, full=full, quick=(3, 5))
    rows = []
    for case in cases:
        contenders = [contender(case, variant) for variant in variants]
        rows += harness.timed_rows(contenders, rounds, batch_seconds, variants[0], case)
        for c in contenders[1:] if args.suite == "checked" else ():
            c.run(1)[-1].throw()  # the check ran, and passed
    print(harness.markdown(["case", "variant", *harness.columns(variants[0])], rows))
    harness.finish(args.json, rows)


if __name__ == "__main__":
    main()
