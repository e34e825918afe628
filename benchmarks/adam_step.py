"""One Adam step on CPU, side by side: adamjax against optax, torch and the memory floor.

``update`` + ``apply_updates`` on fixed float32 gradients (JAX: jitted, params and state donated;
torch: ``Adam`` with ``foreach`` and ``fused``), also on ``adamjax.flat`` params, with bfloat16
moments and, as a noise control, a second optax step (``optax-again``). The floor is 28 B/param
at the best copy bandwidth of the same run. docs/performance.md describes the columns.

    python -m benchmarks.adam_step [--quick] [--cases ...] [--contenders ...] [--json PATH]
        [--plot PNG]
"""

from __future__ import annotations

import importlib
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
    layer = {
        "attn": {x: {"w": (d, d), "b": (d,)} for x in "qkvo"},
        "ff": ff,
        "ln1": norm,
        "ln2": norm,
    }
    return {"embed": {"tokens": (vocab, d), "positions": (512, d)}, "final_norm": norm,
            "layers": {f"layer{i}": layer for i in range(layers)}}  # fmt: skip


def _leaves(n: int, size: int) -> Callable[[], Any]:
    return lambda: {f"p{i:04d}": (size,) for i in range(n)}


CASES: dict[str, Callable[[], Any]] = {
    "1x1M": _leaves(1, 1_000_000), "1x10M": _leaves(1, 10_000_000),
    "1x50M": _leaves(1, 50_000_000), "200x5000": _leaves(200, 5000),
    "500x2000": _leaves(500, 2000), "2000x1000": _leaves(2000, 1000),
    "transformer": transformer_shapes,
    "10x10000": _leaves(10, 10_000),  # not in the default set: smoke tests
}  # fmt: skip
DEFAULT_CASES = ("1x1M", "1x10M", "1x50M", "200x5000", "500x2000", "2000x1000", "transformer")
QUICK_CASES = ("1x1M", "200x5000", "transformer")
CONTENDERS = ("adamjax", "adamjax-flat", "adamjax-bf16", "optax", "torch-foreach", "torch-fused")
CONTROL = "optax-again"


def _torch() -> Any | None:
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def jax_contender(name: str, optimizer: Any, apply: Any, params: Any, grads: Any) -> Contender:
    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return apply(params, updates), state

    state = optimizer.init(params)
    contender = harness.step_contender(name, step, (params, state), (grads,))
    contender.info["state_bytes"] = float(harness.nbytes(state))
    return contender


def torch_contender(torch: Any, fused: bool, params: Any, grads: Any) -> Contender:
    """``torch.optim.Adam(...).step()`` on CPU tensors whose ``.grad`` is set once."""
    tensors = [torch.tensor(p, requires_grad=True) for p in jax.tree.leaves(params)]
    for tensor, g in zip(tensors, jax.tree.leaves(grads), strict=True):
        tensor.grad = torch.tensor(g)
    kind = {"fused": True} if fused else {"foreach": True}
    optimizer = torch.optim.Adam(tensors, lr=LR, betas=(B1, B2), eps=EPS, **kind)
    run = lambda n: [optimizer.step() for _ in range(n)]  # noqa: E731
    run(1)  # creates the state
    state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    info = {"state_bytes": float(sum(t.nbytes for t in state))}
    return Contender(f"torch Adam {'fused' if fused else 'foreach'}", run, info)


def contenders(params: Any, grads: Any, names: Sequence[str]) -> list[Contender]:
    adam, apply = lambda **kw: adamjax.adam(LR, B1, B2, EPS, **kw), adamjax.apply_updates
    flat = adamjax.flat.ravel(params).layout.ravel
    bf16 = {"mu_dtype": jnp.bfloat16, "nu_dtype": jnp.bfloat16}
    candidates = {
        "adamjax": lambda: jax_contender("adamjax.adam", adam(), apply, params, grads),
        "adamjax-flat": lambda: jax_contender(
            "adamjax.adam flat", adam(), apply, flat(params), flat(grads)),
        "adamjax-bf16": lambda: jax_contender(
            "adamjax.adam bf16 m,v", adam(**bf16), apply, params, grads),
        "optax": lambda: jax_contender(
            "optax.adam", optax.adam(LR, B1, B2, EPS), optax.apply_updates, params, grads),
        CONTROL: lambda: jax_contender(
            "optax.adam again", optax.adam(LR, B1, B2, EPS), optax.apply_updates, params, grads),
    }  # fmt: skip
    if len(jax.tree.leaves(params)) == 1:
        del candidates["adamjax-flat"]
    torch = _torch()
    if torch is not None:
        candidates["torch-foreach"] = lambda: torch_contender(torch, False, params, grads)
        candidates["torch-fused"] = lambda: torch_contender(torch, True, params, grads)
    return [make() for key, make in candidates.items() if key in names]


