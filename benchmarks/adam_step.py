"""Benchmark of one Adam optimizer step on CPU: adamjax vs optax vs torch.

What is measured
----------------
For every case (a parameter tree of float32 leaves) and every contender, the wall time of one
optimizer step with fixed random gradients:

* JAX contenders (``adamjax.adam`` and ``optax.adam`` with the same hyperparameters): one jitted
  function ``(params, opt_state, grads) -> (new_params, new_state)`` doing ``update`` followed by
  ``apply_updates``, compiled with ``donate_argnums=(0, 1)`` so params and optimizer state are
  updated in place. ``block_until_ready`` is called after every step. Variants:

  - ``adamjax.adam flat``: the same optimizer on ``adamjax.flat.ravel(params)``, the opt-in
    flat-parameter mode (one buffer per dtype; params, grads and moments cross the jit boundary
    as one array each). Run on cases with more than one leaf.
  - ``adamjax.adam bf16 m,v``: ``mu_dtype=nu_dtype=bfloat16`` (half the optimizer state).
  We also report the wall time of ``jitted.lower(...).compile()`` (tracing + XLA compilation),
  the buffer sizes from ``compiled.memory_analysis()`` (temp, argument, output and alias bytes)
  and the optimizer-state size (sum of ``nbytes`` over the state leaves).
* torch contenders (``torch.optim.Adam`` with ``foreach=True`` and with ``fused=True``), if torch
  is importable: params are CPU tensors whose ``.grad`` is set once to the same random
  gradients; the timed call is ``optimizer.step()``.

Timing is interleaved: each round runs every contender once for a batch of steps (the batch size
is calibrated per contender so that a batch lasts a few milliseconds), and the order of
contenders is rotated from round to round. The table reports the median time per step over the
rounds, the p10-p90 spread, the ratio to optax and the ratio to the floor.

The floor
---------
An Adam step on float32 parameters must at least read params, grads, first and second moments
(4 x 4 bytes) and write params and both moments (3 x 4 bytes)::

    floor_seconds = 28 bytes * n_params / copy_bandwidth

``copy_bandwidth`` is measured in the same run as (bytes read + bytes written) per second of a
large array copy, taking the best of a single-thread numpy copy, a numpy copy split over two
threads, a jitted in-place ``x * s`` (``s == 1.0`` passed as an argument so XLA cannot
elide it, ``x`` donated) in JAX, and torch's in-place ``x.mul_(1.0)`` on all its threads (when
torch is installed). The floor ignores per-leaf and per-call overheads, so small cases are
expected to sit far above it.

Usage::

    python -m benchmarks.adam_step [--quick] [--cases 1x1M transformer ...]
        [--contenders adamjax optax ...] [--json out.json]

``--quick`` (for CI: small cases, few rounds) checks that everything runs; its times are too
short to quote. Plot a JSON result with ``python -m benchmarks.plot_adam_step``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

LEARNING_RATE = 1e-3
B1, B2, EPS = 0.9, 0.999, 1e-8
BYTES_PER_PARAM = 28  # read p, g, m, v + write p, m, v; float32 each.
MB = 1e6  # Table sizes are in decimal megabytes.

Shapes = dict[str, Any]  # Nested dict whose leaves are shape tuples.
Tree = dict[str, Any]  # Nested dict whose leaves are arrays.


# ----------------------------------------------------------------------------------------------
# Cases


def _many_leaves(n_leaves: int, size: int) -> Shapes:
    return {f"p{i:04d}": (size,) for i in range(n_leaves)}


def _transformer_layer(d_model: int, d_ff: int) -> Shapes:
    attn = {name: {"w": (d_model, d_model), "b": (d_model,)} for name in ("q", "k", "v", "o")}
    ff = {"w_in": (d_model, d_ff), "b_in": (d_ff,), "w_out": (d_ff, d_model), "b_out": (d_model,)}
    # Pre-attention and pre-feed-forward layer norms.
    norms = {f"ln{i}": {"scale": (d_model,), "bias": (d_model,)} for i in (1, 2)}
    return {"attn": attn, "ff": ff, **norms}


def transformer_shapes(
    vocab: int = 8000, d_model: int = 256, n_layers: int = 4, d_ff: int = 1024, max_len: int = 512
) -> Shapes:
    """Parameter shapes of a small pre-norm transformer (output tied to the token embedding)."""
    return {
        "embed": {"tokens": (vocab, d_model), "positions": (max_len, d_model)},
        "layers": {f"layer{i}": _transformer_layer(d_model, d_ff) for i in range(n_layers)},
        "final_norm": {"scale": (d_model,), "bias": (d_model,)},
    }


CASES: dict[str, Callable[[], Shapes]] = {
    "1x1M": lambda: {"w": (1_000_000,)},
    "1x10M": lambda: {"w": (10_000_000,)},
    "1x50M": lambda: {"w": (50_000_000,)},
    "200x5000": lambda: _many_leaves(200, 5000),
    "500x2000": lambda: _many_leaves(500, 2000),
    "2000x1000": lambda: _many_leaves(2000, 1000),
    "transformer": transformer_shapes,
    "10x10000": lambda: _many_leaves(10, 10_000),  # not in the default set: smoke tests only
}
DEFAULT_CASES = ("1x1M", "1x10M", "1x50M", "200x5000", "500x2000", "2000x1000", "transformer")
QUICK_CASES = ("1x1M", "200x5000", "transformer")


def _is_shape(x: Any) -> bool:
    return isinstance(x, tuple)


def make_tree(shapes: Shapes, rng: np.random.Generator) -> Tree:
    """Random float32 numpy arrays with the given shapes."""
    return jax.tree.map(
        lambda s: rng.standard_normal(s, dtype=np.float32), shapes, is_leaf=_is_shape
    )


def count_params(tree: Tree) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


def tree_nbytes(tree: Any) -> int:
    return sum(int(x.nbytes) for x in jax.tree.leaves(tree))


# ----------------------------------------------------------------------------------------------
# Contenders


@dataclass
class Contender:
    """Something that can run ``n`` optimizer steps (blocking) plus static facts about it."""

    name: str
    run: Callable[[int], None]
    info: dict[str, float] = field(default_factory=dict)
    batch: int = 1


def _load_adamjax() -> tuple[Any | None, str]:
    """(module, "ok") if adamjax imports and provides ``adam``, else (None, reason)."""
    try:
        module = importlib.import_module("adamjax")
    except Exception as error:  # A half-written package may fail in any way.
        return None, f"import failed: {error!r}"
    if not (hasattr(module, "adam") and hasattr(module, "apply_updates")):
        return None, "no adamjax.adam / adamjax.apply_updates yet"
    return module, "ok"


def _load_torch() -> Any | None:
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _jax_copy(tree: Tree) -> Any:
    """Fresh device arrays owned by JAX (safe to donate)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _memory_info(compiled: Any) -> dict[str, float]:
    stats = compiled.memory_analysis()
    if stats is None:
        return {}
    keys = ("temp", "argument", "output", "alias")
    return {f"{k}_bytes": float(getattr(stats, f"{k}_size_in_bytes")) for k in keys}


