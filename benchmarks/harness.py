"""The harness every benchmark is built on: contenders, interleaved rounds, compiled facts, tables.

Compare contenders of one run (medians, ratios), not absolute times of different runs.
:func:`count_fusions` is the one fusion count of every table.
"""

import argparse
import json
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import adamjax


@dataclass
class Contender:
    """``run(n)`` runs ``n`` steps, waits for them and returns the last step's outputs."""

    name: str
    run: Callable[[int], Any]
    info: dict[str, Any] = field(default_factory=dict)  # compile facts, state bytes, ...
    batch: int = 1  # steps per timed batch, set by :func:`interleaved`


def fresh(tree: Any) -> Any:
    """Copies of a tree's arrays owned by JAX (safe to donate)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def nbytes(tree: Any) -> int:
    return sum(int(x.nbytes) for x in jax.tree.leaves(tree))


def count_fusions(hlo: str) -> int:
    """Fusion instructions (compiled loops) in an optimized HLO module, in every computation."""
    return len(re.findall(r"\sfusion\(", hlo))


def compile_step(jitted: Any, *args: Any) -> tuple[Any, dict[str, float]]:
    """``jitted.lower(*args).compile()``; its seconds, fusions, buffer and accessed bytes."""
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    info = {"compile_s": time.perf_counter() - start}
    info["fusions"] = count_fusions(compiled.as_text() or "")
    memory = compiled.memory_analysis()
    for key in ("temp", "argument", "output", "alias") if memory is not None else ():
        info[f"{key}_bytes"] = float(getattr(memory, f"{key}_size_in_bytes"))
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) and cost else cost
    if isinstance(cost, dict) and "bytes accessed" in cost:
        info["bytes_accessed"] = float(cost["bytes accessed"])
    return compiled, info


def step_contender(
    name: str,
    step: Callable[..., Any],
    carry: Sequence[Any],
    args: Sequence[Any] = (),
    wait: Callable[[Any], Any] | None = jax.block_until_ready,
) -> Contender:
    """The contender ``name``: ``step(*carry, *args) -> (*new_carry, *extras)`` jitted with the
    carry (copied first) donated and ``args`` put on the device once; ``wait`` is called with
    every step's outputs (``None``: a batch is queued, then its last carry waited for); ``info``
    holds :func:`compile_step`'s facts."""
    box, args = [fresh(tuple(carry))], jax.device_put(tuple(args))
    jitted = jax.jit(step, donate_argnums=tuple(range(len(box[0]))))
    compiled, info = compile_step(jitted, *box[0], *args)

    def run(n: int) -> Any:
        out, current = None, box[0]
        for _ in range(n):
            out = compiled(*current, *args)
            current = tuple(out[: len(current)])
            if wait is not None:
                wait(out)
        box[0] = jax.block_until_ready(current)
        return out

    return Contender(name, run, info)


def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    contenders: Sequence[Contender], rounds: int, batch_seconds: float
) -> dict[str, np.ndarray]:
    """Seconds per step of every contender: after a warm-up, a round runs one batch of each
    (about ``batch_seconds`` long; 0: one step), in an order that rotates every round."""
    for c in contenders:
        c.run(2)
        if batch_seconds > 0:
            per_step = seconds(lambda c=c: c.run(3)) / 3
            c.batch = max(1, min(100_000, round(batch_seconds / per_step)))
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        k = r % len(contenders)
        for c in [*contenders[k:], *contenders[:k]]:
            samples[c.name].append(seconds(lambda c=c: c.run(c.batch)) / c.batch)
    return {name: np.asarray(values) for name, values in samples.items()}


def summary(samples: np.ndarray) -> dict[str, Any]:
    """Median, 10th and 90th percentiles and minimum of the samples (seconds)."""
    p10, median, p90 = np.percentile(samples, [10, 50, 90])
    return {"median_s": median, "p10_s": p10, "p90_s": p90, "min_s": float(np.min(samples))}


def us(seconds: float) -> str:
    """Microseconds, with thousands separators from 100 up."""
    value = seconds * 1e6
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def spread(row: dict[str, Any]) -> str:
    return f"{us(row['p10_s'])}-{us(row['p90_s'])}" if "p10_s" in row else ""


def mb(row: dict[str, Any], key: str, digits: int = 1) -> str:
    return f"{row[key] / 1e6:.{digits}f}" if key in row else ""


def markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def columns(base: str) -> list[str]:
    """The columns of :func:`timed_rows` after the contender's name."""
    ratios = [f"vs {base}", f"p10 vs {base}"]
    return ["median us", "p10-p90 us", *ratios, "compile s", "fusions", "temp MB"]


