"""Checkpoints: save, restore, keep training, and get exactly what uninterrupted training gives."""

from __future__ import annotations

import collections
import errno
import functools
import io
import json
import os
import random
import re
import select
import signal
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets
from tests import catalog
from tests.checkpoint_worker import checkpoint_tree

F32 = jnp.float32
PARAMS = {
    "dense": {"w": jnp.linspace(-1.0, 1.0, 12, dtype=F32).reshape(3, 4), "b": jnp.zeros(4, F32)},
    "scale": jnp.ones((), F32),
}
BEFORE, AFTER = 3, 2  # steps before the checkpoint (odd: mid-cycle for k = 2), after it


def _grads(step: int, params: Any) -> Any:
    """Gradients that depend on the step and on the params (a closed loop)."""
    rng = np.random.default_rng(step)
    noise = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
    grads = jax.tree.map(lambda p, n: (p - 0.5 + n).astype(p.dtype), params, noise)
    if step == 1:  # one poisoned step, for the wrappers that skip it
        grads["scale"] = jnp.full_like(grads["scale"], jnp.nan)
    return grads


def _alias(name: str) -> Callable[[], Any]:
    factory = getattr(adamjax, name)
    if name in ("sgd", "normalized_gradient"):
        return lambda: factory(0.01)
    return factory


def _finite_grads(step: int, params: Any) -> Any:
    grads = _grads(step, params)
    return jax.tree.map(lambda g: jnp.nan_to_num(g, nan=0.25), grads)


# name -> (optimizer factory, gradient function)
CASES: dict[str, tuple[Callable[[], Any], Callable[[int, Any], Any]]] = {
    **{f"aliases.{name}": (_alias(name), _finite_grads) for name in catalog.ALIASES},
    "aliases.sgd-momentum": (lambda: adamjax.sgd(0.01, 0.9, nesterov=True), _finite_grads),
    "aliases.adam-schedule": (
        lambda: adamjax.adam(adamjax.schedules.warmup_cosine_decay(0.0, 0.1, 2, 10)),
        _finite_grads,
    ),
    **{
        f"presets.{name}": (getattr(presets, name), _finite_grads)
        for name in presets.__all__
        if name.startswith(("torch_", "keras_"))  # optimizers, not building blocks or states
    },
    "presets.torch_adam-amsgrad-l2": (
        lambda: presets.torch_adam(weight_decay=0.1, amsgrad=True),
        _finite_grads,
    ),
    "lazy_adam": (lambda: adamjax.lazy_adam(0.01), _finite_grads),
    "chain-skip_nonfinite": (
        lambda: adamjax.chain(adamjax.skip_nonfinite(adamjax.adamw(0.01)), adamjax.scale(0.5)),
        _grads,
    ),
    "accumulate_gradients-mid-cycle": (
        lambda: adamjax.accumulate_gradients(adamjax.adam(0.01), 2),
        _finite_grads,
    ),
    "skip_nonfinite-accumulate_gradients": (
        lambda: adamjax.skip_nonfinite(
            adamjax.accumulate_gradients(adamjax.nadam(0.01), 2),
            max_consecutive_skips=3,
            on_limit="apply",
        ),
        _grads,
    ),
    "adam-float32-moments-bfloat16-params": (
        lambda: adamjax.adam(0.01, mu_dtype=F32, nu_dtype=F32),
        _finite_grads,
    ),
}


def _run(
    step: Any, grad_fn: Callable[[int, Any], Any], params: Any, state: Any, steps: range
) -> tuple[Any, Any]:
    for i in steps:
        params, state = step(params, state, grad_fn(i, params))
    return params, state


def _jitted_step(optimizer: Any) -> Any:
    @jax.jit
    def step(params: Any, state: Any, grads: Any) -> Any:
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    return step


def _assert_bits_equal(a: Any, b: Any) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True
    ):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype, jax.tree_util.keystr(path)
        assert x.tobytes() == y.tobytes(), jax.tree_util.keystr(path)


def _params_for(name: str) -> Any:
    if "bfloat16" in name:
        return jax.tree.map(lambda p: p.astype(jnp.bfloat16), PARAMS)
    return PARAMS


