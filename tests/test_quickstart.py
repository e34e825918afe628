"""The main job: examples/quickstart.py trains the make_moons MLP cleanly."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quickstart_reaches_high_test_accuracy() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    losses = [float(x) for x in re.findall(r"epoch +\d+ +loss ([\d.]+|nan)", result.stdout)]
    assert len(losses) == 10 and all(loss == loss for loss in losses)  # no NaN
    assert losses[-1] < losses[0] / 5
    accuracy = float(re.search(r"test accuracy ([\d.]+)", result.stdout).group(1))
    assert accuracy > 0.95
