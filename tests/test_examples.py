"""Every example script runs, once, and prints what it claims.

The scripts run in two Python processes side by side (each importing JAX, scikit-learn and
matplotlib once), one script after another, each with its ``main()`` called under a patched
``sys.argv`` (``--quick --out <tmp_path>``) and its stdout and stderr captured; the tests below
then check each script's printed figures, that its pictures landed in the temporary directory
and not in ``examples/out/``, and that with output captured it printed no progress bar.
examples/quickstart.py, the main job, runs in full instead (its own test below), and
examples/distributed.py, which starts processes of its own, in tests/test_distributed.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from tests import reference as ref

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# Scripts run once elsewhere: in full, or with processes of their own.
ELSEWHERE = {
    "distributed.py": "tests/test_distributed.py",
    "quickstart.py": "test_quickstart_trains_to_high_test_accuracy below",
}
SCRIPTS = sorted(
    p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_") and p.name not in ELSEWHERE
)

RUNNER = r"""
import contextlib, importlib.util, io, json, os, sys, time, traceback
out_dir, names = sys.argv[1], sys.argv[2:]
examples = os.path.join(os.getcwd(), "examples")
sys.path.insert(0, examples)
results = {}
for name in names:
    path = os.path.join(examples, name)
    stdout, stderr = io.StringIO(), io.StringIO()  # captured, so neither is a terminal
    error, start = None, time.perf_counter()
    try:
        spec = importlib.util.spec_from_file_location("example_" + name[:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.argv = [path, "--quick", "--out", out_dir]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            module.main()
    except BaseException:
        error = traceback.format_exc()
    results[name] = {"stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "error": error,
                     "seconds": time.perf_counter() - start}
print("@@RESULTS@@" + json.dumps(results))
"""

pytestmark = pytest.mark.slow  # run with `pytest -m slow`; CI runs them

# What tqdm writes: carriage returns, "42%|", "12/200 [", rates, and the bar's block characters.
PROGRESS_BAR = re.compile(r"\r|\d+%\||\d+/\d+ \[|it/s|s/it|[\u2588-\u258f]")
EXAMPLES_OUT = EXAMPLES / "out"  # the default --out of every example


def _snapshot(directory: pathlib.Path) -> dict[str, tuple[int, int]] | None:
    """Each file under ``directory`` with its size and modification time; None if absent."""
    if not directory.exists():
        return None
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# Scripts that compile networks take several times as long as the rest.
SLOW = {
    "digits_cnn.py",
    "ensemble.py",
    "family.py",
    "int8_moments.py",
    "sentiment_rnn.py",
    "sparse_rows.py",
    "sweep.py",
}


def _halves(names: list[str]) -> list[list[str]]:
    """Two groups of about equal cost: slow scripts count three times."""
    groups: list[list[str]] = [[], []]
    costs = [0, 0]
    for name in sorted(names, key=lambda n: (n not in SLOW, n)):
        lighter = costs.index(min(costs))
        groups[lighter].append(name)
        costs[lighter] += 3 if name in SLOW else 1
    return groups


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("examples_out")
    before = _snapshot(EXAMPLES_OUT)
    env = {**os.environ, "MPLBACKEND": "Agg", "JAX_PLATFORMS": "cpu"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(out), *group],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for group in _halves(SCRIPTS)
    ]
    results = {}
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        marker = stdout.rfind("@@RESULTS@@")
        assert marker >= 0, f"the runner did not finish:\n{stdout}\n{stderr[-3000:]}"
        results.update(json.loads(stdout[marker + len("@@RESULTS@@") :]))
    return {"out": out, "results": results, "before": before, "after": _snapshot(EXAMPLES_OUT)}


def _output(runs: dict, name: str) -> str:
    run = runs["results"][name]
    assert run["error"] is None, f"{name} failed:\n{run['error']}"
    return run["stdout"]


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"no match for {pattern!r} in:\n{text}"
    return float(match.group(1))


def _saved(runs: dict, text: str, filename: str) -> None:
    assert f"saved {runs['out'] / filename}" in text
    assert (runs["out"] / filename).stat().st_size > 10_000  # a real picture


NUMBER = r"([-+]?[\d.]+(?:e[-+]?\d+)?|nan)"

# The 60 rows (x, y, f) examples/adam_table.py prints: Adam on x^2 + y^2 from the start that
# np.random.seed(1) draws in [-1, 1]^2, step size 0.02, beta1 0.8, beta2 0.999, eps 1e-8.
# test_expected_table_is_float64_numpy_adam rederives them with tests/reference.py.
EXPECTED_TABLE = [
    (-0.14595599, 0.42064899, 0.19825),
    (-0.12613855, 0.40070573, 0.17648),
    (-0.10665938, 0.3808601, 0.15643),
    (-0.08770234, 0.3611548, 0.13812),
    (-0.06947941, 0.34163405, 0.12154),
    (-0.05222756, 0.32234308, 0.10663),
    (-0.03620086, 0.30332769, 0.09332),
    (-0.02165679, 0.28463383, 0.08149),
    (-0.00883663, 0.26630707, 0.07100),
    (0.00205801, 0.24839209, 0.06170),
    (0.01088844, 0.23093228, 0.05345),
    (0.01759677, 0.2139692, 0.04609),
    (0.02221425, 0.19754214, 0.03952),
    (0.02485859, 0.18168769, 0.03363),
    (0.02572196, 0.16643933, 0.02836),
    (0.02505339, 0.15182705, 0.02368),
    (0.02313917, 0.13787701, 0.01955),
    (0.02028406, 0.12461125, 0.01594),
    (0.01679451, 0.11204744, 0.01284),
    (0.01296436, 0.10019867, 0.01021),
    (0.00906264, 0.08907337, 0.00802),
    (0.00532366, 0.07867522, 0.00622),
    (0.00193919, 0.06900318, 0.00477),
    (-0.00094677, 0.06005154, 0.00361),
    (-0.00324034, 0.05181012, 0.00269),
    (-0.00489722, 0.04426444, 0.00198),
    (-0.00591902, 0.03739604, 0.00143),
    (-0.00634719, 0.0311828, 0.00101),
    (-0.00625503, 0.02559933, 0.00069),
    (-0.00573849, 0.02061737, 0.00046),
    (-0.00490679, 0.01620624, 0.00029),
    (-0.00387317, 0.01233332, 0.00017),
    (-0.00274675, 0.00896449, 0.00009),
    (-0.00162559, 0.00606458, 0.00004),
    (-0.00059149, 0.00359785, 0.00001),
    (0.0002934, 0.00152838, 0.00000),
    (0.00098821, -0.00017954, 0.00000),
    (0.00147307, -0.00156101, 0.00000),
    (0.00174746, -0.00265025, 0.00001),
    (0.00182724, -0.00348028, 0.00002),
    (0.00174089, -0.00408267, 0.00002),
    (0.00152536, -0.00448737, 0.00002),
    (0.00122173, -0.00472254, 0.00002),
    (0.00087133, -0.00481438, 0.00002),
    (0.00051228, -0.00478712, 0.00002),
    (0.00017692, -0.00466292, 0.00002),
    (-0.00011001, -0.00446188, 0.00002),
    (-0.00033219, -0.004202, 0.00002),
    (-0.00048176, -0.00389929, 0.00002),
    (-0.00055861, -0.00356777, 0.00001),
    (-0.00056912, -0.00321961, 0.00001),
    (-0.00052452, -0.00286514, 0.00001),
    (-0.00043908, -0.00251304, 0.00001),
    (-0.0003283, -0.00217044, 0.00000),
    (-0.00020731, -0.00184302, 0.00000),
    (-8.95352320e-05, -1.53514076e-03, 0.00000),
    (1.43050285e-05, -1.25002847e-03, 0.00000),
    (9.67123406e-05, -9.89850279e-04, 0.00000),
    (0.00015359, -0.00075587, 0.00000),
    (0.00018407, -0.00054858, 0.00000),
]


def check_quadratic_1d(runs: dict, text: str) -> None:
    assert abs(_number(r"final phi " + NUMBER, text) - 2.0) < 5e-3
    assert _number(r"NumPy loop " + NUMBER, text) < 1e-5
    assert "started at the minimum, phi stays at 2.000000" in text
    _saved(runs, text, "quadratic_1d.png")


def check_adam_table(runs: dict, text: str) -> None:
    rows = re.findall(r"^>(\d+) f\(\[\s*(\S+)\s+(\S+?)\s*\]\) = (\S+)$", text, re.MULTILINE)
    assert [int(r[0]) for r in rows] == list(range(60))
    got = np.array([[float(v) for v in r[1:]] for r in rows])
    expected = np.array(EXPECTED_TABLE)
    np.testing.assert_allclose(got[:, :2], expected[:, :2], rtol=0, atol=1e-8)
    np.testing.assert_array_equal(got[:, 2], expected[:, 2])
    assert "Done!" in text
    _saved(runs, text, "adam_table.png")


def check_linear_regression(runs: dict, text: str) -> None:
    assert _number(r"largest difference from the closed form " + NUMBER, text) < 1e-3
    final = _number(r"final loss " + NUMBER, text)
    best = _number(r"closed-form loss " + NUMBER, text)
    assert best <= final < best * 1.01
    _saved(runs, text, "linear_regression.png")


def check_loss_surface(runs: dict, text: str) -> None:
    def row(name: str) -> tuple[float, float]:
        match = re.search(name + r".*loss " + NUMBER + r".* steps " + NUMBER, text)
        assert match, name
        return float(match.group(1)), float(match.group(2))

    adam, adam_swing = row("Adam")
    normalized, normalized_swing = row("normalized gradients")
    descent, _ = row("gradient descent")
    assert adam < 1e-3 and adam < normalized / 10 and adam < descent / 10
    assert normalized_swing > 0.05  # bounces by about 2 * lr around the minimum
    assert adam_swing < normalized_swing
    _saved(runs, text, "loss_surface.png")


def check_rosenbrock(runs: dict, text: str) -> None:
    adam = _number(r"Adam .* f " + NUMBER, text)
    descent = _number(r"gradient descent .* f " + NUMBER, text)
    assert adam < descent / 5
    assert _number(r"Adam .* distance to \(1, 1\) " + NUMBER, text) < 0.1
    _saved(runs, text, "rosenbrock.png")


def check_effective_learning_rate(runs: dict, text: str) -> None:
    rows = re.findall(r"effective lr " + NUMBER + r"  uncorrected " + NUMBER, text)
    effective = [float(r[0]) for r in rows]
    uncorrected = [float(r[1]) for r in rows]
    assert effective == sorted(effective) and effective[-1] > 2 * effective[0]  # it grows
    assert uncorrected[0] == pytest.approx(effective[0] * np.sqrt(1000), rel=1e-3)
    first = re.search(r"first step: effective lr " + NUMBER + r", lr / \|g_1\| = " + NUMBER, text)
    assert first and float(first.group(1)) == pytest.approx(float(first.group(2)), rel=1e-4)
    _saved(runs, text, "effective_learning_rate.png")


def check_sparse_gradients(runs: dict, text: str) -> None:
    initial = _number(r"initial loss " + NUMBER, text)

    def row(name: str) -> tuple[float, float]:
        match = re.search(
            r"^" + name + r" +final loss " + NUMBER + r".* step " + NUMBER, text, re.M
        )
        assert match, name
        return float(match.group(1)), float(match.group(2))

    (sgd, sgd_moved), (adam, adam_moved), (lazy, lazy_moved) = map(
        row, ["SGD", "Adam", "lazy Adam"]
    )
    assert max(sgd, adam, lazy) < initial and adam < sgd
    assert adam_moved == 1.0  # dense Adam moves every coordinate on momentum
    assert 0.05 < lazy_moved < 0.15 and 0.05 < sgd_moved < 0.15  # only the observed tenth
    _saved(runs, text, "sparse_gradients.png")


def check_digits_cnn(runs: dict, text: str) -> None:
    assert _number(r"^Adam test accuracy " + NUMBER, text) > 0.8
    assert _number(r"AdamW test accuracy " + NUMBER, text) > 0.8
    losses = re.findall(r"Adam loss " + NUMBER, text)
    assert float(losses[-1]) < float(losses[0]) / 2
    _saved(runs, text, "digits_cnn.png")


def check_sentiment_rnn(runs: dict, text: str) -> None:
    counting = _number(r"counting sentiment words, test accuracy " + NUMBER, text)
    accuracy = _number(r"^test accuracy " + NUMBER, text)
    assert accuracy > 0.95 and accuracy > counting + 0.1
    _saved(runs, text, "sentiment_rnn.png")


def check_signal_to_noise(runs: dict, text: str) -> None:
    early = _number(r"first 50 steps " + NUMBER, text)
    late = _number(r"over the last 500 " + NUMBER, text)
    assert early > 0.7 and late < 0.3
    ratio = re.search(r"\|update\| / \(lr \|snr\|\) between " + NUMBER + " and " + NUMBER, text)
    assert ratio and float(ratio.group(1)) > 0.999 and float(ratio.group(2)) < 1.001
    _saved(runs, text, "signal_to_noise.png")


def _final_loss(text: str, problem: str, name: str) -> float:
    match = re.search(
        rf"^{problem} +{re.escape(name)} +final loss ([-+\d.e]+)$", text, re.MULTILINE
    )
    assert match, f"no final loss of {name} on the {problem} in:\n{text}"
    return float(match.group(1))


def check_sparse_rows(runs: dict, text: str) -> None:
    """What docs/reliability.md says: lazy Adam ends far lower than dense Adam on the sparse
    quadratic, and dense Adam lower on the Zipf embedding (the quick run's 2000 steps as the full
    run's 3000); the leader lines, and the saved plot."""
    assert text.count("final loss") == 4
    dense, lazy = (_final_loss(text, "sparse quadratic", n) for n in ("adam (dense)", "lazy_adam"))
    assert lazy < dense / 100  # lazy Adam converges; dense Adam's momentum overshoots
    share = re.search(
        r"^sparse quadratic: lazy_adam ends lower, and is lower on (\d+)% ", text, re.M
    )
    assert share and int(share.group(1)) >= 80  # not a lucky last step of a jumpy curve
    dense, lazy = (_final_loss(text, "Zipf embedding", n) for n in ("adam (dense)", "lazy_adam"))
    assert dense < lazy / 2  # momentum carries rare rows toward their targets
    assert re.search(
        r"^Zipf embedding: adam \(dense\) ends lower, and is lower on 100% ", text, re.M
    )
    _saved(runs, text, "sparse_rows.png")


def check_low_precision(runs: dict, text: str) -> None:
    """Plain bfloat16 Adam stalls; compensated bfloat16 ends near float32 (the quick run's 15
    epochs): it closes at least 75% of the final-loss gap (the script itself checks that its
    params come back bfloat16)."""
    runs_named = ("float32 params", "bfloat16 params, plain", "bfloat16 params, compensated")
    f32, plain, comp = (_number(rf"^{n} +final train loss " + NUMBER, text) for n in runs_named)
    assert comp < plain and f32 < plain
    assert _number(r"compensation closes " + NUMBER + "%", text) >= 75.0
    assert (plain - comp) / (plain - f32) >= 0.75  # the printed share is this one
    accuracy = _number(r"^bfloat16 params, compensated .* test accuracy " + NUMBER, text)
    assert accuracy > 0.85
    _saved(runs, text, "low_precision.png")


def _family_table(text: str, task: str) -> tuple[int, float, dict[str, list[str]]]:
    """Steps, initial loss and the rows (optimizer -> cells) of one task's table."""
    match = re.search(
        rf"^{task}: .*\n(\d+) steps; initial loss {NUMBER}; target loss {NUMBER}\n\n"
        r"\| optimizer \|.*\n\|[-|: ]+\n((?:\|.*\n?)+)",
        text,
        re.MULTILINE,
    )
    assert match, f"no table for {task} in:\n{text}"
    lines = match.group(4).strip().splitlines()
    rows = {}
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    assert len(rows) == len(lines), f"an optimizer twice in the {task} table"
    return int(match.group(1)), float(match.group(2)), rows


def check_family(runs: dict, text: str) -> None:
    """One row per optimizer per task; each trains below its start; the state sizes of
    examples/family.py's docstring (Adam keeps two float32 moments, adafactor and adam_mini
    less); the learning rates of its rule; the saved figure."""
    scales = {"moons": 1e-2, "digits": 1e-3, "chars": 3e-3}  # the docstring's task scales
    factors = {"adam": 1.0, "adafactor": 10.0, "adam_mini": 1.0}  # and optimizer factors
    for task, scale in scales.items():
        steps, initial, rows = _family_table(text, task)
        assert steps == 30 and np.isfinite(initial)
        assert sorted(rows) == sorted(factors)
        for name, (lr, final, reached, step_ms, state) in rows.items():
            assert float(lr) == pytest.approx(scale * factors[name], rel=1e-6), (task, name)
            assert np.isfinite(float(final)) and float(final) < initial, (task, name, final)
            assert reached == "-" or 1 <= int(reached) <= steps, (task, name, reached)
            assert float(step_ms) > 0 and float(state) > 0
        adam = float(rows["adam"][4])
        assert 8.0 <= adam < 8.2, (task, adam)  # m and v in float32, plus a step counter
        assert float(rows["adafactor"][4]) < adam and float(rows["adam_mini"][4]) < adam
    _saved(runs, text, "family.png")


def check_int8_moments(runs: dict, text: str) -> None:
    """8-bit Adam against float32 Adam on both tasks (quick: 3 epochs, 100 steps): both train,
    the final losses within 10% and the accuracies within 2 points of each other (measured
    0.03% and 0.07%, 0 and 0.09 points), the stored moments quantized but within 10% (median
    over steps; measured 3.6% to 5.2%), and the figure saved."""
    for task, steps in (("digits", 63), ("chars", 100)):
        block = text[text.index(f"{task}: ") :]
        assert int(_number(r"; (\d+) steps", block)) == steps
        f32, f32_accuracy = (_number(rf"^  float32 .*{key} " + NUMBER, block) for key in
                             ("loss", "accuracy"))  # fmt: skip
        low, low_accuracy = (_number(rf"^  8-bit .*{key} " + NUMBER, block) for key in
                             ("loss", "accuracy"))  # fmt: skip
        assert 0 < f32 < 2.5 and 0 < low < 2.5, (task, f32, low)
        assert abs(low - f32) <= 0.1 * f32, (task, low, f32)
        assert abs(low_accuracy - f32_accuracy) <= 0.02, (task, low_accuracy, f32_accuracy)
        difference = _number(r"final loss differs by " + NUMBER + "%", block)
        assert difference == pytest.approx(100 * (low - f32) / f32, abs=0.05)
        for moment in ("m", "sqrt\\(v\\)"):
            median = _number(rf"stored {moment} relative error per step: median " + NUMBER, block)
            largest = _number(rf"stored {moment} .* max " + NUMBER, block)
            assert 0 < median <= largest < 0.15 and median < 0.1, (task, moment, median, largest)
    _saved(runs, text, "int8_moments.png")


CHECKS = {
    "quadratic_1d.py": check_quadratic_1d,
    "adam_table.py": check_adam_table,
    "linear_regression.py": check_linear_regression,
    "loss_surface.py": check_loss_surface,
    "rosenbrock.py": check_rosenbrock,
    "effective_learning_rate.py": check_effective_learning_rate,
    "sparse_gradients.py": check_sparse_gradients,
    "digits_cnn.py": check_digits_cnn,
    "sentiment_rnn.py": check_sentiment_rnn,
    "signal_to_noise.py": check_signal_to_noise,
    "sparse_rows.py": check_sparse_rows,
    "family.py": check_family,
    "low_precision.py": check_low_precision,
    "int8_moments.py": check_int8_moments,
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_quick_and_prints_its_claims(runs: dict, name: str) -> None:
    text = _output(runs, name)
    assert text.strip(), f"{name} printed nothing"
    check = CHECKS.get(name)
    if check is not None:
        check(runs, text)
    else:  # scripts whose figures their own tests check: at least a clean run with output
        assert "nan" not in text.lower().split()


def test_every_checked_example_exists() -> None:
    assert set(CHECKS) <= set(SCRIPTS)


def test_expected_table_is_float64_numpy_adam() -> None:
    start = -1.0 + 2.0 * np.random.RandomState(1).rand(2)  # what np.random.seed(1); rand(2) gives
    adam = ref.Adam(start, lr=0.02, b1=0.8, b2=0.999, eps=1e-8)
    point, rows = start, []
    for _ in range(60):
        point = adam.step(point, 2.0 * point)  # the gradient of x^2 + y^2
        rows.append((point[0], point[1], float(f"{point[0] ** 2 + point[1] ** 2:.5f}")))
    expected = np.array(EXPECTED_TABLE)
    np.testing.assert_allclose(np.array(rows)[:, :2], expected[:, :2], rtol=0, atol=1e-8)
    np.testing.assert_array_equal(np.array(rows)[:, 2], expected[:, 2])


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_saves_its_pictures_under_out_only(runs: dict, name: str) -> None:
    saved = re.findall(r"^saved (.+)$", _output(runs, name), re.MULTILINE)
    assert saved, f"{name} saved nothing"
    for path in map(pathlib.Path, saved):
        assert path.parent == runs["out"], f"{name} saved {path} outside --out {runs['out']}"
        assert path.stat().st_size > 10_000  # a real picture


def test_running_the_examples_leaves_examples_out_untouched(runs: dict) -> None:
    assert all(run["error"] is None for run in runs["results"].values())  # they all ran
    assert runs["after"] == runs["before"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_with_captured_output_prints_no_progress_bar(runs: dict, name: str) -> None:
    run = runs["results"][name]
    _output(runs, name)  # it ran
    for stream in ("stdout", "stderr"):
        bar = PROGRESS_BAR.search(run[stream])
        assert bar is None, f"{name} wrote a progress bar to {stream}: {run[stream][:500]!r}"


def test_quickstart_trains_to_high_test_accuracy(tmp_path: pathlib.Path) -> None:
    """The main job, in full: examples/quickstart.py trains the make_moons MLP cleanly."""
    before = _snapshot(EXAMPLES_OUT)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**os.environ, "MPLBACKEND": "Agg", "JAX_PLATFORMS": "cpu"},
    )
    losses = [float(x) for x in re.findall(r"epoch +\d+ +loss ([\d.]+|nan)", result.stdout)]
    assert len(losses) == 10 and all(np.isfinite(losses))
    assert losses[-1] < losses[0] / 5
    assert _number(r"test accuracy " + NUMBER, result.stdout) > 0.95
    # output captured (not a terminal): no progress bar, in either stream
    assert not PROGRESS_BAR.search(result.stdout + result.stderr), result.stderr[-2000:]
    # the picture goes where --out says, and only there
    picture = tmp_path / "quickstart_decision_boundary.png"
    assert re.findall(r"^saved (.+)$", result.stdout, re.MULTILINE) == [str(picture)]
    assert picture.stat().st_size > 10_000
    assert _snapshot(EXAMPLES_OUT) == before