@pytest.mark.parametrize("name", list(CASES))
def test_resumed_training_is_bitwise_identical(name: str, tmp_path: Path) -> None:
    factory, grad_fn = CASES[name]
    optimizer = factory()
    step = _jitted_step(optimizer)
    params = _params_for(name)
    straight = _run(step, grad_fn, params, optimizer.init(params), range(BEFORE + AFTER))

    halfway = _run(step, grad_fn, params, optimizer.init(params), range(BEFORE))
    file = tmp_path / "checkpoint.npz"
    adamjax.save_checkpoint(file, {"params": halfway[0], "opt_state": halfway[1]})
    target = jax.eval_shape(lambda: {"params": params, "opt_state": optimizer.init(params)})
    restored = adamjax.restore_checkpoint(file, target)
    _assert_bits_equal(restored, {"params": halfway[0], "opt_state": halfway[1]})
    resumed = _run(
        step, grad_fn, restored["params"], restored["opt_state"], range(BEFORE, BEFORE + AFTER)
    )
    _assert_bits_equal(resumed, straight)
    assert any(
        np.any(np.asarray(a) != np.asarray(b))
        for a, b in zip(jax.tree.leaves(straight[0]), jax.tree.leaves(params), strict=True)
    ), "the params must have moved"


def test_batched_state_round_trips_bitwise(tmp_path: Path) -> None:
    """A vmapped optimizer: three members, each with its own learning rate and params."""
    members = 3
    rates = jnp.asarray([0.1, 0.01, 0.001], F32)
    params = jax.tree.map(lambda p: jnp.stack([p + i for i in range(members)]), PARAMS)

    def init(params: Any, lr: jax.Array) -> Any:
        return adamjax.skip_nonfinite(adamjax.adamw(lr)).init(params)

    @jax.jit
    def step(params: Any, state: Any, grads: Any, lr: jax.Array) -> Any:
        def one(p: Any, s: Any, g: Any, lr: jax.Array) -> Any:
            updates, s = adamjax.skip_nonfinite(adamjax.adamw(lr)).update(g, s, p)
            return adamjax.apply_updates(p, updates), s

        return jax.vmap(one)(params, state, grads, lr)

    def run(params: Any, state: Any, steps: range) -> Any:
        for i in steps:
            params, state = step(params, state, _grads(i, params), rates)
        return params, state

    state0 = jax.vmap(init)(params, rates)
    straight = run(params, state0, range(BEFORE + AFTER))
    halfway = run(params, state0, range(BEFORE))
    file = tmp_path / "batched.npz"
    adamjax.save_checkpoint(file, halfway)
    restored = adamjax.restore_checkpoint(file, jax.eval_shape(lambda: (params, state0)))
    assert restored[1].inner_state[0].count.shape == (members,)
    resumed = run(restored[0], restored[1], range(BEFORE, BEFORE + AFTER))
    _assert_bits_equal(resumed, straight)


def test_adam_state_has_stable_named_keys(tmp_path: Path) -> None:
    optimizer = adamjax.adam(1e-3)
    file = tmp_path / "adam.npz"
    adamjax.save_checkpoint(file, {"params": PARAMS, "opt_state": optimizer.init(PARAMS)})
    with zipfile.ZipFile(file) as archive:
        names = sorted(n.removesuffix(".npy") for n in archive.namelist())
    assert names == sorted(
        [
            "__adamjax_dtypes__",
            "['opt_state'][0].count",
            "['opt_state'][0].mu['dense']['b']",
            "['opt_state'][0].mu['dense']['w']",
            "['opt_state'][0].mu['scale']",
            "['opt_state'][0].nu['dense']['b']",
            "['opt_state'][0].nu['dense']['w']",
            "['opt_state'][0].nu['scale']",
            "['params']['dense']['b']",
            "['params']['dense']['w']",
            "['params']['scale']",
        ]
    )
    with np.load(file) as data:
        assert data["['opt_state'][0].count"].dtype == np.int32


@pytest.mark.parametrize(
    "dtype", [jnp.bfloat16, jnp.float16, jnp.float64, jnp.complex64, jnp.int8, jnp.bool_]
)
def test_every_dtype_round_trips_bit_for_bit(dtype: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5,)) * 100
    if jnp.issubdtype(dtype, jnp.complexfloating):
        values = values + 1j * rng.normal(size=(5,))
    array = jnp.asarray(values).astype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        array = array.at[0].set(jnp.nan).at[1].set(-jnp.inf).at[2].set(-0.0)
    file = tmp_path / "x.npz"
    adamjax.save_checkpoint(file, {"x": array})
    restored = adamjax.restore_checkpoint(file, {"x": jax.ShapeDtypeStruct((5,), dtype)})
    assert restored["x"].dtype == dtype
    assert np.asarray(restored["x"]).tobytes() == np.asarray(array).tobytes()


