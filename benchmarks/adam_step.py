"""One Adam step on CPU, side by side: adamjax against optax, torch and the memory floor.

``update`` + ``apply_updates`` on fixed float32 gradients, params and state donated; torch's
``Adam`` with ``foreach`` and ``fused``; ``optax-again`` is a noise control; ``adamjax-int8``
stores the moments in ``adamjax.blockwise_int8()``. The floor is 28 B/param at the best copy
bandwidth of the run. docs/performance.md describes the columns.

    python -m benchmarks.adam_step [--quick] [--cases ...] [--contenders ...] [--json PATH]
        [--plot PNG]
"""

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamjax
from benchmarks import harness
from benchmarks.harness import Contender

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
BYTES_PER_PARAM = 28  # read p, g, m, v + write p, m, v; float32 each


def transformer_shapes(vocab: int = 8000, d: int = 256, layers: int = 4, d_ff: int = 1024) -> Any:
    """A 4-layer pre-norm transformer's parameter shapes (output tied to the embedding)."""
    norm = {"scale": (d,), "bias": (d,)}
    ff = {"w_in": (d, d_ff), "b_in": (d_ff,), "w_out": (d_ff, d), "b_out": (d,)}
    layer = {"attn": {x: {"w": (d, d), "b": (d,)} for x in "qkvo"}, "ff": ff, "ln1": norm,
             "ln2": norm}  # fmt: skip
    return {"embed": {"tokens": (vocab, d), "positions": (512, d)}, "final_norm": norm,
            "layers": {f"layer{i}": layer for i in range(layers)}}  # fmt: skip


CASES: dict[str, tuple[int, int] | None] = {  # leaves x size; None: the transformer
    "1x1M": (1, 1_000_000), "1x10M": (1, 10_000_000), "1x50M": (1, 50_000_000),
    "200x5000": (200, 5000), "500x2000": (500, 2000), "2000x1000": (2000, 1000),
    "transformer": None, "10x10000": (10, 10_000),  # the last one for smoke tests only
}  # fmt: skip
DEFAULT_CASES = ("1x1M", "1x10M", "1x50M", "200x5000", "500x2000", "2000x1000", "transformer")
QUICK_CASES = ("1x1M", "200x5000", "transformer")
CONTENDERS = ("adamjax", "adamjax-flat", "adamjax-bf16", "optax", "torch-foreach", "torch-fused")
EXTRA = ("optax-again", "adamjax-int8")  # a noise control; 8-bit moments (docs/memory.md)
# optional: without torch, its rows are left out
TORCH: Any = importlib.import_module("torch") if importlib.util.find_spec("torch") else None


def jax_contender(name: str, optimizer: Any, params: Any, grads: Any, apply: Any) -> Contender:
    state = optimizer.init(params)
    step = harness.optimizer_step(optimizer, apply)
    contender = harness.step_contender(name, step, (params, state), (grads,))
    contender.info["state_bytes"] = float(harness.nbytes(state))
    return contender


def torch_contender(fused: bool, params: Any, grads: Any) -> Contender:
    """``torch.optim.Adam(...).step()`` on CPU tensors whose ``.grad`` is set once."""
    tensors = [TORCH.tensor(p, requires_grad=True) for p in jax.tree.leaves(params)]
    for tensor, g in zip(tensors, jax.tree.leaves(grads), strict=True):
        tensor.grad = TORCH.tensor(g)
    kind = {"fused": True} if fused else {"foreach": True}
    optimizer = TORCH.optim.Adam(tensors, lr=LR, betas=(B1, B2), eps=EPS, **kind)
    run = lambda n: [optimizer.step() for _ in range(n)]  # noqa: E731
    run(1)  # creates the state
    state = [t for s in optimizer.state.values() for t in s.values() if TORCH.is_tensor(t)]
    info = {"state_bytes": float(sum(t.nbytes for t in state))}
    return Contender(f"torch Adam {'fused' if fused else 'foreach'}", run, info)


