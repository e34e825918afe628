"""Can one Adam step on one large leaf use both CPU cores? Each way of asking, measured.

Each configuration runs in its own process, alternating ``--repeats`` times; CPU time / wall
time is about 1 when one core works, 2 when both do. docs/performance.md describes them.

    python -m benchmarks.two_cores --params 50000000 [--configs default "2 devices, sharded" ...]
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import adamjax
from benchmarks import harness

CONFIGS = {  # name -> XLA_FLAGS
    "default": "", "default, pinned to one core": "",
    "2 devices, sharded": "--xla_force_host_platform_device_count=2",
    "torch fused": "", "torch fused, pinned to one core": "",
}  # fmt: skip
COLUMNS = ("configuration", "XLA_FLAGS", "median ms (per process)", "GB/s at 28 B/param",
           "CPU time / wall time")  # fmt: skip
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def runner(config: str, p: np.ndarray, g: np.ndarray) -> Callable[[int], Any]:
    """``run(k)``: ``k`` steps of the configuration, waiting for each."""
    if config.startswith("torch"):
        import torch

        tensor = torch.tensor(p, requires_grad=True)
        tensor.grad = torch.tensor(g)
        optimizer = torch.optim.Adam([tensor], lr=LR, fused=True)
        return lambda k: [optimizer.step() for _ in range(k)]
    optimizer = adamjax.adam(LR, B1, B2, EPS)
    if config == "2 devices, sharded":
        sharding = NamedSharding(Mesh(np.array(jax.devices()), ("d",)), PartitionSpec("d"))
        params, grads = ({"w": jax.device_put(x, sharding)} for x in (p, g))
    else:
        params, grads = {"w": p}, {"w": g}
    carry = (params, optimizer.init(params))
    return harness.step_contender(config, harness.optimizer_step(optimizer), carry, (grads,)).run


def child(config: str, n: int, steps: int, rounds: int) -> dict[str, float]:
    """Median wall time per step and CPU time / wall time of one configuration, here."""
    run = runner(config, *harness.random_trees((n,)))
    run(2)
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        run(steps)
        walls.append((time.perf_counter() - wall) / steps)
        cpus.append((time.process_time() - cpu) / steps)
    median = float(np.median(walls))
    return {"median_s": median, "cpu_per_wall": float(np.median(cpus)) / median}


def in_new_process(config: str, args: argparse.Namespace) -> dict[str, float]:
    """:func:`child` in a process of its own, with the configuration's flags and pinning."""
    sizes = ["--params", str(args.params), "--steps", str(args.steps), "--rounds", str(args.rounds)]
    command = [sys.executable, "-m", "benchmarks.two_cores", "--child", config, *sizes]
    if config.endswith("pinned to one core"):
        command = ["taskset", "-c", "0", *command]
    env = {**os.environ, "XLA_FLAGS": CONFIGS[config]}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table_row(config: str, runs: list[dict[str, float]], n_params: int) -> list[str]:
    times = [r["median_s"] for r in runs]
    per_process = ", ".join(f"{t * 1e3:.1f}" for t in times)
    bandwidth = f"{28 * n_params / np.median(times) / 1e9:.1f}"
    ratio = f"{np.median([r['cpu_per_wall'] for r in runs]):.2f}"
    return [config, CONFIGS[config] or "(none)", per_process, bandwidth, ratio]


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "1M params, 1 process each", interleaving=False)
    parser.add_argument("--params", type=int, default=50_000_000)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per process")
    parser.add_argument("--repeats", type=int, default=3, help="processes per configuration")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.params, args.steps, args.rounds, args.repeats = 1_000_000, 2, 2, 1
    if args.child:
        print(json.dumps(child(args.child, args.params, args.steps, args.rounds)))
        return
    print(harness.header())
    if importlib.util.find_spec("torch") is None:
        args.configs = [c for c in args.configs if not c.startswith("torch")]
    results: dict[str, list[dict[str, float]]] = {c: [] for c in args.configs}
    for _ in range(args.repeats):
        for config in args.configs:
            results[config].append(in_new_process(config, args))
    print(f"one leaf of {args.params:,} float32 parameters; {args.repeats} processes each\n")
    rows = [table_row(config, runs, args.params) for config, runs in results.items()]
    print(harness.markdown(COLUMNS, rows))
    harness.finish(args.json, results)


if __name__ == "__main__":
    main()