def jax_contender(
    name: str,
    optimizer: Any,
    apply_updates: Callable[[Any, Any], Any],
    params_np: Tree,
    grads_np: Tree,
) -> Contender:
    """A jitted, donated ``update`` + ``apply_updates`` step of a GradientTransformation."""

    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return apply_updates(params, updates), state

    jitted = jax.jit(step, donate_argnums=(0, 1))
    params, grads = _jax_copy(params_np), _jax_copy(grads_np)
    state = optimizer.init(params)
    start = time.perf_counter()
    compiled = jitted.lower(params, state, grads).compile()
    info = {"compile_s": time.perf_counter() - start, **_memory_info(compiled)}
    info["state_bytes"] = float(tree_nbytes(state))
    box = [params, state]

    def run(n: int) -> None:
        p, s = box
        for _ in range(n):
            p, s = jitted(p, s, grads)
            jax.block_until_ready((p, s))
        box[:] = [p, s]

    return Contender(name, run, info)


def torch_contender(torch: Any, fused: bool, params_np: Tree, grads_np: Tree) -> Contender:
    """``torch.optim.Adam(...).step()`` on CPU tensors whose ``.grad`` is set once."""
    params = []
    for p_np, g_np in zip(jax.tree.leaves(params_np), jax.tree.leaves(grads_np), strict=True):
        p = torch.tensor(p_np, requires_grad=True)
        p.grad = torch.tensor(g_np)
        params.append(p)
    kwargs = {"fused": True} if fused else {"foreach": True}
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE, betas=(B1, B2), eps=EPS, **kwargs)

    def run(n: int) -> None:
        for _ in range(n):
            optimizer.step()

    run(1)  # Materialises the optimizer state.
    state_bytes = sum(
        t.nbytes for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)
    )
    name = "torch Adam fused" if fused else "torch Adam foreach"
    return Contender(name, run, {"state_bytes": float(state_bytes)})