def bandwidth(n_bytes: int, reps: int) -> dict[str, float]:
    """Copy bandwidths, bytes read + written per second; ``best`` sets the floor."""
    src, dst = np.ones(n_bytes // 4, np.float32), np.zeros(n_bytes // 4, np.float32)
    scale = jax.jit(lambda x, s: x * s, donate_argnums=0)
    box = [jnp.ones(n_bytes // 4, jnp.float32)]
    copies: dict[str, Callable[[], Any]] = {
        "numpy": lambda: np.copyto(dst, src),
        "jax": lambda: box.append(scale(box.pop(), jnp.float32(1.0)).block_until_ready()),
    }
    torch = _torch()
    if torch is not None:
        x = torch.ones(n_bytes // 4)
        copies["torch"] = lambda: x.mul_(1.0)
    result = {}
    for name, copy in copies.items():
        copy()
        result[name] = 2 * n_bytes / min(harness.seconds(copy) for _ in range(reps))
    return {**result, "best": max(result.values())}


def run_case(case: str, rounds: int, batch_s: float, floor_bw: float, names: Sequence[str]) -> list:
    """Table rows of one case, the floor first."""
    rng = np.random.default_rng(0)
    shape = lambda s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    params, grads = (jax.tree.map(shape, CASES[case](), is_leaf=lambda x: isinstance(x, tuple))
                     for _ in range(2))  # fmt: skip
    n_params = sum(int(np.size(x)) for x in jax.tree.leaves(params))
    base = {"case": case, "n_params": n_params, "n_leaves": len(jax.tree.leaves(params))}
    found = contenders(params, grads, names)
    samples = harness.interleaved(found, rounds, batch_s)
    rows = [{**base, "contender": "floor", "median_s": BYTES_PER_PARAM * n_params / floor_bw}]
    for c in found:
        rows.append({**base, "contender": c.name, **harness.summary(samples[c.name]), **c.info,
                     "batch": c.batch, "samples_s": samples[c.name]})  # fmt: skip
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    cases: dict[str, dict[str, dict[str, Any]]] = {}
    for row in result["rows"]:
        cases.setdefault(row["case"], {})[row["contender"]] = row
    names = sorted({r["contender"] for r in result["rows"] if "p10_s" in r})
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4), width_ratios=[3, 2])
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
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "small cases, few rounds (CI)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), help="cases to run")
    parser.add_argument("--contenders", nargs="+", choices=(*CONTENDERS, CONTROL),
                        default=list(CONTENDERS), help=f"{CONTROL}: optax again")  # fmt: skip
    parser.add_argument("--plot", metavar="PNG", help="also plot the results")
    args = parser.parse_args(argv)
    rounds, batch_s = harness.timing(args, full=(21, 50), quick=(5, 10))
    torch = _torch()
    env = {"jax": jax.__version__, "optax": optax.__version__, "torch": torch and torch.__version__}
    print(harness.header(f"; optax {env['optax']}; torch {env['torch']}"))
    copy = bandwidth(64 * 2**20, 3) if args.quick else bandwidth(256 * 2**20, 7)
    print(
        "copy bandwidth (read+write): "
        + ", ".join(f"{k} {v / 1e9:.1f} GB/s" for k, v in copy.items())
    )
    print(f"floor: {BYTES_PER_PARAM} B/param at the best (a DRAM floor: cached cases beat it)")
    print(f"{rounds} interleaved rounds, ~{batch_s * 1e3:.0f} ms batches; MB = 1e6 bytes\n")
    cases = args.cases or (QUICK_CASES if args.quick else DEFAULT_CASES)
    rows = [
        r for case in cases for r in run_case(case, rounds, batch_s, copy["best"], args.contenders)
    ]
    print(harness.markdown(COLUMNS, [format_row(r) for r in rows]))
    print(f"\nload average after: {harness.load_average()}")
    result = {"environment": env, "bandwidth": copy, "rows": rows}
    harness.write_json(args.json, result)
    if args.plot:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
