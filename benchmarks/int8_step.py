"""One Adam step with float32, bfloat16 and 8-bit blockwise moments, side by side, on CPU.

``adamjax.adam`` ``update`` + ``apply_updates`` on one float32 leaf (jitted, params and state
donated), with the moments stored in float32, bfloat16 (``mu_dtype`` / ``nu_dtype``) and
``adamjax.blockwise_int8()``. Columns: step time and its ratio to float32's, the fusions of the
compiled step, the bytes it accesses per parameter (XLA's cost analysis) and the state's bytes
per parameter. docs/memory.md shows the table.

    python -m benchmarks.int8_step [--quick] [--size N] [--json PATH]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

import adamjax
from benchmarks import harness
from benchmarks.harness import Contender

LR = 1e-3
FULL_SIZE, QUICK_SIZE = 10_000_000, 1_000_000
BASE = "float32 m, v"


def formats() -> dict[str, Any]:
    """The contenders' storage of the moments: ``mu_dtype`` and ``nu_dtype``."""
    return {
        BASE: None,
        "bfloat16 m, v": jnp.bfloat16,
        "blockwise_int8 m, v": adamjax.blockwise_int8(),
    }


def contender(name: str, storage: Any, params: Any, grads: Any) -> Contender:
    """The jitted, donated step of ``adam`` with ``storage`` moments, with its compiled facts,
    the fusions of ``update`` alone and the state's bytes."""
    optimizer = adamjax.adam(LR, mu_dtype=storage, nu_dtype=storage)
    state = optimizer.init(params)
    step = harness.optimizer_step(optimizer)
    found = harness.step_contender(name, step, (params, state), (grads,))
    update, _ = harness.compile_step(jax.jit(optimizer.update), grads, state, params)
    found.info["update_fusions"] = harness.count_fusions(update.as_text() or "")
    found.info["state_bytes"] = float(harness.nbytes(state))
    return found


COLUMNS = ("moments", "median us", "p10-p90 us", "vs float32", "fusions (update)",
           "B/param accessed", "state B/param")  # fmt: skip


def table(found: Sequence[Contender], samples: dict[str, Any], size: int) -> list[list[str]]:
    base = harness.summary(samples[BASE])["median_s"]
    rows = []
    for c in found:
        r = {**harness.summary(samples[c.name]), **c.info}
        accessed = f"{r['bytes_accessed'] / size:.1f}" if "bytes_accessed" in r else ""
        rows.append([
            c.name, harness.us(r["median_s"]), harness.spread(r),
            f"{r['median_s'] / base:.2f}", f"{r['fusions']} ({r['update_fusions']})", accessed,
            f"{r['state_bytes'] / size:.3f}",
        ])  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, f"one leaf of {QUICK_SIZE:,} values, few rounds (CI)")
    parser.add_argument("--size", type=int, help=f"values in the leaf (default {FULL_SIZE:,})")
    args = parser.parse_args(argv)
    size = args.size or (QUICK_SIZE if args.quick else FULL_SIZE)
    rounds, batch_seconds = harness.start(args, full=(15, 300.0), quick=(3, 50.0))
    params, grads = harness.random_trees({"w": (size,)})
    found = [contender(name, storage, params, grads) for name, storage in formats().items()]
    samples = harness.interleaved(found, rounds, batch_seconds)
    print(f"one float32 leaf of {size:,} values\n")
    print(harness.markdown(COLUMNS, table(found, samples, size)))
    harness.finish(args.json, {"size": size, "rows": harness.records(found, samples, size=size)})


if __name__ == "__main__":
    main()
