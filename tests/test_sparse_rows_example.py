"""examples/sparse_rows.py runs in its quick mode and saves its plot."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_sparse_rows_example_quick(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location(
        "sparse_rows", ROOT / "examples" / "sparse_rows.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.count("final loss") == 4
    assert (tmp_path / "sparse_rows.png").stat().st_size > 10_000