def test_keys_with_unusual_characters(tmp_path: Path) -> None:
    tree = {"a/b": jnp.ones(2, F32), "c.d": [jnp.zeros(1, F32)], "e'f": (jnp.ones((), F32),)}
    file = tmp_path / "odd.npz"
    adamjax.save_checkpoint(file, tree)
    _assert_bits_equal(adamjax.restore_checkpoint(file, tree), tree)


def test_empty_states_and_none_leaves_take_no_entry(tmp_path: Path) -> None:
    optimizer = adamjax.rmsprop(0.01)  # its moments state has mu=None
    state = optimizer.init(PARAMS)
    file = tmp_path / "rmsprop.npz"
    adamjax.save_checkpoint(file, state)
    restored = adamjax.restore_checkpoint(file, state)
    assert restored[0].mu is None
    _assert_bits_equal(restored, state)


# --- atomic saves: killed, failing and concurrent savers, in real processes -----------------

ROOT = Path(__file__).resolve().parent.parent
ANSWER_TIMEOUT = 120.0  # seconds: a bound on a hung helper process, not a performance claim
KILL_RUNS = int(os.environ.get("ADAMJAX_CHECKPOINT_KILL_RUNS", "40"))  # more: a longer search
CHECKPOINT = "checkpoint.npz"
TEMPORARY = re.compile(r"\.checkpoint\.npz\.[0-9a-f]{16}\.tmp")


class _Forker:
    """The test's side of tests/checkpoint_worker.py: a process that forks saving children."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.checkpoint_worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._answer() == {"ready": True}

    def _answer(self) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        if not select.select([stdout], [], [], ANSWER_TIMEOUT)[0]:
            pytest.fail(f"tests/checkpoint_worker.py gave no answer in {ANSWER_TIMEOUT} s")
        line = stdout.readline()
        if not line:
            pytest.fail(f"tests/checkpoint_worker.py exited with {self.process.wait()}")
        return json.loads(line)

    def ask(self, *command: Any) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps([str(word) if isinstance(word, Path) else word for word in command]))
        stdin.write("\n")
        stdin.flush()
        return self._answer()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=ANSWER_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture(scope="module")
def forker() -> Iterator[_Forker]:
    forker = _Forker()
    yield forker
    forker.close()


@functools.lru_cache(maxsize=4)
def _tree(seed: int) -> Any:
    return checkpoint_tree(seed)


def _target() -> Any:
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), _tree(0))


def _seed_held(path: Path, seeds: tuple[int, ...]) -> int | None:
    """Which of the trees ``checkpoint_tree(seed)`` the file restores to, bit for bit."""
    restored = jax.tree.leaves(adamjax.restore_checkpoint(path, _target()))
    for seed in seeds:
        expected = jax.tree.leaves(_tree(seed))
        if all(
            np.asarray(r).dtype == e.dtype and np.asarray(r).tobytes() == e.tobytes()
            for r, e in zip(restored, expected, strict=True)
        ):
            return seed
    return None


def _temporary_files(directory: Path) -> list[str]:
    """The files beside the checkpoint, after checking each is a save's temporary file."""
    others = sorted(name for name in os.listdir(directory) if name != CHECKPOINT)
    assert all(TEMPORARY.fullmatch(name) for name in others), others
    return others


@pytest.mark.slow  # processes killed and racing: run with `pytest -m slow`
def test_a_killed_save_leaves_the_previous_or_the_new_checkpoint(
    forker: _Forker, tmp_path: Path
) -> None:
    """SIGKILL a process saving 6 MiB at random moments: the file is always whole.

    Each run saves a tree that differs from the one on disk, and is killed after a random delay
    between 0 and 1.2 times the length of a save left to finish. Whatever the moment, the path
    must restore, bit for bit, to the tree it held before the run or to the new one.
    """
    path = tmp_path / CHECKPOINT
    adamjax.save_checkpoint(path, _tree(0))
    whole = forker.ask("wait", forker.ask("save", path, 1)["pid"])
    assert (whole["signal"], whole["code"]) == (None, 0)
    assert _seed_held(path, (1,)) == 1
    duration, on_disk = whole["seconds"], 1
    rng = random.Random(0)
    outcomes: collections.Counter[str] = collections.Counter()
    leftovers = 0
    for run in range(KILL_RUNS):
        seed = run + 2
        pid = forker.ask("save", path, seed)["pid"]
        delay = rng.uniform(0.0, 1.2 * duration)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        end = forker.ask("wait", pid)
        killed = end["signal"] == signal.SIGKILL
        assert killed or end["code"] == 0, end
        held = _seed_held(path, (on_disk, seed))
        assert held is not None, f"run {run}: killed after {delay:.4f} s, the file holds neither"
        assert killed or held == seed, f"run {run}: a save that finished left the old tree"
        ending = "killed" if killed else "finished"
        outcomes[f"{ending}, {'new' if held == seed else 'previous'}"] += 1
        on_disk = held
        for name in _temporary_files(tmp_path):
            leftovers += 1
            os.remove(tmp_path / name)
    print(f"{KILL_RUNS} runs, save {duration * 1e3:.1f} ms: {dict(outcomes)}, {leftovers} temp")
    assert outcomes["killed, previous"] > 0, "no save was killed before it finished"
    assert outcomes["killed, new"] + outcomes["finished, new"] > 0, "no save took effect"


