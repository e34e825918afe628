"""Finite but huge gradients: where plain Adam freezes or turns NaN, and check_state=True.

Adam squares the gradient. In float32 that square is Inf from |g| = 2**64 (about 1.845e19): v
becomes Inf, every later update of that coordinate is m / Inf = 0, and the coordinate never moves
again, as in optax. ``skip_nonfinite(..., check_state=True)`` refuses such a step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax
from tests import reference as ref

LR = 1e-3
F32 = jnp.float32
F32_MAX = float(np.finfo(np.float32).max)
TWO_TO_64 = 2.0**64  # sqrt of the float32 range: the square of anything larger is Inf


def _bits_equal(a: Any, b: Any) -> bool:
    """Same structure and the same bits in every leaf."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        np.asarray(x).dtype == np.asarray(y).dtype
        and np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _gradient_sequence(first: float, dtype: Any = F32, steps: int = 4) -> list[jax.Array]:
    """``steps`` gradients of 3 entries; entry 0 of the first one is ``first``."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) for _ in range(steps)]
    grads[0][0] = first
    return [jnp.asarray(g, dtype) for g in grads]


def _run(transform: Any, grads: list[jax.Array], jit: bool) -> tuple[list[Any], list[Any]]:
    """Updates and states of ``transform`` over ``grads`` from zero params (params not moved)."""
    params = jnp.zeros_like(grads[0])
    update = jax.jit(transform.update) if jit else transform.update
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        state = transform.init(params)
        all_updates, states = [], []
        for g in grads:
            updates, state = update(g, state, params)
            all_updates.append(np.asarray(updates))
            states.append(state)
    return all_updates, states


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("huge", [TWO_TO_64, 1e20, 1e30, 3e38], ids=str)
def test_a_huge_float32_gradient_freezes_the_coordinate_as_in_optax(huge: float, jit: bool) -> None:
    grads = _gradient_sequence(huge)
    mine, my_states = _run(adamjax.adam(LR), grads, jit)
    theirs, their_states = _run(optax.adam(LR), grads, jit)
    for step, (u, o, s, t) in enumerate(zip(mine, theirs, my_states, their_states, strict=True)):
        assert float(s[0].nu[0]) == np.inf and float(t[0].nu[0]) == np.inf, step
        assert u[0] == 0.0 and o[0] == 0.0, step  # m / Inf: the coordinate does not move
        np.testing.assert_allclose(s[0].mu, t[0].mu, rtol=1e-6)
        np.testing.assert_allclose(u[1:], o[1:], rtol=1e-5)
    # the other coordinates are plain Adam (float64 reference)
    for i in (1, 2):
        expected = ref.run(ref.Adam, np.zeros(()), [np.float64(g[i]) for g in grads], lr=LR)
        got = np.cumsum([u[i] for u in mine])
        np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    ("dtype", "below", "at"),
    [
        (jnp.float32, 2.0**64 - 2.0**41, TWO_TO_64),  # two float32 steps below 2**64
        (jnp.bfloat16, 2.0**64 - 2.0**56, TWO_TO_64),  # the largest bfloat16 below 2**64
        (jnp.float64, 1.3e154, 2.0**512),
    ],
    ids=["float32", "bfloat16", "float64"],
)
def test_the_freezing_threshold_per_dtype(dtype: Any, below: float, at: float, jit: bool) -> None:
    """Below the threshold v is (1 - b2) g^2 and the first update is -lr; from it on v is Inf."""
    assert float(jnp.asarray(at, dtype)) == at
    below = float(jnp.asarray(below, dtype))
    updates, states = _run(adamjax.adam(LR), _gradient_sequence(below, dtype), jit)
    np.testing.assert_allclose(float(states[0][0].nu[0]), 1e-3 * below**2, rtol=1e-2)
    np.testing.assert_allclose(float(updates[0][0]), -LR, rtol=1e-2)
    assert all(np.isfinite(float(s[0].nu[0])) for s in states)
    assert all(float(u[0]) < 0.0 for u in updates)  # it keeps moving (all gradients > 0 there)
    updates, states = _run(adamjax.adam(LR), _gradient_sequence(at, dtype), jit)
    assert all(float(s[0].nu[0]) == np.inf for s in states)
    assert all(float(u[0]) == 0.0 for u in updates)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float64], ids=["bfloat16", "float64"])
def test_a_gradient_at_the_maximum_of_bfloat16_or_float64_gives_a_zero_update(dtype: Any) -> None:
    """Unlike float32's, these m_hat stay finite: m / Inf = 0 and v = Inf."""
    grads = _gradient_sequence(float(jnp.finfo(dtype).max), dtype)
    for jit in (False, True):
        updates, states = _run(adamjax.adam(LR), grads, jit)
        assert all(float(u[0]) == 0.0 for u in updates)
        assert all(float(s[0].nu[0]) == np.inf for s in states)


