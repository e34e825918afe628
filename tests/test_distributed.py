"""examples/distributed.py: two processes on 127.0.0.1 train like one, and never outlive a run.

Each run starts in its own process group (the launcher and its workers) and the whole group is
killed on the way out, pass or fail; the time bound is a guard against a hang, not a claim.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_examples import PROGRESS_BAR

pytestmark = pytest.mark.slow  # run with `pytest -m slow`; CI runs them

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "distributed.py"
TIMEOUT = 240  # seconds


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _workers_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` running ``distributed.py --worker`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # the process is gone
            continue
        group = int(stat.rsplit(")", 1)[1].split()[2])  # fields after the command name
        if group == pgid and "distributed.py --worker" in command:
            found.append(int(entry.name))
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    return env


def test_two_processes_train_like_one(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--processes=2", "--quick", "--dtype=float64"]
    command += ["--json", f"--timeout={TIMEOUT - 30}", "--out", str(tmp_path)]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, err[-4000:]
    assert not _group_alive(proc.pid)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["devices"] == 2
    assert summary["max_abs_difference_between_processes"] == 0.0
    # float64: only the order of the cross-process gradient sum differs from one process.
    assert summary["max_abs_difference_vs_single_process"] < 1e-12
    assert abs(summary["final_loss"] - summary["final_loss_single_process"]) < 1e-12
    # --out: the same summary saved as JSON, and no temporary file left beside it
    path = tmp_path / "distributed.json"
    assert f"saved {path}" in err
    assert json.loads(path.read_text()) == summary and summary["steps"] == 30
    assert [p.name for p in tmp_path.iterdir()] == ["distributed.json"]
    assert not PROGRESS_BAR.search(out + err)


def test_stopped_launcher_stops_its_workers() -> None:
    command = [sys.executable, str(SCRIPT), "--processes=2", "--steps=100000", "--timeout=120"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 60
        while len(workers) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = _workers_in_group(proc.pid)
        # two workers and the single-process run beside them
        assert len(workers) == 3, "the launcher did not start its three processes"
        os.kill(proc.pid, signal.SIGTERM)  # the launcher alone, not its group
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0
        assert "stopped by SIGTERM" in err
        # The group held the launcher and its children: the launcher stopped and reaped them
        # before exiting, so nothing is left in it.
        assert not _group_alive(proc.pid)
    finally:
        _kill_group(proc)