CONTENDERS = ("adamjax", "adamjax-flat", "adamjax-bf16", "optax", "torch-foreach", "torch-fused")
# A second, identical optax step: its ratio to the first shows the noise between two contenders
# that run the same compiled program on different buffers. Not in the default set.
CONTROL = "optax-again"


def build_contenders(
    params_np: Tree, grads_np: Tree, names: Sequence[str] = CONTENDERS
) -> list[Contender]:
    """The selected contenders that can run here (adamjax and torch only when importable)."""
    contenders = []
    adamjax, _ = _load_adamjax()
    if adamjax is not None:
        apply = adamjax.apply_updates
        if "adamjax" in names:
            opt = adamjax.adam(LEARNING_RATE, B1, B2, EPS)
            contenders.append(jax_contender("adamjax.adam", opt, apply, params_np, grads_np))
        if "adamjax-flat" in names and len(jax.tree.leaves(params_np)) > 1:
            opt = adamjax.adam(LEARNING_RATE, B1, B2, EPS)
            layout = adamjax.flat.ravel(params_np).layout
            flat_params, flat_grads = layout.ravel(params_np), layout.ravel(grads_np)
            contenders.append(
                jax_contender("adamjax.adam flat", opt, apply, flat_params, flat_grads)
            )
        if "adamjax-bf16" in names:
            bf16 = jnp.bfloat16
            opt = adamjax.adam(LEARNING_RATE, B1, B2, EPS, mu_dtype=bf16, nu_dtype=bf16)
            contenders.append(
                jax_contender("adamjax.adam bf16 m,v", opt, apply, params_np, grads_np)
            )
    if "optax" in names:
        opt = optax.adam(LEARNING_RATE, B1, B2, EPS)
        contenders.append(
            jax_contender("optax.adam", opt, optax.apply_updates, params_np, grads_np)
        )
    if CONTROL in names:
        opt = optax.adam(LEARNING_RATE, B1, B2, EPS)
        contenders.append(
            jax_contender("optax.adam again", opt, optax.apply_updates, params_np, grads_np)
        )
    torch = _load_torch()
    if torch is not None:
        for fused in (False, True):
            if ("torch-fused" if fused else "torch-foreach") in names:
                contenders.append(torch_contender(torch, fused, params_np, grads_np))
    return contenders


# ----------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class Settings:
    rounds: int  # Round-robin rounds; one timed batch per contender per round.
    batch_seconds: float  # Target duration of one timed batch.
    bandwidth_bytes: int  # Size of the array copied to measure bandwidth.
    bandwidth_reps: int


QUICK = Settings(rounds=5, batch_seconds=0.01, bandwidth_bytes=64 * 2**20, bandwidth_reps=3)
FULL = Settings(rounds=21, batch_seconds=0.05, bandwidth_bytes=256 * 2**20, bandwidth_reps=7)


