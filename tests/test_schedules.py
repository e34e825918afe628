"""Schedules: optax's arguments and values, the enabled precision, and the run-time check.

Every schedule is compared, at every count in 0..N, with its optax namesake and with a float64
NumPy formula written here. The formulas are optax's, written where they would cancel in forms
that do not: (a - b)(1 - f) + b as a(1 - f) + b f, and (1 + cos(pi f)) / 2 as
sin(pi (1 - f) / 2)**2, with 1 - f taken as (K - d) / K from whole numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import adamjax
from adamjax import schedules
from tests.typed import unchecked

N = 60
COUNTS = np.arange(N + 1)


# ----------------------------------------------------------------------------------------------
# Float64 NumPy formulas


def np_constant(k: np.ndarray, value: float) -> np.ndarray:
    return np.full(k.shape, float(value))


def np_linear(k: np.ndarray, init: float, end: float, steps: int, begin: int = 0) -> np.ndarray:
    if steps <= 0:
        return np.full(k.shape, float(init))
    done = np.clip(k.astype(np.float64) - begin, 0.0, float(steps))
    return init * ((steps - done) / steps) + end * (done / steps)


def np_cosine(
    k: np.ndarray, init: float, steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> np.ndarray:
    done = np.clip(k.astype(np.float64), 0.0, float(steps))
    cosine = np.sin(np.pi / 2 * ((steps - done) / steps)) ** 2
    return init * ((1.0 - alpha) * cosine**exponent + alpha)


def np_warmup_cosine(
    k: np.ndarray,
    init: float,
    peak: float,
    warmup: int,
    decay: int,
    end: float = 0.0,
    exponent: float = 1.0,
) -> np.ndarray:
    alpha = 0.0 if peak == 0.0 else end / peak
    warm = np_linear(k, init, peak, warmup)
    decayed = np_cosine(k - warmup, peak, decay - warmup, alpha, exponent)
    return np.where(k < warmup, warm, decayed)


def np_exponential(
    k: np.ndarray,
    init: float,
    steps: int,
    rate: float,
    begin: int = 0,
    staircase: bool = False,
    end: float | None = None,
) -> np.ndarray:
    if steps <= 0 or rate == 0.0:
        return np.full(k.shape, float(init))
    since = k.astype(np.float64) - begin
    power = np.floor(since / steps) if staircase else since / steps
    with np.errstate(invalid="ignore"):
        value = np.where(since <= 0, init, init * np.power(float(rate), power))
    if end is not None:
        value = np.maximum(value, end) if rate < 1.0 else np.minimum(value, end)
    return value


def np_inverse_sqrt(k: np.ndarray, init: float) -> np.ndarray:
    return init / np.sqrt(k.astype(np.float64) + 1.0)


# ----------------------------------------------------------------------------------------------
# The grid: (adamjax schedule, optax schedule or None, NumPy formula), with the same arguments


def _case(
    ours: Callable[..., Any], theirs: Callable[..., Any] | None, formula: Callable[..., Any]
) -> Callable[..., Any]:
    def make(*args: Any) -> Any:
        return pytest.param(ours, theirs, formula, args, id=f"{ours.__name__}{args}")

    return make


_constant = _case(schedules.constant, optax.constant_schedule, np_constant)
_linear = _case(schedules.linear, optax.linear_schedule, np_linear)
_cosine = _case(schedules.cosine_decay, optax.cosine_decay_schedule, np_cosine)
_warmup = _case(schedules.warmup_cosine_decay, optax.warmup_cosine_decay_schedule, np_warmup_cosine)
_exponential = _case(schedules.exponential_decay, optax.exponential_decay, np_exponential)
_inverse_sqrt = _case(schedules.inverse_sqrt, None, np_inverse_sqrt)

GRID = [
    _constant(0.1),
    _constant(0.0),
    _constant(3),
    _constant(np.int64(2)),
    _constant(np.float32(0.25)),
    _linear(0.1, 0.01, 20),
    _linear(0.01, 0.1, 20),  # rising
    _linear(0.1, 0.01, 20, 5),
    _linear(0.0, 1.0, 7, 3),
    _linear(1.0, 0.0, 1),
    _linear(0.3, 0.3, 10),
    _linear(0.5, 0.0, 100, 10),  # still moving at N
    _linear(0.1, 0.01, 0),  # no transition: init_value throughout (optax's rule)
    _linear(0.1, 0.01, 0, 7),
    _linear(0.1, 0.01, np.int64(20), np.int32(5)),
    _cosine(0.1, 20),
    _cosine(0.1, 20, 0.1),
    _cosine(0.1, 20, 2.0),  # alpha > 1: rises to alpha * init_value
    _cosine(0.1, 20, 0.1, 2.0),
    _cosine(0.1, 20, 0.0, 0.5),
    _cosine(0.1, 20, 0.1, 0.0),  # exponent 0: init_value throughout
    _cosine(0.1, 1),
    _cosine(1.0, np.int64(7)),
    _cosine(0.1, 100),
    _cosine(0.0, 10, 0.5),
    _warmup(0.0, 0.1, 5, 25, 0.01),
    _warmup(0.0, 0.1, 0, 25),  # no warm-up: starts at the peak
    _warmup(0.05, 0.1, 0, 1, 0.02),
    _warmup(0.05, 0.1, 5, 6),
    _warmup(0.0, 0.0, 5, 25, 0.01),  # peak 0: end_value has no effect (optax's rule)
    _warmup(0.2, 0.1, 5, 25, 0.05),  # warm-up going down
    _warmup(0.0, 0.1, 5, 25, 0.2),  # end above the peak
    _warmup(0.0, 0.1, 5, 25, 0.0, 2.0),
    _warmup(0.0, 0.1, 10, 100, 0.001),  # still decaying at N
    _warmup(0.0, 0.1, np.int64(5), np.int32(25), 0.01),
    _exponential(0.1, 10, 0.5),
    _exponential(0.1, 10, 0.5, 0, True),
    _exponential(0.1, 10, 0.5, 5),
    _exponential(0.1, 10, 0.5, 5, True),
    _exponential(0.1, 3, 0.5, 0, False, 0.02),  # floored at end_value
    _exponential(0.1, 3, 0.5, 2, True, 0.02),
    _exponential(0.01, 5, 2.0, 0, False, 0.05),  # growing, capped at end_value
    _exponential(0.01, 5, 1.5),
    _exponential(0.1, 10, 1.0, 0, False, 0.05),  # rate 1: capped at end_value
    _exponential(0.1, 0, 0.5),  # no transition: init_value throughout (optax's rule)
    _exponential(0.1, 10, 0.0),  # rate 0: init_value throughout (optax's rule)
    _exponential(0.1, 10, 0.0, 0, False, 0.05),
    _exponential(0.1, 1, 0.9),
    _exponential(0.1, np.int64(10), np.float64(0.5), np.int32(5)),
    _inverse_sqrt(0.1),
    _inverse_sqrt(0.0),
    _inverse_sqrt(np.int64(2)),
]


def _theirs(theirs: Callable[..., Any], args: tuple, counts: Any) -> np.ndarray:
    """optax's values at ``counts`` (int64), in float64 and JAX's standard promotion."""
    with jax.numpy_dtype_promotion("standard"):
        value = np.asarray(theirs(*args)(counts), dtype=np.float64)
    return np.broadcast_to(value, counts.shape)


def _ours(schedule: Any, counts: Any) -> np.ndarray:
    value = schedule(counts)
    assert value.dtype == jnp.float64
    return np.broadcast_to(np.asarray(value), counts.shape)


def _array(value: Any) -> jax.Array:
    """A schedule's value, checked to be a JAX array (schedules are annotated as ArrayLike)."""
    assert isinstance(value, jax.Array)
    return value


