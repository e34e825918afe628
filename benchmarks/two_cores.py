"""Can one Adam step on one large leaf use both CPU cores? Each way of asking, measured.

A float32 Adam step on one leaf of ``n`` parameters (``adamjax.adam``, update + apply, jitted,
params and state donated) is memory-bound: it moves 28 bytes per parameter at least. One core
cannot saturate this machine's memory bandwidth, so the question is whether JAX spreads the
loop over both cores. Each configuration runs in its own process (XLA flags are read once per
process), and the processes are alternated ``--repeats`` times so that load from other users
hits all of them alike:

* ``default``: one CPU device, XLA's defaults.
* ``default, pinned to one core``: the same, with the process confined to core 0 (``taskset -c
  0``, Linux), so the difference to ``default`` is what the second core contributes. CPU time
  alone cannot tell: idle threads of a pool spin for a while before sleeping, which counts as
  CPU time without doing work.
* ``2 leaves``: the same parameters as two leaves of ``n / 2`` (two independent loops that
  XLA's runtime may run concurrently).
* ``2 devices, sharded``: ``--xla_force_host_platform_device_count=2`` and params, grads and
  state sharded in halves over the two host devices (``NamedSharding``), so each device runs
  its half of the loop.
* ``chunked loop``: the step rewritten as a ``fori_loop`` over chunks of 500,000 parameters
  that reads each chunk once and writes it back with ``dynamic_update_slice``, to make one
  pass over memory (28 B/param) instead of the three loops XLA emits (40 B/param).
* ``torch fused``: ``torch.optim.Adam(fused=True)`` on the same numbers, for reference, and
  ``torch fused, pinned to one core``.

For each: the median step time, the bandwidth it implies at 28 B/param, and the ratio of
process CPU time to wall time during the timed steps (about 1 when one core works, about 2 when
both do).

    python -m benchmarks.two_cores --params 50000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

CONFIGS = {
    "default": "",
    "default, pinned to one core": "",
    "2 leaves": "",
    "2 devices, sharded": "--xla_force_host_platform_device_count=2",
    "chunked loop": "",
    "torch fused": "",
    "torch fused, pinned to one core": "",
}
PINNED = ["taskset", "-c", "0"]
CHUNK = 500_000


def _time(run: Any, steps: int, rounds: int) -> dict[str, float]:
    run(2)
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        run(steps)
        walls.append((time.perf_counter() - wall) / steps)
        cpus.append((time.process_time() - cpu) / steps)
    walls.sort()
    median = walls[len(walls) // 2]
    return {"median_s": median, "cpu_per_wall": sorted(cpus)[len(cpus) // 2] / median}


def child(config: str, n: int, steps: int, rounds: int) -> dict[str, float]:
    """Measure one configuration in this process."""
    import numpy as np

    rng = np.random.default_rng(0)
    p_np = rng.standard_normal(n, dtype=np.float32)
    g_np = rng.standard_normal(n, dtype=np.float32)
    if config.startswith("torch fused"):
        import torch

        p = torch.tensor(p_np, requires_grad=True)
        p.grad = torch.tensor(g_np)
        optimizer = torch.optim.Adam([p], lr=1e-3, fused=True)

        def run_torch(k: int) -> None:
            for _ in range(k):
                optimizer.step()

        return _time(run_torch, steps, rounds)

    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import adamjax

    optimizer = adamjax.adam(1e-3)
    if config == "chunked loop":
        return _time(_chunked_runner(p_np, g_np), steps, rounds)
    if config == "2 leaves":
        half = n // 2
        params = {"a": jnp.asarray(p_np[:half]), "b": jnp.asarray(p_np[half:])}
        grads = {"a": jnp.asarray(g_np[:half]), "b": jnp.asarray(g_np[half:])}
    elif config == "2 devices, sharded":
        mesh = Mesh(np.array(jax.devices()), ("d",))
        sharding = NamedSharding(mesh, PartitionSpec("d"))
        params = {"w": jax.device_put(p_np, sharding)}
        grads = {"w": jax.device_put(g_np, sharding)}
    else:
        params, grads = {"w": jnp.asarray(p_np)}, {"w": jnp.asarray(g_np)}

    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    jitted = jax.jit(step, donate_argnums=(0, 1))
    box = [params, optimizer.init(params)]

    def run_jax(k: int) -> None:
        for _ in range(k):
            box[:] = jitted(box[0], box[1], grads)
            jax.block_until_ready(box)

    result = _time(run_jax, steps, rounds)
    result["devices"] = float(len(jax.devices()))
    return result


def _chunked_runner(p_np: Any, g_np: Any) -> Any:
    """Adam (lr 1e-3, b1 0.9, b2 0.999, eps 1e-8) as one pass over chunks, in place."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    n = p_np.size - p_np.size % CHUNK
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8

    def step(p: Any, state: Any, g: Any) -> tuple[Any, Any]:
        count, m, v = state
        t = (count + 1).astype(jnp.float32)
        bc1, bc2 = 1 - b1**t, 1 - b2**t

        def body(i: Any, carry: Any) -> Any:
            p, m, v = carry
            start = (i * CHUNK,)
            gs, ms, vs, ps = (lax.dynamic_slice(x, start, (CHUNK,)) for x in (g, m, v, p))
            ms = (1 - b1) * gs + b1 * ms
            vs = (1 - b2) * gs * gs + b2 * vs
            ps = ps - lr * (ms / bc1) / (jnp.sqrt(vs / bc2) + eps)
            return tuple(
                lax.dynamic_update_slice(x, y, start) for x, y in ((p, ps), (m, ms), (v, vs))
            )

        p, m, v = lax.fori_loop(0, n // CHUNK, body, (p, m, v))
        return p, (count + 1, m, v)

    g = jnp.asarray(g_np[:n])
    p = jnp.asarray(p_np[:n])
    box = [p, (jnp.zeros([], jnp.int32), jnp.zeros_like(p), jnp.zeros_like(p))]
    jitted = jax.jit(step, donate_argnums=(0, 1))

    def run(k: int) -> None:
        for _ in range(k):
            box[:] = jitted(box[0], box[1], g)
            jax.block_until_ready(box)

    return run


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--params", type=int, default=50_000_000)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per process")
    parser.add_argument("--repeats", type=int, default=3, help="processes per configuration")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.params, args.steps, args.rounds)))
        return

    results: dict[str, list[dict[str, float]]] = {c: [] for c in args.configs}
    for _ in range(args.repeats):
        for config in args.configs:
            env = {**os.environ, "XLA_FLAGS": CONFIGS[config]}
            command = [sys.executable, "-m", "benchmarks.two_cores", "--child", config,
                       "--params", str(args.params), "--steps", str(args.steps),
                       "--rounds", str(args.rounds)]  # fmt: skip
            if config.endswith("pinned to one core"):
                command = PINNED + command
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[config].append(json.loads(done.stdout.strip().splitlines()[-1]))

    n_bytes = 28 * args.params
    print(f"one leaf of {args.params:,} float32 parameters; {args.repeats} processes each\n")
    print("| configuration | XLA_FLAGS | median ms (per process) | GB/s at 28 B/param | "
          "CPU time / wall time |")  # fmt: skip
    print("|---|---|---|---|---|")
    for config, runs in results.items():
        times = sorted(r["median_s"] for r in runs)
        best = times[len(times) // 2]
        per_process = ", ".join(f"{r['median_s'] * 1e3:.1f}" for r in runs)
        ratio = sorted(r["cpu_per_wall"] for r in runs)[len(runs) // 2]
        flags = CONFIGS[config] or "(none)"
        print(f"| {config} | {flags} | {per_process} | {n_bytes / best / 1e9:.1f} | "
              f"{ratio:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