def timed_rows(
    contenders: Sequence[Contender], rounds: int, batch_seconds: float, base: str, *labels: str
) -> list[list]:
    """A row of :func:`columns` per contender, timed by :func:`interleaved`, after ``labels``:
    its name, time per step, ratios to ``base``'s (medians, 10th percentiles), compiled facts."""
    samples = interleaved(contenders, rounds, batch_seconds)
    b = summary(samples[base])
    result = []
    for c in contenders:
        r = {**summary(samples[c.name]), **c.info}
        result.append([
            *labels, c.name, us(r["median_s"]), spread(r), f"{r['median_s'] / b['median_s']:.2f}",
            f"{r['p10_s'] / b['p10_s']:.2f}", f"{r['compile_s']:.2f}" if "compile_s" in r else "",
            r.get("fusions", ""), mb(r, "temp_bytes", 2),
        ])  # fmt: skip
    return result


def records(
    contenders: Sequence[Contender], samples: dict[str, np.ndarray], **fields: Any
) -> list[dict[str, Any]]:
    """A dict per contender: ``fields``, its name, :func:`summary`, facts, batch and samples."""
    return [{**fields, "contender": c.name, **summary(samples[c.name]), **c.info,
             "batch": c.batch, "samples_s": samples[c.name]} for c in contenders]  # fmt: skip


def optimizer_step(
    optimizer: Any, apply: Callable[[Any, Any], Any] = adamjax.apply_updates, loss: Any = None
) -> Callable[..., tuple[Any, ...]]:
    """``step(params, state, grads) -> (params, state)``: ``optimizer.update``, then ``apply``;
    with a ``loss``, ``step(params, state, *args) -> (params, state, loss(params, *args))``,
    the gradients from ``jax.value_and_grad``."""

    def step(params: Any, state: Any, *args: Any) -> tuple[Any, ...]:
        value, grads = (None, args[0]) if loss is None else jax.value_and_grad(loss)(params, *args)
        updates, state = optimizer.update(grads, state, params)
        return (apply(params, updates), state) + (() if loss is None else (value,))

    return step


def leaf_shapes(n: int, size: int) -> dict[str, tuple[int]]:
    """``n`` leaves of ``size`` elements, named ``p0000``, ``p0001``, ..."""
    return {f"p{i:04d}": (size,) for i in range(n)}


def random_trees(shapes: Any, copies: int = 2, seed: int = 0) -> list[Any]:
    """``copies`` trees of standard normal float32 arrays, the leaves of ``shapes`` tuples."""
    rng = np.random.default_rng(seed)
    fill = lambda shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
    is_shape = lambda x: isinstance(x, tuple)  # noqa: E731
    return [jax.tree.map(fill, shapes, is_leaf=is_shape) for _ in range(copies)]


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def header(extra: str = "") -> str:
    """Versions, devices and the load average, for the top of a benchmark's output."""
    devices = ", ".join(str(d) for d in jax.devices())
    return (f"python {platform.python_version()}, jax {jax.__version__} on {devices}{extra}; "
            f"load average {load_average()} on {os.cpu_count()} CPUs")  # fmt: skip


def parser(doc: str | None, quick: str, interleaving: bool = True) -> argparse.ArgumentParser:
    """The options every benchmark takes: --quick, --json; with ``interleaving``, --rounds and
    --batch-ms."""
    result = argparse.ArgumentParser(description=(doc or "").partition("\n")[0])
    result.add_argument("--quick", action="store_true", help=quick)
    if interleaving:
        result.add_argument("--rounds", type=int, help="interleaved rounds")
        result.add_argument("--batch-ms", type=float, help="target milliseconds per timed batch")
    result.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return result


def start(
    args: Any, full: tuple[int, float], quick: tuple[int, float], extra: str = ""
) -> tuple[int, float]:
    """Prints :func:`header`; returns (rounds, batch seconds): the options given, else the full
    or quick defaults (rounds, milliseconds)."""
    rounds, batch_ms = quick if args.quick else full
    rounds, batch_seconds = args.rounds or rounds, (args.batch_ms or batch_ms) / 1e3
    print(header(extra))
    batches = f"~{batch_seconds * 1e3:.0f} ms batches" if batch_seconds else "one call a batch"
    print(f"{rounds} interleaved rounds, {batches}\n", flush=True)
    return rounds, batch_seconds


def finish(path: str | None = None, result: Any = None) -> None:
    """Prints the load average after the run; writes ``result`` (numpy values as lists) as JSON
    to ``path``, if one is given."""
    print(f"\nload average after: {load_average()}")

    def write(temporary: str) -> None:
        with open(temporary, "w") as f:
            json.dump(result, f, indent=1, default=lambda x: np.asarray(x).tolist())

    if path:
        replace_atomically(path, write)


def replace_atomically(path: str, write: Callable[[str], Any]) -> None:
    """``write(temporary_path)``, then move the file to ``path`` in one step."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