def contenders(params: Any, grads: Any, names: Sequence[str]) -> list[Contender]:
    """The named contenders that apply: flat params need several leaves, torch rows torch."""
    flat = adamjax.flat.ravel(params).layout.ravel
    bf16, int8 = jnp.bfloat16, adamjax.blockwise_int8()

    def ours(name: str, p: Any = params, g: Any = grads, **moments: Any) -> Contender:
        optimizer = adamjax.adam(LR, B1, B2, EPS, **moments)
        return jax_contender(name, optimizer, p, g, adamjax.apply_updates)

    def theirs(name: str) -> Contender:
        return jax_contender(name, optax.adam(LR, B1, B2, EPS), params, grads, optax.apply_updates)

    candidates: dict[str, Callable[[], Contender]] = {
        "adamjax": lambda: ours("adamjax.adam"),
        "adamjax-flat": lambda: ours("adamjax.adam flat", flat(params), flat(grads)),
        "adamjax-bf16": lambda: ours("adamjax.adam bf16 m,v", mu_dtype=bf16, nu_dtype=bf16),
        "adamjax-int8": lambda: ours("adamjax.adam 8-bit m,v", mu_dtype=int8, nu_dtype=int8),
        "optax": lambda: theirs("optax.adam"),
        "optax-again": lambda: theirs("optax.adam again"),
        "torch-foreach": lambda: torch_contender(False, params, grads),
        "torch-fused": lambda: torch_contender(True, params, grads),
    }
    left_out = {"adamjax-flat"} if len(jax.tree.leaves(params)) == 1 else set()
    left_out |= {"torch-foreach", "torch-fused"} if TORCH is None else set()
    return [make() for key, make in candidates.items() if key in names and key not in left_out]


