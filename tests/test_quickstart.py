"""The main job: examples/quickstart.py trains the make_moons MLP cleanly."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

from tests.test_examples import PROGRESS_BAR

pytestmark = pytest.mark.slow  # run with `pytest -m slow`; CI runs them

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quickstart_reaches_high_test_accuracy(tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    losses = [float(x) for x in re.findall(r"epoch +\d+ +loss ([\d.]+|nan)", result.stdout)]
    assert len(losses) == 10 and all(loss == loss for loss in losses)  # no NaN
    assert losses[-1] < losses[0] / 5
    accuracy = re.search(r"test accuracy ([\d.]+)", result.stdout)
    assert accuracy and float(accuracy.group(1)) > 0.95
    # output captured (not a terminal): no progress bar, in either stream
    assert not PROGRESS_BAR.search(result.stdout + result.stderr), result.stderr[-2000:]
    # the picture goes where --out says
    picture = tmp_path / "quickstart_decision_boundary.png"
    assert f"saved {picture}" in result.stdout
    assert picture.stat().st_size > 10_000