def _seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _best_seconds(fn: Callable[[], None], reps: int) -> float:
    fn()  # Warm up: compile, fault in pages.
    return min(_seconds(fn) for _ in range(reps))


def calibrate(contender: Contender, batch_seconds: float) -> None:
    """Warm the contender up and pick a batch size that lasts about ``batch_seconds``."""
    contender.run(2)
    per_step = _seconds(lambda: contender.run(3)) / 3
    contender.batch = max(1, min(100_000, round(batch_seconds / per_step)))
    contender.run(contender.batch)


def measure(contenders: Sequence[Contender], rounds: int) -> dict[str, list[float]]:
    """Seconds per step, one sample per round; contender order rotates every round."""
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        k = r % len(contenders)
        for c in [*contenders[k:], *contenders[:k]]:
            samples[c.name].append(_seconds(lambda c=c: c.run(c.batch)) / c.batch)
    return samples


# ----------------------------------------------------------------------------------------------
# Copy bandwidth (bytes read + bytes written per second)


def numpy_copy_bandwidth(n_bytes: int, reps: int, threads: int) -> float:
    src = np.ones(n_bytes // 4, np.float32)
    dst = np.zeros_like(src)
    chunks = list(zip(np.array_split(dst, threads), np.array_split(src, threads), strict=True))
    with ThreadPoolExecutor(threads) as pool:

        def copy() -> None:
            list(pool.map(lambda ds: np.copyto(*ds), chunks))

        seconds = _best_seconds(copy, reps)
    return 2 * src.nbytes / seconds


def jax_copy_bandwidth(n_bytes: int, reps: int) -> float:
    scale = jax.jit(lambda x, s: x * s, donate_argnums=0)
    one = jnp.float32(1.0)
    box = [jnp.ones(n_bytes // 4, jnp.float32)]

    def copy() -> None:
        box[0] = scale(box[0], one).block_until_ready()

    return 2 * box[0].nbytes / _best_seconds(copy, reps)


def torch_copy_bandwidth(torch: Any, n_bytes: int, reps: int) -> float:
    """In-place ``x.mul_(s)`` with torch's intra-op threads (all cores)."""
    x = torch.ones(n_bytes // 4, dtype=torch.float32)
    return 2 * x.numel() * 4 / _best_seconds(lambda: x.mul_(1.0), reps)


def measure_bandwidth(settings: Settings) -> dict[str, float]:
    """Copy bandwidths in bytes/s; ``best`` is the one the floor uses."""
    n, reps = settings.bandwidth_bytes, settings.bandwidth_reps
    result = {
        "numpy_1_thread": numpy_copy_bandwidth(n, reps, threads=1),
        "numpy_2_threads": numpy_copy_bandwidth(n, reps, threads=2),
        "jax": jax_copy_bandwidth(n, reps),
    }
    torch = _load_torch()
    if torch is not None:
        result["torch"] = torch_copy_bandwidth(torch, n, reps)
    result["best"] = max(result.values())
    return result


# ----------------------------------------------------------------------------------------------
# One case


def run_case(
    name: str, settings: Settings, bandwidth: float, names: Sequence[str] = CONTENDERS
) -> list[dict[str, Any]]:
    """Benchmark every contender on one case; returns table rows (floor row first)."""
    rng = np.random.default_rng(0)
    shapes = CASES[name]()
    params_np, grads_np = make_tree(shapes, rng), make_tree(shapes, rng)
    n_params = count_params(params_np)
    contenders = build_contenders(params_np, grads_np, names)
    for c in contenders:
        calibrate(c, settings.batch_seconds)
    samples = measure(contenders, settings.rounds)
    floor = BYTES_PER_PARAM * n_params / bandwidth
    base = {"case": name, "n_params": n_params, "n_leaves": len(jax.tree.leaves(params_np))}
    rows = [{**base, "contender": "floor", "median_s": floor}]
    for c in contenders:
        rows.append({**base, "contender": c.name, **_summary(samples[c.name]), **c.info})
        rows[-1]["batch"] = c.batch
    optax_median = next((r["median_s"] for r in rows if r["contender"] == "optax.adam"), None)
    for row in rows:
        row["vs_optax"] = row["median_s"] / optax_median if optax_median else float("nan")
        row["vs_floor"] = row["median_s"] / floor
    return rows


def _summary(seconds: list[float]) -> dict[str, Any]:
    p10, median, p90 = np.percentile(seconds, [10, 50, 90])
    return {"median_s": median, "p10_s": p10, "p90_s": p90, "samples_s": seconds}


# ----------------------------------------------------------------------------------------------
# Output


COLUMNS = (
    "case", "contender", "median us", "p10-p90 us", "vs optax", "vs floor",
    "compile s", "temp MB", "arg MB", "out MB", "alias MB", "state MB",
)  # fmt: skip


def _us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def _mb(row: dict[str, Any], key: str) -> str:
    return f"{row[key] / MB:.1f}" if key in row else ""


def format_row(row: dict[str, Any]) -> list[str]:
    spread = f"{_us(row['p10_s'])}-{_us(row['p90_s'])}" if "p10_s" in row else ""
    case = f"{row['case']} ({row['n_params'] / 1e6:.2f}M)"
    compile_s = f"{row['compile_s']:.2f}" if "compile_s" in row else ""
    return [
        case, row["contender"], _us(row["median_s"]), spread,
        f"{row['vs_optax']:.2f}", f"{row['vs_floor']:.1f}", compile_s,
        *(_mb(row, k) for k in ("temp_bytes", "argument_bytes", "output_bytes", "alias_bytes")),
        _mb(row, "state_bytes"),
    ]  # fmt: skip


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    torch = _load_torch()
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "jax": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "optax": optax.__version__,
        "torch": torch.__version__ if torch else None,
        "torch_threads": torch.get_num_threads() if torch else None,
        "adamjax": _load_adamjax()[1],
    }


def print_header(env: dict[str, Any], bandwidth: dict[str, float], settings: Settings) -> None:
    print(f"jax {env['jax']} on {', '.join(env['jax_devices'])}; optax {env['optax']}; ", end="")
    print(f"torch {env['torch']} ({env['torch_threads']} threads)" if env["torch"] else "no torch")
    if env["adamjax"] != "ok":
        print(f"adamjax skipped: {env['adamjax']}")
    bw = ", ".join(f"{k} {v / 1e9:.1f} GB/s" for k, v in bandwidth.items() if k != "best")
    print(f"copy bandwidth (read+write): {bw}; floor uses {bandwidth['best'] / 1e9:.1f} GB/s")
    print(f"floor = {BYTES_PER_PARAM} B/param / bandwidth; this is a DRAM floor, so cases whose")
    print("working set fits in the CPU caches can beat it.")
    print(
        f"{settings.rounds} interleaved rounds, ~{settings.batch_seconds * 1e3:.0f} ms per batch;"
    )
    print("median us = median over rounds of the time per step; MB = 1e6 bytes")
    print()


# ----------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small cases, few repetitions")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), help="cases to run")
    parser.add_argument(
        "--contenders", nargs="+", choices=(*CONTENDERS, CONTROL), default=list(CONTENDERS),
        help=f"contenders to run (default: all that are installed; {CONTROL}: a second, "
        "identical optax step, to see the noise between two contenders)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    cases = args.cases or (QUICK_CASES if args.quick else DEFAULT_CASES)
    env = environment()
    bandwidth = measure_bandwidth(settings)
    print_header(env, bandwidth, settings)
    rows = [
        row
        for case in cases
        for row in run_case(case, settings, bandwidth["best"], args.contenders)
    ]
    print(markdown_table(rows))
    if args.json:
        result = {"environment": env, "settings": vars(settings), "bandwidth": bandwidth}
        with open(args.json, "w") as f:
            json.dump({**result, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