@pytest.mark.slow  # processes killed and racing: run with `pytest -m slow`
def test_a_save_over_the_file_size_limit_raises_and_keeps_the_previous_checkpoint(
    forker: _Forker, tmp_path: Path
) -> None:
    """A child with RLIMIT_FSIZE below the checkpoint size: OSError, old file intact, no debris."""
    path = tmp_path / CHECKPOINT
    adamjax.save_checkpoint(path, _tree(0))
    limit = path.stat().st_size // 4
    end = forker.ask("wait", forker.ask("save-limited", path, 1, limit)["pid"])
    assert (end["signal"], end["code"]) == (None, 0), end
    assert end["report"] == {"raised": "OSError", "errno": errno.EFBIG}
    assert _seed_held(path, (0,)) == 0
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT]


@pytest.mark.slow  # processes killed and racing: run with `pytest -m slow`
def test_concurrent_saves_to_one_path_leave_one_complete_checkpoint(
    forker: _Forker, tmp_path: Path
) -> None:
    """Two processes save different trees to one path 20 times each while this one restores it.

    Every restore, during and after, must give one of the two trees whole. The saves' time
    intervals are checked to overlap, so the two processes did write at the same time.
    """
    path = tmp_path / CHECKPOINT
    adamjax.save_checkpoint(path, _tree(1))
    pids = [forker.ask("save-loop", path, seed, 20)["pid"] for seed in (1, 2)]
    ends: dict[int, dict[str, Any]] = {}
    seen: collections.Counter[int | None] = collections.Counter()
    while len(ends) < len(pids):
        seen[_seed_held(path, (1, 2))] += 1
        for pid in pids:
            if pid not in ends and not (answer := forker.ask("poll", pid)).get("running"):
                ends[pid] = answer
    seen[_seed_held(path, (1, 2))] += 1
    assert None not in seen, seen
    for end in ends.values():
        assert (end["signal"], end["code"]) == (None, 0), end
    first, second = (ends[pid]["report"]["intervals"] for pid in pids)
    assert any(a0 < b1 and b0 < a1 for a0, a1 in first for b0, b1 in second)
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT]


def test_a_symbolic_link_is_kept_and_its_file_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    adamjax.save_checkpoint(real, {"x": np.zeros(3, np.float32)})
    link.symlink_to(real)
    adamjax.save_checkpoint(link, {"x": np.ones(3, np.float32)})
    assert link.is_symlink()
    assert link.resolve() == real.resolve()
    restored = adamjax.restore_checkpoint(real, {"x": jax.ShapeDtypeStruct((3,), np.float32)})
    np.testing.assert_array_equal(restored["x"], np.ones(3, np.float32))
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real.npz"]


def test_permissions_of_a_new_and_of_an_existing_file(tmp_path: Path) -> None:
    """A new checkpoint gets the mode ``open()`` gives a new file; a replaced one keeps its mode."""
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    path = tmp_path / CHECKPOINT
    adamjax.save_checkpoint(path, {"x": np.zeros(3, np.float32)})
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    path.chmod(0o640)
    adamjax.save_checkpoint(path, {"x": np.ones(3, np.float32)})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_tree_that_cannot_be_saved_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT
    adamjax.save_checkpoint(path, {"x": np.zeros(3, np.float32)})
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"^tree\['name'\] is not an array: 'adam'$"):
        adamjax.save_checkpoint(path, {"x": np.ones(3, np.float32), "name": "adam"})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT]


def test_a_save_into_a_missing_directory_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        adamjax.save_checkpoint(tmp_path / "missing" / CHECKPOINT, {"x": np.zeros(1)})
    assert os.listdir(tmp_path) == []


# --- restore time grows linearly with the number of leaves ----------------------------------


