"""What ``adamjax.monitor`` costs: jitted steps with and without it.

``adamjax.adam`` as its chain, with ``monitor`` after ``moments``, and with
``monitor(every=10)``; on the bare step (1 leaf of 1M, 100 leaves of 10k, fixed gradients), a
784-256-256-10 MLP train step (batch 128) and 8 such MLPs under ``jax.vmap``; params and state
donated, steps queued without waiting, interleaved.

    python -m benchmarks.monitor_overhead [--quick]
"""

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import adamjax
from benchmarks import harness

VARIANTS = {"adam": None, "+ monitor": 1, "+ monitor(every=10)": 10}
CASES = ("1 leaf x 1M", "100 leaves x 10k", "MLP train step", "8 MLPs, vmapped")


def chain(every: int | None) -> adamjax.GradientTransformation:
    """Adam as a chain; with ``monitor(every=every)`` unless ``every`` is None."""
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


def contender(case: str, name: str) -> harness.Contender:
    optimizer = chain(VARIANTS[name])
    params, args = case_inputs(case)
    loss = None if case.startswith("1") else mlp_loss  # fixed gradients, or the MLP's
    step = harness.optimizer_step(optimizer, loss=loss)
    vmapped = case == "8 MLPs, vmapped"
    state = jax.vmap(optimizer.init)(params) if vmapped else optimizer.init(params)
    fn = jax.vmap(step, in_axes=(0, 0, None, None)) if vmapped else step
    return harness.step_contender(name, fn, (params, state), args, wait=None)


def main(argv: Sequence[str] | None = None) -> None:
    args = harness.parser(__doc__, "3 rounds of ~5 ms batches").parse_args(argv)
    rounds, batch_seconds = harness.start(args, full=(15, 20), quick=(3, 5))
    rows = []
    for case in CASES:
        contenders = [contender(case, variant) for variant in VARIANTS]
        rows += harness.timed_rows(contenders, rounds, batch_seconds, "adam", case)
    print(harness.markdown(["case", "variant", *harness.columns("adam")], rows))
    harness.finish(args.json, rows)


if __name__ == "__main__":
    main()
