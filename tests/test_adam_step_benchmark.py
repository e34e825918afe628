"""Smoke test of the Adam step benchmark and its plot (runs them; asserts nothing about time)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from benchmarks import plot_adam_step

pytestmark = pytest.mark.slow  # run with `pytest -m slow`; CI runs them

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_benchmark_prints_a_table_and_the_plot_is_written(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "result.json"
    command = [
        sys.executable, "-m", "benchmarks.adam_step", "--quick", "--cases", "10x10000",
        "--contenders", "adamjax", "adamjax-flat", "adamjax-bf16", "optax", "--json", str(out),
    ]  # fmt: skip
    # Its own process: the suite's strict dtype promotion is not the benchmark's setting.
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "| case | contender | median us |" in printed
    for name in ("floor", "adamjax.adam", "adamjax.adam flat", "adamjax.adam bf16 m,v", "optax"):
        assert f"| 10x10000 (0.10M) | {name}" in printed, name
    rows = {row["contender"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["optax.adam"]["vs_optax"] == 1.0
    # 100k float32 params: float32 moments are 800 kB, bfloat16 moments half of that.
    assert rows["adamjax.adam"]["state_bytes"] == 8 * 100_000 + 4
    assert rows["adamjax.adam bf16 m,v"]["state_bytes"] == 4 * 100_000 + 4
    assert rows["adamjax.adam"]["alias_bytes"] >= 12 * 100_000  # params and moments donated
    png = tmp_path / "plot.png"
    plot_adam_step.main([str(out), "--out", str(png)])
    assert png.read_bytes().startswith(b"\x89PNG")