def test_a_float16_second_moment_overflows_from_8096_or_from_300_held_for_1331_steps() -> None:
    optimizer = adamjax.adam(LR, nu_dtype=jnp.float16)
    params = jnp.zeros(1, jnp.float16)

    def nu_after(g: float, steps: int) -> float:
        def step(_: Any, state: Any) -> Any:
            return optimizer.update(jnp.full(1, g, jnp.float16), state, params)[1]

        state = jax.jit(lambda s: jax.lax.fori_loop(0, steps, step, s))(optimizer.init(params))
        return float(state[0].nu[0])

    np.testing.assert_allclose(nu_after(8092.0, 1), 1e-3 * 8092.0**2, rtol=1e-3)
    assert nu_after(8096.0, 1) == np.inf  # 1e-3 * 8096**2 = 65545 > 65504
    assert np.isfinite(nu_after(300.0, 1330))
    assert nu_after(300.0, 1331) == np.inf


def test_float16_gradients_cannot_overflow_the_float32_second_moment() -> None:
    updates, states = _run(adamjax.adam(LR), _gradient_sequence(65504.0, jnp.float16), jit=True)
    assert states[0][0].nu.dtype == jnp.float32
    np.testing.assert_allclose(float(states[0][0].nu[0]), 1e-3 * 65504.0**2, rtol=1e-6)
    np.testing.assert_allclose(float(updates[0][0]), -LR, rtol=1e-3)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_gradient_at_the_float32_maximum_gives_a_nan_update(jit: bool) -> None:
    """m = (1 - b1) g is finite, but m / (1 - b1) rounds past the float32 maximum.

    adamjax's factor 1 - b1 = -expm1(log1p(-0.1)) rounds to 0.099999994 in float32, so
    m_hat = Inf and the first update is Inf / Inf = NaN. optax's factor, 1 - 0.9 in float32,
    rounds to 0.100000024: its m_hat stays finite and its update is m_hat / Inf = 0. v is Inf
    in both, and the coordinate's later updates are 0 in both. Under jit the first update is NaN
    or 0, as the XLA version fuses the division.
    """
    grads = _gradient_sequence(F32_MAX)
    mine, my_states = _run(adamjax.adam(LR), grads, jit)
    theirs, their_states = _run(optax.adam(LR), grads, jit)
    m = np.float32(0.1) * np.float32(F32_MAX)  # float32 rounding, as stored
    assert float(my_states[0][0].mu[0]) == float(m) == float(their_states[0][0].mu[0])
    below_a_tenth = np.nextafter(np.float32(0.1), np.float32(0.0))  # 0.099999994
    assert float(m) / float(below_a_tenth) > F32_MAX
    assert float(m) / float(np.float32(1.0) - np.float32(0.9)) < F32_MAX
    assert float(my_states[0][0].nu[0]) == np.inf == float(their_states[0][0].nu[0])
    if jit:  # how XLA fuses the division differs by version: jaxlib 0.10.0 gives -0.0 here
        assert np.isnan(mine[0][0]) or mine[0][0] == 0.0
    else:
        assert np.isnan(mine[0][0])
    assert theirs[0][0] == 0.0
    np.testing.assert_allclose(mine[0][1:], theirs[0][1:], rtol=1e-5)
    assert all(u[0] == 0.0 for u in mine[1:]) and all(o[0] == 0.0 for o in theirs[1:])


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("huge", [1e20, F32_MAX], ids=["1e20", "float32-max"])
def test_check_state_skips_a_huge_step(huge: float, jit: bool) -> None:
    wrapped = adamjax.skip_nonfinite(adamjax.adam(LR), check_state=True)
    bare = adamjax.adam(LR)
    grads = _gradient_sequence(1.0, steps=3)
    grads[1] = grads[1].at[0].set(huge)
    params = jnp.zeros(3, F32)
    update = jax.jit(wrapped.update) if jit else wrapped.update
    bare_update = jax.jit(bare.update) if jit else bare.update
    state = wrapped.init(params)
    _, state = update(grads[0], state, params)
    before = state
    updates, state = update(grads[1], state, params)
    np.testing.assert_array_equal(updates, np.zeros(3, np.float32))
    assert _bits_equal(state.inner_state, before.inner_state)
    assert (int(state.total_skips), int(state.consecutive_nonfinite)) == (1, 1)
    updates, state = update(grads[2], state, params)
    assert (int(state.total_skips), int(state.consecutive_nonfinite)) == (1, 0)
    bare_state = bare.init(params)
    _, bare_state = bare_update(grads[0], bare_state, params)
    expected, bare_state = bare_update(grads[2], bare_state, params)
    np.testing.assert_allclose(updates, expected, rtol=1e-6)
    np.testing.assert_allclose(state.inner_state[0].nu, bare_state[0].nu, rtol=1e-6)
    assert int(state.inner_state[0].count) == 2