def _formula(formula: Callable[..., Any], args: tuple) -> np.ndarray:
    return formula(COUNTS, *[a.item() if isinstance(a, np.generic) else a for a in args])


@pytest.mark.parametrize(("ours", "theirs", "formula", "args"), GRID)
def test_values_match_the_float64_formula(ours, theirs, formula, args) -> None:
    schedule = ours(*args)
    expected = _formula(formula, args)
    # one count at a time, as an optimizer calls it: the formula's values to the last bit
    one_by_one = np.array([schedule(jnp.int32(k)) for k in COUNTS])
    assert one_by_one.dtype == np.float64
    np.testing.assert_array_equal(one_by_one, expected)
    assert float(schedule(N)) == expected[N]  # a Python int count
    # all counts at once, and jitted: XLA multiplies by the reciprocal of a step count where it
    # is a constant or a broadcast scalar, which can move the last bit of a division
    counts = jnp.asarray(COUNTS, jnp.int32)
    at_once = _ours(schedule, counts)
    np.testing.assert_allclose(at_once, expected, rtol=1e-15, atol=0)
    jitted = jax.jit(schedule)
    one_by_one_jitted = np.array([jitted(jnp.int32(k)) for k in COUNTS])
    assert one_by_one_jitted.dtype == np.float64
    np.testing.assert_allclose(one_by_one_jitted, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize(("ours", "theirs", "formula", "args"), [p for p in GRID if p.values[1]])
def test_values_match_optax(ours, theirs, formula, args) -> None:
    counts = jnp.asarray(COUNTS, jnp.int32)
    optax_values = _theirs(theirs, args, jnp.asarray(COUNTS, jnp.int64))
    np.testing.assert_allclose(_ours(ours(*args), counts), optax_values, rtol=1e-12, atol=0)
    with jax.numpy_dtype_promotion("standard"):
        optax_jitted = jax.jit(theirs(*args))(jnp.asarray(COUNTS, jnp.int64))
    optax_jitted = np.broadcast_to(np.asarray(optax_jitted, np.float64), COUNTS.shape)
    jitted = np.broadcast_to(np.asarray(jax.jit(ours(*args))(counts)), COUNTS.shape)
    np.testing.assert_allclose(jitted, optax_jitted, rtol=1e-12, atol=0)


def test_held_values_are_exact_like_optax() -> None:
    counts = jnp.arange(N + 1, dtype=jnp.int64)
    cases = [
        # (ours, optax's, counts at which the value is held, the held value)
        (
            schedules.constant(0.1),
            optax.constant_schedule(0.1),
            np.arange(N + 1),
            0.1,
        ),
        (
            schedules.linear(0.3, 0.07, 20, 5),
            optax.linear_schedule(0.3, 0.07, 20, 5),
            np.arange(25, N + 1),
            0.07,
        ),
        (
            schedules.linear(0.3, 0.07, 0),
            optax.linear_schedule(0.3, 0.07, 0),
            np.arange(N + 1),
            0.3,
        ),
        (
            schedules.cosine_decay(0.3, 20, 0.1),
            optax.cosine_decay_schedule(0.3, 20, 0.1),
            np.arange(20, N + 1),
            0.3 * 0.1,
        ),
        (
            schedules.exponential_decay(0.3, 4, 0.5, 10, False, 0.05),
            optax.exponential_decay(0.3, 4, 0.5, 10, False, 0.05),
            np.concatenate([np.arange(11), np.arange(25, N + 1)]),
            None,  # 0.3 up to the start, 0.05 from the floor on
        ),
        (
            schedules.exponential_decay(0.3, 4, 0.0, 10),
            optax.exponential_decay(0.3, 4, 0.0, 10),
            np.arange(N + 1),
            0.3,
        ),
    ]
    for ours, theirs, held, value in cases:
        got = _ours(ours, counts)
        expected = _theirs(lambda theirs=theirs: theirs, (), counts)
        np.testing.assert_array_equal(got[held], expected[held])
        if value is not None:
            assert np.all(got[held] == value)
    floored = _ours(schedules.exponential_decay(0.3, 4, 0.5, 10, False, 0.05), counts)
    assert np.all(floored[:11] == 0.3) and np.all(floored[25:] == 0.05)


# ----------------------------------------------------------------------------------------------
# Precision


def test_values_follow_the_enabled_precision() -> None:
    made = [
        schedules.constant(0.1),
        schedules.linear(0.1, 0.01, 20),
        schedules.cosine_decay(0.1, 20, 0.1),
        schedules.warmup_cosine_decay(0.0, 0.1, 5, 25, 0.01),
        schedules.exponential_decay(0.1, 10, 0.5),
        schedules.inverse_sqrt(0.1),
    ]
    counts = jnp.arange(N + 1, dtype=jnp.int32)
    wide = [np.asarray(s(counts)) for s in made]
    assert all(w.dtype == np.float64 for w in wide)
    with jax.enable_x64(False):
        narrow = [_array(s(jnp.arange(N + 1, dtype=jnp.int32))) for s in made]
        also_jitted = [_array(jax.jit(s)(jnp.arange(N + 1, dtype=jnp.int32))) for s in made]
    assert all(v.dtype == jnp.float32 for v in narrow + also_jitted)
    for w, n in zip(wide, narrow, strict=True):
        np.testing.assert_allclose(np.asarray(n, np.float64), w, rtol=2e-6)
    # the float64 values are not float32 values widened
    assert not np.array_equal(np.asarray(narrow[1], np.float64), wide[1])


def test_float32_hyperparameters_compute_in_float64_under_x64() -> None:
    schedule = schedules.linear(jnp.float32(0.1), np.float32(0.01), 20)
    got = _array(schedule(jnp.arange(N + 1, dtype=jnp.int32)))
    assert got.dtype == jnp.float64
    expected = np_linear(COUNTS, float(np.float32(0.1)), float(np.float32(0.01)), 20)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------------------------
# Traced values


def test_schedules_built_inside_jit_match_concrete_ones() -> None:
    counts = jnp.arange(N + 1, dtype=jnp.int32)

    @jax.jit
    def traced(init, peak, end, rate, alpha, exponent):
        return jnp.stack(
            [
                schedules.constant(init)(counts) * jnp.ones(N + 1),
                schedules.linear(init, end, 20, 3)(counts),
                schedules.cosine_decay(init, 20, alpha, exponent)(counts),
                schedules.warmup_cosine_decay(init, peak, 5, 25, end, exponent)(counts),
                schedules.exponential_decay(init, 7, rate, 2, False, end)(counts),
                schedules.inverse_sqrt(init)(counts),
            ]
        )

    args = (0.05, 0.1, 0.01, 0.5, 0.2, 1.5)
    got = np.asarray(traced(*args))
    init, peak, end, rate, alpha, exponent = args
    expected = [
        np_constant(COUNTS, init),
        np_linear(COUNTS, init, end, 20, 3),
        np_cosine(COUNTS, init, 20, alpha, exponent),
        np_warmup_cosine(COUNTS, init, peak, 5, 25, end, exponent),
        np_exponential(COUNTS, init, 7, rate, 2, False, end),
        np_inverse_sqrt(COUNTS, init),
    ]
    for row, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(row, want, rtol=1e-15, atol=0)


def test_traced_edge_values_keep_optax_meaning() -> None:
    # optax decides these with Python comparisons; with tracers adamjax decides them per call
    counts = jnp.arange(N + 1, dtype=jnp.int32)
    zero_rate = jax.jit(lambda r: schedules.exponential_decay(0.3, 4, r, 0, False, 0.05)(counts))
    np.testing.assert_array_equal(zero_rate(0.0), np.full(N + 1, 0.3))
    zero_peak = jax.jit(lambda p: schedules.warmup_cosine_decay(0.2, p, 5, 25, 0.01)(counts))
    expected = np_warmup_cosine(COUNTS, 0.2, 0.0, 5, 25, 0.01)
    np.testing.assert_allclose(zero_peak(0.0), expected, rtol=1e-15, atol=0)
    assert np.all(expected[5:] == 0.0)  # end_value has no effect when the peak is 0


def test_vmap_over_peak_values() -> None:
    peaks = jnp.asarray([0.1, 0.2, 0.4])
    counts = jnp.arange(N + 1, dtype=jnp.int32)
    got = jax.vmap(lambda p: schedules.warmup_cosine_decay(0.0, p, 5, 25, 0.01)(counts))(peaks)
    for row, peak in zip(np.asarray(got), [0.1, 0.2, 0.4], strict=True):
        expected = np_warmup_cosine(COUNTS, 0.0, peak, 5, 25, 0.01)
        np.testing.assert_allclose(row, expected, rtol=1e-15, atol=0)


def test_inverse_sqrt_is_the_papers_decay() -> None:
    schedule = schedules.inverse_sqrt(0.1)
    got = [float(np.asarray(schedule(jnp.asarray(k, jnp.int32)))) for k in range(5)]
    np.testing.assert_allclose(got, [0.1 / np.sqrt(t) for t in range(1, 6)], rtol=1e-15)


# ----------------------------------------------------------------------------------------------
# What adamjax refuses, and what optax does with the same arguments


def _optax_value(schedule: Any, count: int) -> float:
    with jax.numpy_dtype_promotion("standard"):
        return float(schedule(jnp.asarray(count, jnp.int64)))


REFUSED = {
    "linear-negative-steps": (
        lambda: schedules.linear(0.1, 0.01, -3),
        r"^transition_steps must be >= 0, got -3 \(optax.linear_schedule would hold init_value "
        r"at every step\)$",
        lambda: _optax_value(optax.linear_schedule(0.1, 0.01, -3), 50) == 0.1,
    ),
    "linear-negative-begin": (
        lambda: schedules.linear(0.1, 0.01, 10, -4),
        r"^transition_begin must be >= 0, got -4 \(optax.linear_schedule would start at step 0",
        lambda: _optax_value(optax.linear_schedule(0.1, 0.0, 10, -4), 5) == 0.05,
    ),
    "linear-negative-end": (
        lambda: schedules.linear(0.1, -0.01, 10),
        r"^end_value must be >= 0.0, got -0.01: a schedule's values are learning rates, which "
        r"must be finite and >= 0 \(optax.linear_schedule accepts it\)$",
        lambda: _optax_value(optax.linear_schedule(0.1, -0.01, 10), 10) == -0.01,
    ),
    "linear-float-steps": (
        lambda: schedules.linear(0.1, 0.0, unchecked(10.0)),
        r"^transition_steps must be an int \(Python or NumPy\), got 10.0 "
        r"\(optax.linear_schedule would use it as given\)$",
        lambda: _optax_value(optax.linear_schedule(0.1, 0.0, unchecked(10.0)), 5) == 0.05,
    ),
    "linear-bool-steps": (
        lambda: schedules.linear(0.1, 0.0, True),
        r"^transition_steps must be an int, got the bool True \(optax.linear_schedule would "
        r"read it as 1\)$",
        lambda: _optax_value(optax.linear_schedule(0.1, 0.0, True), 1) == 0.0,
    ),
    "linear-numpy-bool-begin": (
        lambda: schedules.linear(0.1, 0.0, 4, unchecked(np.bool_(True))),
        r"^transition_begin must be an int, got the bool",
        lambda: (
            _optax_value(optax.linear_schedule(0.1, 0.0, 4, unchecked(np.bool_(True))), 1) == 0.1
        ),
    ),
    "constant-negative": (
        lambda: schedules.constant(-0.1),
        r"^value must be >= 0.0, got -0.1: .* \(optax.constant_schedule accepts it\)$",
        lambda: optax.constant_schedule(-0.1)(0) == -0.1,
    ),
    "constant-bool": (
        lambda: schedules.constant(True),
        r"^value must be a number or an array, got the bool True "
        r"\(optax.constant_schedule would read it as 1\)$",
        lambda: optax.constant_schedule(True)(0) == 1,
    ),
    "constant-nan": (
        lambda: schedules.constant(float("nan")),
        r"^value must be >= 0.0, got nan",
        lambda: np.isnan(optax.constant_schedule(float("nan"))(0)),
    ),
    "constant-inf": (
        lambda: schedules.constant(float("inf")),
        r"^value must be finite, got inf",
        lambda: optax.constant_schedule(float("inf"))(0) == float("inf"),
    ),
    "cosine-zero-steps": (
        lambda: schedules.cosine_decay(0.1, 0),
        r"^decay_steps must be a positive int, got 0 \(optax.cosine_decay_schedule raises too\)$",
        None,
    ),
    "cosine-negative-alpha": (
        lambda: schedules.cosine_decay(0.1, 10, -0.5),
        r"^alpha must be >= 0.0, got -0.5: .* \(optax.cosine_decay_schedule accepts it and ends "
        r"at alpha \* init_value\)$",
        lambda: np.isclose(_optax_value(optax.cosine_decay_schedule(0.1, 10, -0.5), 10), -0.05),
    ),
    "cosine-negative-exponent": (
        lambda: schedules.cosine_decay(0.1, 10, 0.0, -1.0),
        r"^exponent must be >= 0.0, got -1.0: .* reaches inf at decay_steps\)$",
        lambda: _optax_value(optax.cosine_decay_schedule(0.1, 10, 0.0, -1.0), 10) == np.inf,
    ),
    "warmup-not-shorter-than-decay": (
        lambda: schedules.warmup_cosine_decay(0.0, 0.1, 100, 50),
        r"^decay_steps \(50\) must be greater than warmup_steps \(100\) "
        r"\(optax.warmup_cosine_decay_schedule raises too",
        None,
    ),
    "warmup-equal-to-decay": (
        lambda: schedules.warmup_cosine_decay(0.0, 0.1, 0, 0),
        r"^decay_steps \(0\) must be greater than warmup_steps \(0\)",
        None,
    ),
    "warmup-negative": (
        lambda: schedules.warmup_cosine_decay(0.0, 0.1, -5, 20),
        r"^warmup_steps must be >= 0, got -5 \(optax.warmup_cosine_decay_schedule would start "
        r"the cosine decay at step -5\)$",
        lambda: np.isclose(
            _optax_value(optax.warmup_cosine_decay_schedule(0.0, 0.1, -5, 20), 0),
            np_cosine(np.asarray([5]), 0.1, 25)[0],
        ),
    ),
    "warmup-negative-end": (
        lambda: schedules.warmup_cosine_decay(0.0, 0.1, 5, 20, -0.1),
        r"^end_value must be >= 0.0, got -0.1",
        lambda: np.isclose(
            _optax_value(optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 20, -0.1), 20), -0.1
        ),
    ),
    "exponential-negative-rate": (
        lambda: schedules.exponential_decay(0.1, 2, -0.5),
        r"^decay_rate must be >= 0.0, got -0.5: .* \(optax.exponential_decay accepts it and "
        r"gives nan or negative values\)$",
        lambda: np.isnan(_optax_value(optax.exponential_decay(0.1, 2, -0.5), 1)),
    ),
    "exponential-negative-steps": (
        lambda: schedules.exponential_decay(0.1, -2, 0.5),
        r"^transition_steps must be >= 0, got -2 \(optax.exponential_decay would hold "
        r"init_value at every step\)$",
        lambda: _optax_value(optax.exponential_decay(0.1, -2, 0.5), 9) == 0.1,
    ),
    "exponential-negative-begin": (
        lambda: schedules.exponential_decay(0.1, 2, 0.5, -2),
        r"^transition_begin must be >= 0, got -2 \(optax.exponential_decay would start at "
        r"step 0\)$",
        lambda: _optax_value(optax.exponential_decay(0.1, 2, 0.5, -2), 2) == 0.05,
    ),
    "exponential-negative-end": (
        lambda: schedules.exponential_decay(0.1, 2, 2.0, 0, False, -1.0),
        r"^end_value must be >= 0.0, got -1.0",
        lambda: _optax_value(optax.exponential_decay(0.1, 2, 2.0, 0, False, -1.0), 3) == -1.0,
    ),
    "exponential-staircase-not-bool": (
        lambda: schedules.exponential_decay(0.1, 2, 0.5, 0, unchecked(1)),
        r"^staircase must be a bool, got 1 \(optax.exponential_decay would use its truth value\)$",
        lambda: _optax_value(optax.exponential_decay(0.1, 2, 0.5, 0, unchecked(1)), 3) == 0.05,
    ),
    "inverse-sqrt-negative": (
        lambda: schedules.inverse_sqrt(-1.0),
        r"^init_value must be >= 0.0, got -1.0: a schedule's values are learning rates, which "
        r"must be finite and >= 0$",
        None,
    ),
    "traced-steps": (
        lambda: jax.jit(lambda s: schedules.cosine_decay(0.1, s)(jnp.asarray(0)))(10),
        r"^decay_steps must be a concrete int, got a tracer",
        None,
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_arguments_say_what_optax_would_do(case: str) -> None:
    factory, message, optax_does = REFUSED[case]
    with pytest.raises(ValueError, match=message):
        factory()
    if optax_does is not None:
        assert optax_does(), "the message's claim about optax does not hold"


def test_optax_raises_where_adamjax_says_it_raises_too() -> None:
    with pytest.raises(ValueError):
        optax.cosine_decay_schedule(0.1, 0)
    with pytest.raises(ValueError):
        optax.warmup_cosine_decay_schedule(0.0, 0.1, 100, 50)
    with pytest.raises(ValueError):
        optax.warmup_cosine_decay_schedule(0.0, 0.1, 0, 0)


def test_numpy_integers_are_step_counts_and_values() -> None:
    for steps in (np.int8(20), np.int32(20), np.uint16(20), np.int64(20), jnp.asarray(20)):
        # the annotation says int; NumPy and JAX integers are accepted too, as in optax
        got = np.asarray(schedules.linear(np.int64(1), 0.0, unchecked(steps))(jnp.arange(N + 1)))
        np.testing.assert_allclose(got, np_linear(COUNTS, 1.0, 0.0, 20), rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------------------------
# checked: the run-time check under jit

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 5), "b": jnp.zeros(3)}


def _grads(step: int) -> dict:
    rng = np.random.default_rng(step)
    return {key: jnp.asarray(rng.normal(size=value.shape)) for key, value in PARAMS.items()}


def _train(schedule: Any, steps: int, *, check: bool) -> list[tuple[Any, str | None]]:
    """Params after each jitted Adam step, with the checkify error text of that step."""
    optimizer = adamjax.adam(schedule)

    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    params, state = PARAMS, optimizer.init(PARAMS)
    out = []
    if check:
        checked_step = jax.jit(checkify.checkify(step))
        for i in range(steps):
            error, (params, state) = checked_step(params, state, _grads(i))
            out.append((params, error.get()))
    else:
        plain_step = jax.jit(step)
        for i in range(steps):
            params, state = plain_step(params, state, _grads(i))
            out.append((params, None))
    return out


def test_checked_negative_schedule_fails_at_that_step() -> None:
    # optax accepts end_value < 0: this schedule is 0 at step 4 and -0.125 at step 5
    schedule = schedules.checked(optax.linear_schedule(0.5, -0.5, 8))
    history = _train(schedule, 8, check=True)
    assert [message is None for _, message in history] == [True] * 5 + [False] * 3
    assert history[5][1] is not None
    assert history[5][1].startswith("learning_rate schedule gave -0.125 at step 5;")
    optimizer = adamjax.adam(schedule)
    step = jax.jit(checkify.checkify(lambda p, s, g: optimizer.update(g, s, p)))
    state = optimizer.init(PARAMS)
    for i in range(5):
        error, (_, state) = step(PARAMS, state, _grads(i))
        error.throw()  # steps 0..4 raise nothing
    error, _ = step(PARAMS, state, _grads(5))
    with pytest.raises(checkify.JaxRuntimeError, match=r"gave -0.125 at step 5; it must be"):
        error.throw()


def test_checked_nan_schedule_fails_at_that_step() -> None:
    # optax accepts a negative decay rate: (-0.5) ** 0.5 is nan at step 5
    schedule = schedules.checked(optax.exponential_decay(0.1, 2, -0.5, 4), name="lr")
    history = _train(schedule, 7, check=True)
    assert [message is None for _, message in history] == [True] * 5 + [False] * 2
    assert history[5][1] is not None
    assert history[5][1].startswith("lr schedule gave nan at step 5; it must be finite and >= 0")


def test_checked_correct_schedule_runs_clean_and_changes_nothing() -> None:
    plain = schedules.warmup_cosine_decay(0.0, 0.1, 3, 20, 0.01)
    checked_run = _train(schedules.checked(plain), 25, check=True)
    plain_run = _train(plain, 25, check=False)
    assert all(message is None for _, message in checked_run)
    for (a, _), (b, _) in zip(checked_run, plain_run, strict=True):
        for key in PARAMS:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
    assert not np.array_equal(np.asarray(plain_run[-1][0]["w"]), np.asarray(PARAMS["w"]))


def test_checked_schedule_in_a_jitted_step_without_checkify_fails_to_trace() -> None:
    optimizer = adamjax.adam(schedules.checked(schedules.constant(0.1)))
    state = optimizer.init(PARAMS)
    step = jax.jit(lambda p, s, g: optimizer.update(g, s, p))
    with pytest.raises(ValueError, match=r"Cannot abstractly evaluate a checkify\.check which was"):
        step(PARAMS, state, _grads(0))


def test_checked_schedule_outside_jit_checks_at_once() -> None:
    good = schedules.warmup_cosine_decay(0.0, 0.1, 3, 20)
    optimizer = adamjax.adam(schedules.checked(good))
    reference = adamjax.adam(good)
    state, reference_state = optimizer.init(PARAMS), reference.init(PARAMS)
    for i in range(4):
        updates, state = optimizer.update(_grads(i), state, PARAMS)
        expected, reference_state = reference.update(_grads(i), reference_state, PARAMS)
        for key in PARAMS:
            np.testing.assert_array_equal(np.asarray(updates[key]), np.asarray(expected[key]))
    bad = adamjax.adam(schedules.checked(optax.linear_schedule(0.5, -0.5, 8)))
    state = bad.init(PARAMS)
    for i in range(5):
        _, state = bad.update(_grads(i), state, PARAMS)
    with pytest.raises(checkify.JaxRuntimeError, match=r"gave -0\.125 at step 5"):
        bad.update(_grads(5), state, PARAMS)


def test_unchecked_schedule_under_jit_is_not_checked() -> None:
    # the reason for checked: under jit nothing looks at the value
    history = _train(optax.linear_schedule(0.5, -0.5, 8), 8, check=False)
    assert all(np.all(np.isfinite(np.asarray(p["w"]))) for p, _ in history)
    # and outside jit, scale_by_learning_rate checks each concrete value
    optimizer = adamjax.adam(optax.linear_schedule(0.5, -0.5, 8))
    state = optimizer.init(PARAMS)
    for i in range(5):
        _, state = optimizer.update(_grads(i), state, PARAMS)
    with pytest.raises(ValueError, match=r"learning_rate schedule value must be >= 0.0, got"):
        optimizer.update(_grads(5), state, PARAMS)


def test_checked_refuses_what_is_not_a_schedule() -> None:
    with pytest.raises(TypeError, match=r"schedule must be callable, got 0\.1"):
        schedules.checked(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a string, got 3"):
        schedules.checked(schedules.constant(0.1), name=3)  # type: ignore[arg-type]


def test_checked_name_with_braces_is_printed_as_given() -> None:
    schedule = schedules.checked(lambda count: -jnp.asarray(count, jnp.float64), name="lr{group}")
    error, _ = jax.jit(checkify.checkify(schedule))(jnp.int32(2))
    assert error.get() is not None
    assert error.get().startswith("lr{group} schedule gave -2.0 at step 2")
