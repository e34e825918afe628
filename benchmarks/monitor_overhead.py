"""What ``adamjax.monitor`` costs: jitted steps with and without it.

Variants: ``adamjax.adam`` written as its chain, the same chain with ``monitor`` right after
``moments``, and with ``monitor(every=10)``. Cases (float32):

* ``1 leaf x 1M``, ``100 leaves x 10k``: the bare optimizer step ``(params, state, grads) ->
  (params, state)`` on fixed gradients, the worst case for any optimizer-side overhead;
* ``MLP train step``: forward, backward and update of a 784-256-256-10 MLP (270k parameters,
  6 leaves) on a batch of 128, the situation the monitor is meant for;
* ``8 MLPs, vmapped``: the same step for an ensemble of 8 such MLPs under ``jax.vmap``
  (params and state with a member axis, the batch shared), where ``every=10`` must stay a
  branch rather than a select of both branches.

Every step is jitted with params and state donated. Timing is interleaved (the order rotates
every round); the table reports the median time per step and the ratio to plain Adam. The
updates are bitwise identical in all variants (``tests/test_diagnostics.py``).

    python -m benchmarks.monitor_overhead            # 15 rounds of 20 steps
    python -m benchmarks.monitor_overhead --quick    # 3 rounds of 5 steps
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import adamjax

VARIANTS = {"adam": None, "+ monitor": 1, "+ monitor(every=10)": 10}
VMAPPED = "8 MLPs, vmapped"
TRAINING = ("MLP train step", VMAPPED)  # cases that compute gradients of the MLP
CASES = ("1 leaf x 1M", "100 leaves x 10k", *TRAINING)
MEMBERS = 8  # of the vmapped case


def chain(every: int | None) -> adamjax.GradientTransformation:
    """Adam as a chain; with ``monitor(every=every)`` unless ``every`` is None."""
    lr, eps = 1e-3, 1e-8
    middle = [] if every is None else [adamjax.monitor(lr, eps, every=every)]
    return adamjax.chain(
        adamjax.moments(0.9, 0.999),
        *middle,
        adamjax.bias_correction(),
        adamjax.normalize(eps),
        adamjax.scale_by_learning_rate(lr),
    )


def mlp_loss(params: list[jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    h = x
    for i in range(0, len(params) - 2, 2):
        h = jax.nn.relu(h @ params[i] + params[i + 1])
    logits = h @ params[-2] + params[-1]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def case_inputs(case: str, rng: np.random.Generator) -> tuple[list[jax.Array], tuple[Any, ...]]:
    """Initial params and the step's extra arguments (gradients, or a batch)."""

    def normal(*shape: int) -> jax.Array:
        return jnp.asarray(rng.normal(size=shape) / np.sqrt(shape[0]), jnp.float32)

    if case in TRAINING:
        sizes = (784, 256, 256, 10)
        params = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            params += [normal(fan_in, fan_out), jnp.zeros(fan_out, jnp.float32)]
        if case == VMAPPED:
            params = [jnp.stack([p * (1 + 0.1 * i) for i in range(MEMBERS)]) for p in params]
        x = jnp.asarray(rng.normal(size=(128, 784)), jnp.float32)
        y = jnp.asarray(rng.integers(0, 10, size=128), jnp.int32)
        return params, (x, y)
    leaves, size = (1, 1_000_000) if case == "1 leaf x 1M" else (100, 10_000)
    params = [jnp.zeros(size, jnp.float32) for _ in range(leaves)]
    return params, ([normal(size) for _ in range(leaves)],)


def make_step(optimizer: adamjax.GradientTransformation, case: str) -> Any:
    train = case in TRAINING

    def step(params: Any, state: Any, *args: Any) -> tuple[Any, Any]:
        grads = jax.grad(mlp_loss)(params, *args) if train else args[0]
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    if case == VMAPPED:
        step = jax.vmap(step, in_axes=(0, 0, None, None))
    return jax.jit(step, donate_argnums=(0, 1))


def measure(case: str, rounds: int, steps: int) -> dict[str, float]:
    runs = {}
    for name, every in VARIANTS.items():
        optimizer = chain(every)
        params, args = case_inputs(case, np.random.default_rng(0))
        step = make_step(optimizer, case)
        init = jax.vmap(optimizer.init) if case == VMAPPED else optimizer.init
        runs[name] = [step, params, init(params), args]
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            step, params, state, args = runs[name]
            params, state = step(params, state, *args)  # compiled on the first round
            jax.block_until_ready(params)
            start = time.perf_counter()
            for _ in range(steps):
                params, state = step(params, state, *args)
            jax.block_until_ready(params)
            times[name].append((time.perf_counter() - start) / steps)
            runs[name][1:3] = [params, state]
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Time adam with and without monitor.")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 steps")
    args = parser.parse_args()
    rounds, steps = (3, 5) if args.quick else (args.rounds, args.steps)
    print(f"{'case':18s} " + " ".join(f"{name:>21s}" for name in VARIANTS))
    for case in CASES:
        result = measure(case, rounds, steps)
        plain = result["adam"]
        cells = [f"{t * 1e3:9.3f} ms ({t / plain:4.2f}x)" for t in result.values()]
        print(f"{case:18s} " + " ".join(f"{cell:>21s}" for cell in cells))


if __name__ == "__main__":
    main()