def bandwidth(n_bytes: int, reps: int) -> dict[str, float]:
    """Copy bandwidths, bytes read + written per second; ``best`` sets the floor."""
    src, dst = np.ones(n_bytes // 4, np.float32), np.zeros(n_bytes // 4, np.float32)
    scale = jax.jit(lambda x, s: x * s, donate_argnums=0)
    box = [jnp.ones(n_bytes // 4, jnp.float32)]
    copies: dict[str, Callable[[], Any]] = {
        "numpy": lambda: np.copyto(dst, src),
        "jax": lambda: box.append(scale(box.pop(), jnp.float32(1.0)).block_until_ready()),
    }
    if TORCH is not None:
        x = TORCH.ones(n_bytes // 4)
        copies["torch"] = lambda: x.mul_(1.0)
    result = {}
    for name, copy in copies.items():
        copy()
        result[name] = 2 * n_bytes / min(harness.seconds(copy) for _ in range(reps))
    return {**result, "best": max(result.values())}


def run_case(case: str, rounds: int, batch_s: float, floor_bw: float, names: Sequence[str]) -> list:
    """Table rows of one case, the floor first."""
    size = CASES[case]
    params, grads = harness.random_trees(
        transformer_shapes() if size is None else harness.leaf_shapes(*size)
    )
    n_params = sum(int(np.size(x)) for x in jax.tree.leaves(params))
    base = {"case": case, "n_params": n_params, "n_leaves": len(jax.tree.leaves(params))}
    found = contenders(params, grads, names)
    samples = harness.interleaved(found, rounds, batch_s)
    rows = [{**base, "contender": "floor", "median_s": BYTES_PER_PARAM * n_params / floor_bw}]
    rows += harness.records(found, samples, **base)
    optax_s = next((r["median_s"] for r in rows if r["contender"] == "optax.adam"), np.nan)
    for r in rows:
        r.update(vs_optax=r["median_s"] / optax_s, vs_floor=r["median_s"] / rows[0]["median_s"])
    return rows


COLUMNS = ("case", "contender", "median us", "p10-p90 us", "vs optax", "vs floor", "compile s",
           "fusions", "B/param", "temp MB", "arg MB", "out MB", "alias MB", "state MB")  # fmt: skip


def format_row(r: dict[str, Any]) -> list[str]:
    compiled = "compile_s" in r
    return [
        f"{r['case']} ({r['n_params'] / 1e6:.2f}M)", r["contender"], harness.us(r["median_s"]),
        harness.spread(r), f"{r['vs_optax']:.2f}", f"{r['vs_floor']:.1f}",
        f"{r['compile_s']:.2f}" if compiled else "", str(r["fusions"]) if compiled else "",
        f"{r['bytes_accessed'] / r['n_params']:.0f}" if "bytes_accessed" in r else "",
        *(harness.mb(r, f"{k}_bytes") for k in ("temp", "argument", "output", "alias", "state")),
    ]  # fmt: skip


def plot(result: dict[str, Any], out: str) -> None:
    """Step time / optax's per case (p10-p90 as lines, the floor as a black tick) and compile
    times, written to ``out``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    cases: dict[str, dict[str, dict[str, Any]]] = {}
    for row in result["rows"]:
        cases.setdefault(row["case"], {})[row["contender"]] = row
    names = sorted({r["contender"] for r in result["rows"] if "p10_s" in r})
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    fig = Figure(figsize=(13, 5.4))
    axes = fig.subplots(1, 2, width_ratios=[3, 2])
    for i, rows in enumerate(cases.values()):
        base = rows["optax.adam"]["median_s"] if "optax.adam" in rows else np.nan
        for ax, key, scale in ((axes[0], "median_s", base), (axes[1], "compile_s", 1.0)):
            present = [name for name in names if key in rows.get(name, {})]
            for j, name in enumerate(present):
                width, row = 0.8 / len(present), rows[name]
                x = i - 0.4 + (j + 0.5) * width
                ax.bar(x, row[key] / scale, width, color=colors[name])
                if key == "median_s":
                    ax.plot([x, x], [row["p10_s"] / base, row["p90_s"] / base], "k", lw=0.8)
        axes[0].plot([i - 0.42, i + 0.42], [rows["floor"]["median_s"] / base] * 2, "k", lw=2)
    axes[0].set(ylabel="step time / optax.adam's (black: 28 B/param floor)", title="Adam step")
    axes[1].set(ylabel="trace + compile seconds", title="Compile time")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xticks(range(len(cases)), list(cases), fontsize=7)
    handles = [Patch(color=colors[name], label=name) for name in names]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    env = result["environment"]
    fig.suptitle(f"jax {env['jax']}, optax {env['optax']}, torch {env['torch']}; floor at "
                 f"{result['bandwidth']['best'] / 1e9:.0f} GB/s", fontsize=9)  # fmt: skip
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    harness.replace_atomically(out, lambda path: fig.savefig(path, dpi=110, format="png"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "small cases, few rounds (CI)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), help="cases to run")
    parser.add_argument("--contenders", nargs="+", choices=(*CONTENDERS, *EXTRA),
                        default=list(CONTENDERS), help="also: " + ", ".join(EXTRA))  # fmt: skip
    parser.add_argument("--plot", metavar="PNG", help="also plot the results")
    args = parser.parse_args(argv)
    env = {"jax": jax.__version__, "optax": optax.__version__, "torch": TORCH and TORCH.__version__}
    extra = f"; optax {env['optax']}; torch {env['torch']}; MB = 1e6 bytes"
    rounds, batch_s = harness.start(args, full=(21, 50), quick=(5, 10), extra=extra)
    copy = bandwidth(64 * 2**20, 3) if args.quick else bandwidth(256 * 2**20, 7)
    speeds = ", ".join(f"{k} {v / 1e9:.1f} GB/s" for k, v in copy.items())
    print(f"copy bandwidth (read+write): {speeds}")
    print(f"floor: {BYTES_PER_PARAM} B/param at the best (a DRAM floor: cached cases beat it)\n")
    cases = args.cases or (QUICK_CASES if args.quick else DEFAULT_CASES)
    timing = (rounds, batch_s, copy["best"], args.contenders)
    rows = [row for case in cases for row in run_case(case, *timing)]
    print(harness.markdown(COLUMNS, [format_row(r) for r in rows]))
    result = {"environment": env, "bandwidth": copy, "rows": rows}
    harness.finish(args.json, result)
    if args.plot:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
