"""Plot a result of ``benchmarks.adam_step`` (its ``--json`` output) for docs/performance.md.

Two panels, one group of bars per case: the step time of every contender divided by optax's
(log scale; the floor is drawn as a black tick), and the compile time of the JAX contenders.

    python -m benchmarks.adam_step --json benchmarks/out/adam_step.json
    python -m benchmarks.plot_adam_step benchmarks/out/adam_step.json --out docs/adam_step.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

COLORS = {
    "adamjax.adam": "tab:blue",
    "adamjax.adam flat": "tab:cyan",
    "adamjax.adam bf16 m,v": "tab:purple",
    "optax.adam": "tab:orange",
    "optax.adam again": "tab:brown",
    "torch Adam foreach": "tab:gray",
    "torch Adam fused": "tab:green",
}


def _by_case(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    cases: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        cases.setdefault(row["case"], {})[row["contender"]] = row
    return cases


def plot(result: dict[str, Any], out: str, title: str | None = None) -> None:
    """Write the two-panel figure for ``result`` (the JSON written by ``adam_step --json``)."""
    cases = _by_case(result["rows"])
    names = [c for c in COLORS if any(c in rows for rows in cases.values())]
    fig, (ax_time, ax_compile) = plt.subplots(
        1, 2, figsize=(13, 5.4), gridspec_kw={"width_ratios": [3, 2]}
    )
    width = 0.8 / max(1, len(names))
    labels = [
        case if "x" in case else f"{case}\n({rows['floor']['n_leaves']} leaves)"
        for case, rows in cases.items()
    ]
    for i, rows in enumerate(cases.values()):
        base = rows.get("optax.adam", {}).get("median_s")
        if not base:
            continue
        for j, name in enumerate(names):
            if name not in rows:
                continue
            row = rows[name]
            x = i - 0.4 + (j + 0.5) * width
            low, high = row["p10_s"] / base, row["p90_s"] / base
            ax_time.bar(x, row["median_s"] / base, width, color=COLORS[name])
            ax_time.plot([x, x], [low, high], color="black", lw=0.8)
        floor = rows["floor"]["median_s"] / base
        ax_time.plot([i - 0.42, i + 0.42], [floor, floor], color="black", lw=2)
    ax_time.axhline(1.0, color="tab:orange", lw=0.8, ls="--")
    ax_time.set_yscale("log")
    ax_time.set_ylabel("step time / optax.adam step time (median, p10-p90)")
    ax_time.set_xticks(range(len(cases)), labels, fontsize=8)
    ax_time.set_title("Donated, jitted Adam step (float32)")

    jax_names = [n for n in names if not n.startswith("torch")]
    width = 0.8 / max(1, len(jax_names))
    for i, rows in enumerate(cases.values()):
        for j, name in enumerate(jax_names):
            if name in rows and "compile_s" in rows[name]:
                x = i - 0.4 + (j + 0.5) * width
                ax_compile.bar(x, rows[name]["compile_s"], width, color=COLORS[name])
    ax_compile.set_yscale("log")
    ax_compile.set_ylabel("trace + compile seconds")
    ax_compile.set_xticks(range(len(cases)), labels, fontsize=7)
    ax_compile.set_title("Compile time")
    handles: list[Any] = [Patch(color=COLORS[n], label=n) for n in names]
    handles.append(Line2D([], [], color="black", lw=2, label="floor: 28 B/param at copy bandwidth"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("json", help="result written by python -m benchmarks.adam_step --json")
    parser.add_argument("--out", default="docs/adam_step.png", help="PNG to write")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        result = json.load(f)
    bw = result["bandwidth"]["best"] / 1e9
    env = result["environment"]
    title = f"jax {env['jax']}, optax {env['optax']}, torch {env['torch']}; floor at {bw:.0f} GB/s"
    plot(result, args.out, title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