def _best_restore_time(directory: Path, leaves: int) -> float:
    tree = {f"leaf{i:05d}": np.full(2, i, np.float32) for i in range(leaves)}
    path = directory / f"{leaves}.npz"
    adamjax.save_checkpoint(path, tree)
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)
    times, restored = [], {}
    for _ in range(3):
        start = time.process_time()  # this process's CPU time: other load barely moves it
        restored = adamjax.restore_checkpoint(path, target)
        times.append(time.process_time() - start)
    assert int(restored[f"leaf{leaves - 1:05d}"][1]) == leaves - 1
    return min(times)


@pytest.mark.slow  # restores 27,000 leaves in all
def test_restore_time_grows_linearly_with_the_number_of_leaves(tmp_path: Path) -> None:
    """Restoring 8x as many leaves must take less than 24x as long (linear ~8x, quadratic ~64x).

    This compares how the time grows with the number of leaves, not how fast a restore is: the
    two sizes (1,000 and 8,000 leaves) run one after the other in the same process, each the
    best of three repeats of its CPU time, so that the gap between linear and quadratic growth
    is far wider than the noise of a loaded machine.
    """
    small = _best_restore_time(tmp_path, 1_000)
    large = _best_restore_time(tmp_path, 8_000)
    assert large / small < 24.0, f"1,000 leaves: {small:.3f} s, 8,000 leaves: {large:.3f} s"


# --- files that are not checkpoints: the error names the file and what is wrong -------------

ONE = {"w": jax.ShapeDtypeStruct((3,), np.float32)}


def test_restore_of_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "never_saved.npz"
    with pytest.raises(FileNotFoundError) as info:
        adamjax.restore_checkpoint(path, ONE)
    assert info.value.errno == errno.ENOENT
    assert str(path) in str(info.value)


def test_restore_of_an_empty_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"is empty \(0 bytes\)") as info:
        adamjax.restore_checkpoint(path, ONE)
    assert str(path) in str(info.value)


def test_restore_of_an_npy_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"holds a single array in \.npy format") as info:
        adamjax.restore_checkpoint(path, ONE)
    assert str(path) in str(info.value)


def _write_zip(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


FOREIGN: dict[str, Callable[[Path], object]] = {
    "text file": lambda p: p.write_text("step 1000\n"),
    "numpy.savez archive": lambda p: np.savez(p, w=np.ones(3, np.float32)),
    "zip of a text file": lambda p: _write_zip(p, {"notes.txt": b"hello"}),
    "dtypes entry that is not JSON": lambda p: np.savez(
        p, w=np.ones(3, np.float32), __adamjax_dtypes__=np.asarray("{not json")
    ),
    "dtypes entry without w": lambda p: _write_zip(
        p,
        {
            "['w'].npy": _npy_bytes(np.ones(3, np.float32)),
            "__adamjax_dtypes__.npy": _npy_bytes(np.asarray("{}")),
        },
    ),
    "object array": lambda p: _write_zip(
        p,
        {
            "['w'].npy": _npy_bytes(np.asarray([None, 1, 2], dtype=object)),
            "__adamjax_dtypes__.npy": _npy_bytes(np.asarray('{"[\'w\']": "float32"}')),
        },
    ),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_restore_of_a_file_not_written_by_save_checkpoint_names_it(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.npz"
    FOREIGN[kind](path)
    with pytest.raises(ValueError, match=r"is not a checkpoint written by save_checkpoint") as info:
        adamjax.restore_checkpoint(path, ONE)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kept", [4, 100, 0.5, 0.9, -22, -1])
def test_restore_of_a_truncated_file_names_it(kept: float, tmp_path: Path) -> None:
    """Cut a checkpoint short (bytes kept: a count, a fraction, or all but so many)."""
    whole = tmp_path / CHECKPOINT
    adamjax.save_checkpoint(whole, {"w": np.arange(300, dtype=np.float32)})
    data = whole.read_bytes()
    size = int(kept * len(data)) if isinstance(kept, float) else kept % len(data)
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[:size])
    with pytest.raises(ValueError, match=r"is truncated or damaged") as info:
        adamjax.restore_checkpoint(path, {"w": jax.ShapeDtypeStruct((300,), np.float32)})
    assert str(path) in str(info.value)


def test_restore_of_a_file_with_a_flipped_bit_names_it(tmp_path: Path) -> None:
    """A bit flipped inside an array's data: the zip CRC catches it."""
    path = tmp_path / CHECKPOINT
    values = np.arange(300, dtype=np.float32)
    adamjax.save_checkpoint(path, {"w": values})
    data = bytearray(path.read_bytes())
    offset = bytes(data).index(values[100:104].tobytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"is damaged .*Bad CRC-32") as info:
        adamjax.restore_checkpoint(path, {"w": jax.ShapeDtypeStruct((300,), np.float32)})
    assert str(path) in str(info.value)
