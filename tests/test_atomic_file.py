"""replace_atomically on its own: a writer that fails leaves the file and its directory as they
were; one that succeeds replaces the file whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from adamjax._atomic_file import replace_atomically


def test_a_failing_writer_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"previous")

    def write_half_then_fail(file: IO[bytes]) -> None:
        file.write(b"new, but not")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError, match="the writer failed"):
        replace_atomically(path, write_half_then_fail)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def _writer(content: bytes) -> Callable[[IO[bytes]], None]:
    def write(file: IO[bytes]) -> None:
        file.write(content)

    return write


def test_a_writer_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"a much longer previous content")
    replace_atomically(path, _writer(b"new"))
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    replace_atomically(tmp_path / "fresh.bin", _writer(b"x"))
    assert (tmp_path / "fresh.bin").read_bytes() == b"x"
