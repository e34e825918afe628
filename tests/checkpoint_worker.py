"""Saves in child processes that tests/test_checkpoint.py can kill, limit or run side by side.

Starting an interpreter and importing adamjax takes seconds, too long to do once per killed
save. This process imports it once and forks a child for each save. It never starts the XLA
runtime (the trees it saves are NumPy arrays, which ``save_checkpoint`` takes as they are), so
forking it is safe. Run it as ``python -m tests.checkpoint_worker``: it prints ``{"ready": true}``
once imported, then reads one command per line, a JSON list such as ``["save", "/tmp/c.npz",
3]``, and answers each with one JSON line:

    save PATH SEED                 fork a child that saves checkpoint_tree(SEED) to PATH;
                                   answers {"pid": ...} when the child starts writing
    save-limited PATH SEED BYTES   the same, with RLIMIT_FSIZE = BYTES and SIGXFSZ ignored, so
                                   that writing past BYTES raises OSError
    save-loop PATH SEED COUNT      the same, COUNT saves in a row
    wait PID                       reap the child: {"signal": ..., "code": ..., "seconds": ...,
                                   "report": ...}, seconds counted from the start of its save
    poll PID                       the same, or {"running": true} if it has not ended yet

A child's report: for save-limited, the exception the save raised ({"raised": "OSError",
"errno": 27} or {"raised": null}); for save-loop, the [start, end] ``time.monotonic()`` of each
save. On end of input, children still running are killed and reaped.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any

import jax.numpy as jnp
import numpy as np

import adamjax

ROWS, COLUMNS = 512, 1024  # three float32 matrices of 2 MiB: 6.1 MiB in all


def checkpoint_tree(seed: int) -> dict[str, Any]:
    """A params-and-state tree of 6.1 MiB whose every value depends on ``seed``."""
    rng = np.random.default_rng(seed)

    def matrix() -> np.ndarray:
        return rng.standard_normal((ROWS, COLUMNS), dtype=np.float32)

    return {
        "params": {
            "w": matrix(),
            "embedding": rng.standard_normal((256, 256)).astype(jnp.bfloat16),
            "b": rng.standard_normal(COLUMNS),  # float64
        },
        "opt_state": {"mu": matrix(), "nu": matrix(), "count": np.asarray(seed, np.int32)},
        "step": np.asarray(seed, np.int64),
    }


def _child(command: str, args: list[Any], report: int) -> int:
    """Run one command in a forked child, writing a start line and then a report to ``report``."""
    path, seed = str(args[0]), int(args[1])
    tree = checkpoint_tree(seed)
    if command == "save-limited":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(args[2]), hard))
    os.write(report, b'{"started": true}\n')
    outcome: dict[str, Any] = {}
    if command == "save":
        adamjax.save_checkpoint(path, tree)
    elif command == "save-limited":
        try:
            adamjax.save_checkpoint(path, tree)
            outcome = {"raised": None}
        except OSError as error:
            outcome = {"raised": type(error).__name__, "errno": error.errno}
    else:
        intervals = []
        for _ in range(int(args[2])):
            start = time.monotonic()
            adamjax.save_checkpoint(path, tree)
            intervals.append([start, time.monotonic()])
        outcome = {"intervals": intervals}
    os.write(report, (json.dumps(outcome) + "\n").encode())
    return 0


class _Children:
    """The forked children, their report pipes and the time each started saving."""

    def __init__(self) -> None:
        self.pipes: dict[int, int] = {}
        self.started: dict[int, float] = {}

    def fork(self, command: str, args: list[Any]) -> dict[str, Any]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 1
            try:
                code = _child(command, args, write_end)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(write_end)
        first = b""
        while not first.endswith(b"\n"):
            chunk = os.read(read_end, 1)
            if not chunk:
                break
            first += chunk
        self.started[pid] = time.monotonic()
        self.pipes[pid] = read_end
        return {"pid": pid}

    def reap(self, pid: int, block: bool) -> dict[str, Any]:
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        if done == 0:
            return {"running": True}
        seconds = time.monotonic() - self.started.pop(pid)
        read_end = self.pipes.pop(pid)
        text = b""
        while chunk := os.read(read_end, 1 << 16):
            text += chunk
        os.close(read_end)
        lines = text.decode().splitlines()
        return {
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "seconds": seconds,
            "report": json.loads(lines[-1]) if lines else None,
        }

    def kill_all(self) -> None:
        for pid in list(self.pipes):
            os.kill(pid, signal.SIGKILL)
            self.reap(pid, block=True)


def main() -> None:
    children = _Children()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command, *args = json.loads(line)
        if command in ("save", "save-limited", "save-loop"):
            answer = children.fork(command, args)
        elif command in ("wait", "poll"):
            answer = children.reap(int(args[0]), block=command == "wait")
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)
    children.kill_all()


if __name__ == "__main__":
    main()
