"""The benchmark harness, and a smoke run of the Adam step benchmark with its plot.

Nothing here asserts a time: the smoke run checks that the table, the JSON and the plot are
written and that the static facts (state bytes, donation, fusions) are the ones expected.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks import harness

ROOT = pathlib.Path(__file__).resolve().parent.parent

# An optimized module in the text form of ``compiled.as_text()``: two fusion instructions in the
# entry computation, one inside a while body, and names and calls that mention "fusion" but are
# no fusion instruction.
HLO = """
%fused_computation (param_0: f32[4]) -> f32[4] {
  %param_0 = f32[4]{0} parameter(0)
  ROOT %multiply_add_fusion.1 = f32[4]{0} multiply(%param_0, %param_0)
}
%body (state: (s32[], f32[4])) -> (s32[], f32[4]) {
  %loop_fusion = f32[4]{0} fusion(%gte), kind=kLoop, calls=%fused_computation
  ROOT %t = (s32[], f32[4]{0}) tuple(%i, %loop_fusion)
}
ENTRY %main (p: f32[4], g: f32[4]) -> (f32[4], f32[4]) {
  %a = (f32[4]{0}, f32[4]{0}) fusion(%p, %g), kind=kLoop, calls=%fused_computation.2
  %b_fusion = f32[4]{0} fusion(%p), kind=kLoop, calls=%fused_computation
  %w = (s32[], f32[4]{0}) while(%init), condition=%cond, body=%body
  ROOT %r = (f32[4]{0}, f32[4]{0}) tuple(%b_fusion, %b_fusion)
}
"""


def test_count_fusions_counts_fusion_instructions_in_every_computation() -> None:
    assert harness.count_fusions(HLO) == 3  # two in the entry (one multi-output), one in the loop
    assert harness.count_fusions("ENTRY %main () -> f32[] {\n  ROOT %c = f32[] constant(1)\n}") == 0


def test_interleaved_rotates_the_order_and_gives_one_sample_per_round() -> None:
    calls: list[tuple[str, int]] = []
    contenders = [
        harness.Contender(name, lambda n, name=name: calls.append((name, n))) for name in "abc"
    ]
    samples = harness.interleaved(contenders, rounds=3, batch_seconds=0.0)
    assert calls[:3] == [("a", 2), ("b", 2), ("c", 2)]  # warm-up
    timed = [name for name, n in calls[3:]]
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(n == 1 for _, n in calls[3:])
    assert {name: len(s) for name, s in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(np.all(s >= 0) for s in samples.values())


def test_step_contender_carries_donated_state_from_step_to_step() -> None:
    contender = harness.step_contender("count", lambda x, y: (x + y, x * 2), (np.zeros(3),), (1.0,))
    first = contender.run(2)  # x: 0 -> 1 -> 2; the last step also returns 2 * 1
    assert np.array_equal(np.asarray(first[0]), np.full(3, 2.0))
    assert np.array_equal(np.asarray(first[1]), np.full(3, 2.0))
    assert np.array_equal(np.asarray(contender.run(1)[0]), np.full(3, 3.0))
    assert contender.info["compile_s"] > 0 and contender.info["fusions"] >= 1


def test_optimizer_step_takes_the_gradients_or_differentiates_the_loss() -> None:
    sgd, params = optax.sgd(0.5), np.array([1.0, 2.0])
    given = harness.optimizer_step(sgd, optax.apply_updates)
    new, _ = given(params, sgd.init(params), np.array([2.0, 2.0]))  # p - 0.5 * g
    assert np.array_equal(np.asarray(new), [0.0, 1.0])
    half_squares = lambda p: 0.5 * jnp.sum(p * p)  # noqa: E731  (gradient: p)
    derived = harness.optimizer_step(sgd, optax.apply_updates, loss=half_squares)
    new, _, value = derived(params, sgd.init(params))
    assert np.array_equal(np.asarray(new), [0.5, 1.0]) and float(value) == 2.5


def test_random_trees_fill_every_shape_and_differ_from_copy_to_copy() -> None:
    params, grads = harness.random_trees({"a": (3,), "b": {"c": (2, 4)}})
    assert params["a"].shape == (3,) and params["b"]["c"].shape == (2, 4)
    assert params["b"]["c"].dtype == np.float32
    assert not np.array_equal(params["a"], grads["a"])
    assert list(harness.leaf_shapes(3, 7)) == ["p0000", "p0001", "p0002"]


def test_parser_takes_the_interleaving_options_only_where_they_apply() -> None:
    timed = harness.parser("doc", "quick").parse_args(["--rounds", "3", "--batch-ms", "2"])
    assert harness.start(timed, full=(9, 50), quick=(1, 5)) == (3, 0.002)
    quick = harness.parser("doc", "quick").parse_args(["--quick"])
    assert harness.start(quick, full=(9, 50), quick=(1, 5)) == (1, 0.005)
    with pytest.raises(SystemExit):
        harness.parser("doc", "quick", interleaving=False).parse_args(["--rounds", "3"])


@pytest.mark.slow  # run with `pytest -m slow`; CI runs them
def test_quick_benchmark_prints_a_table_and_writes_json_and_plot(tmp_path: pathlib.Path) -> None:
    out, png = tmp_path / "result.json", tmp_path / "plot.png"
    command = [
        sys.executable, "-m", "benchmarks.adam_step", "--quick", "--cases", "10x10000",
        "--contenders", "adamjax", "adamjax-flat", "adamjax-bf16", "optax",
        "--json", str(out), "--plot", str(png),
    ]  # fmt: skip
    # Its own process: the suite's strict dtype promotion is not the benchmark's setting.
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| case | contender | median us |" in done.stdout
    for name in ("floor", "adamjax.adam", "adamjax.adam flat", "adamjax.adam bf16 m,v", "optax"):
        assert f"| 10x10000 (0.10M) | {name}" in done.stdout, name
    rows = {row["contender"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["optax.adam"]["vs_optax"] == 1.0
    # 100k float32 params: float32 moments are 800 kB, bfloat16 moments half of that.
    assert rows["adamjax.adam"]["state_bytes"] == 8 * 100_000 + 4
    assert rows["adamjax.adam bf16 m,v"]["state_bytes"] == 4 * 100_000 + 4
    assert rows["adamjax.adam"]["alias_bytes"] >= 12 * 100_000  # params and moments donated
    # The same update on the same 10 leaves compiles to as many loops in both libraries; flat
    # params need the loops of one leaf.
    assert rows["adamjax.adam"]["fusions"] == rows["optax.adam"]["fusions"]
    assert 2 * rows["adamjax.adam flat"]["fusions"] < rows["adamjax.adam"]["fusions"]
    assert png.read_bytes().startswith(b"\x89PNG")
