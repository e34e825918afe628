"""examples/sparse_rows.py in its quick mode shows what docs/reliability.md says.

Lazy Adam ends far lower than dense Adam on the sparse quadratic, and dense Adam ends lower on
the Zipf embedding, with the quick run's 2000 steps as with the full run's 3000.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

pytestmark = pytest.mark.slow  # run with `pytest -m slow`; CI runs them

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _final_loss(text: str, problem: str, name: str) -> float:
    match = re.search(
        rf"^{problem} +{re.escape(name)} +final loss ([-+\d.e]+)$", text, re.MULTILINE
    )
    assert match, f"no final loss of {name} on the {problem} in:\n{text}"
    return float(match.group(1))


def check_sparse_rows(text: str, out: pathlib.Path) -> None:
    """The documented direction on both problems, the leader lines, and the saved plot."""
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
    picture = out / "sparse_rows.png"
    assert f"saved {picture}" in text
    assert picture.stat().st_size > 10_000


def test_sparse_rows_example_quick(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location(
        "sparse_rows", ROOT / "examples" / "sparse_rows.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--out", str(tmp_path)])
    check_sparse_rows(capsys.readouterr().out, tmp_path)