def test_without_check_state_a_huge_step_goes_through() -> None:
    wrapped = adamjax.skip_nonfinite(adamjax.adam(LR))
    params = jnp.zeros(3, F32)
    state = wrapped.init(params)
    updates, state = wrapped.update(_gradient_sequence(1e20)[0], state, params)
    assert int(state.total_skips) == 0
    assert float(state.inner_state[0].nu[0]) == np.inf
    assert float(updates[0]) == 0.0


def test_check_state_skips_count_towards_the_limit() -> None:
    wrapped = adamjax.skip_nonfinite(
        adamjax.adam(LR), max_consecutive_skips=1, on_limit="apply", check_state=True
    )
    params = jnp.zeros(3, F32)
    state = wrapped.init(params)
    huge = _gradient_sequence(1e20)[0]
    _, state = wrapped.update(huge, state, params)
    assert (int(state.total_skips), int(state.consecutive_nonfinite)) == (1, 1)
    _, state = wrapped.update(huge, state, params)  # past the limit: it goes through
    assert (int(state.total_skips), int(state.consecutive_nonfinite)) == (1, 2)
    assert float(state.inner_state[0].nu[0]) == np.inf


def test_under_vmap_only_the_member_with_a_huge_gradient_is_skipped() -> None:
    members = 3
    wrapped = adamjax.skip_nonfinite(adamjax.adam(LR), check_state=True)
    bare = adamjax.adam(LR)
    params = jnp.zeros((members, 3), F32)
    rng = np.random.default_rng(1)
    first = jnp.asarray(rng.normal(size=(members, 3)), F32)
    second = jnp.asarray(rng.normal(size=(members, 3)), F32).at[1, 2].set(1e20)
    wrapped_step = jax.jit(jax.vmap(wrapped.update))
    bare_step = jax.jit(jax.vmap(bare.update))
    state = jax.vmap(wrapped.init)(params)
    bare_state = jax.vmap(bare.init)(params)
    _, state = wrapped_step(first, state, params)
    _, bare_state = bare_step(first, bare_state, params)
    before = state
    updates, state = wrapped_step(second, state, params)
    bare_updates, bare_state = bare_step(second, bare_state, params)
    np.testing.assert_array_equal(np.asarray(state.total_skips), [0, 1, 0])
    np.testing.assert_array_equal(np.asarray(state.inner_state[0].count), [2, 1, 2])
    np.testing.assert_array_equal(updates[1], np.zeros(3, np.float32))
    member = lambda tree, m: jax.tree.map(lambda x: x[m], tree)  # noqa: E731
    assert _bits_equal(member(state.inner_state, 1), member(before.inner_state, 1))
    assert float(bare_state[0].nu[1, 2]) == np.inf  # what the skip kept out
    for m in (0, 2):
        assert _bits_equal(updates[m], bare_updates[m])
        assert _bits_equal(member(state.inner_state, m), member(bare_state, m))


def test_state_that_starts_non_finite_is_not_held_against_a_step() -> None:
    """optax's reduce_on_plateau starts its best value at Inf and keeps it for 3 steps."""
    plateau = optax.contrib.reduce_on_plateau(accumulation_size=3)
    wrapped = adamjax.skip_nonfinite(adamjax.chain(adamjax.adam(0.1), plateau), check_state=True)
    params = jnp.ones(2, F32)
    with jax.numpy_dtype_promotion("standard"):
        state = wrapped.init(params)
        assert float(state.inner_state[1].best_value) == np.inf
        for step in range(4):
            loss = jnp.sum(params**2)
            updates, state = wrapped.update(2 * params, state, params, value=loss)
            assert float(updates[0]) < 0.0, step
            params = adamjax.apply_updates(params, updates)
    assert int(state.total_skips) == 0
    assert np.isfinite(float(state.inner_state[1].best_value))
    assert int(state.inner_state[0][0].count) == 4
