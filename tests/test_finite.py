"""skip_nonfinite: a step with NaN or Inf gradients changes nothing, and is counted."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax

F32 = jnp.float32
PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=F32).reshape(2, 3), "b": jnp.zeros(3, F32)}


def _grads(seed: int, poison: float | None = None) -> dict:
    rng = np.random.default_rng(seed)
    grads = {k: jnp.asarray(rng.normal(size=v.shape), F32) for k, v in PARAMS.items()}
    if poison is not None:
        grads["b"] = grads["b"].at[1].set(poison)
    return grads


def _bits_equal(a: Any, b: Any) -> bool:
    """Same structure and the same bits in every leaf (NaN payloads included)."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        np.asarray(x).dtype == np.asarray(y).dtype
        and np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nonfinite_step_is_a_no_op_and_is_counted(poison: float) -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.adamw(0.1, weight_decay=0.1))
    state = optimizer.init(PARAMS)
    _, state = optimizer.update(_grads(0), state, PARAMS)
    before = state
    updates, state = optimizer.update(_grads(1, poison), state, PARAMS)
    for leaf in jax.tree.leaves(updates):
        np.testing.assert_array_equal(leaf, np.zeros_like(leaf))
    assert _bits_equal(state.inner_state, before.inner_state)
    assert int(state.total_skips) == 1
    assert int(state.consecutive_nonfinite) == 1


def test_training_through_a_skip_equals_training_without_that_step() -> None:
    """[g0, NaN, g2] through the wrapper is [g0, g2] through the bare optimizer, bit for bit.

    Eager, op by op, so that both runs execute the same kernels (one jitted program per run
    could fuse differently and round differently in the last bit).
    """
    wrapped, bare = adamjax.skip_nonfinite(adamjax.adam(0.05)), adamjax.adam(0.05)

    def run(transform: Any, grads_seq: list[dict]) -> Any:
        params, state = PARAMS, transform.init(PARAMS)
        for grads in grads_seq:
            updates, state = transform.update(grads, state, params)
            params = adamjax.apply_updates(params, updates)
        return params, state

    params_w, state_w = run(wrapped, [_grads(0), _grads(1, np.nan), _grads(2)])
    params_b, state_b = run(bare, [_grads(0), _grads(2)])
    assert _bits_equal(params_w, params_b)
    assert _bits_equal(state_w.inner_state, state_b)
    assert int(state_w.inner_state[0].count) == 2


def test_consecutive_counter_resets_and_total_keeps_counting() -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.adam(0.1))
    state = optimizer.init(PARAMS)
    pattern = [np.nan, np.nan, None, np.inf, None, None]
    seen = []
    for i, poison in enumerate(pattern):
        _, state = optimizer.update(_grads(i, poison), state, PARAMS)
        seen.append((int(state.total_skips), int(state.consecutive_nonfinite)))
    assert seen == [(1, 1), (2, 2), (2, 0), (3, 1), (3, 0), (3, 0)]
    assert int(state.inner_state[0].count) == 3


def test_on_limit_apply_lets_values_through_after_the_limit() -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.adam(0.1), max_consecutive_skips=2, on_limit="apply")
    state = optimizer.init(PARAMS)
    _, state = optimizer.update(_grads(0), state, PARAMS)
    for i in (1, 2):  # two skips allowed
        updates, state = optimizer.update(_grads(i, np.nan), state, PARAMS)
        assert np.all(np.asarray(updates["b"]) == 0.0)
    updates, state = optimizer.update(_grads(3, np.nan), state, PARAMS)  # the third goes through
    assert np.isnan(np.asarray(updates["b"][1]))
    assert np.isnan(np.asarray(state.inner_state[0].mu["b"][1]))
    assert int(state.inner_state[0].count) == 2
    assert int(state.total_skips) == 2
    assert int(state.consecutive_nonfinite) == 3


def test_default_keeps_skipping_every_nonfinite_step() -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.adam(0.1))
    state = optimizer.init(PARAMS)
    for i in range(4):
        updates, state = optimizer.update(_grads(i, np.nan), state, PARAMS)
        assert np.all(np.asarray(updates["b"]) == 0.0)
    assert int(state.total_skips) == 4
    assert int(state.consecutive_nonfinite) == 4
    assert int(state.inner_state[0].count) == 0


def test_numpy_integer_limit_counts_like_an_int() -> None:
    optimizer = adamjax.skip_nonfinite(
        adamjax.adam(0.1), max_consecutive_skips=np.int64(1), on_limit="apply"
    )
    state = optimizer.init(PARAMS)
    updates, state = optimizer.update(_grads(0, np.nan), state, PARAMS)
    assert np.all(np.asarray(updates["b"]) == 0.0)
    updates, state = optimizer.update(_grads(1, np.nan), state, PARAMS)  # the second goes through
    assert np.isnan(np.asarray(updates["b"][1]))
    assert int(state.total_skips) == 1


def test_limit_zero_with_apply_never_skips() -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.adam(0.1), max_consecutive_skips=0, on_limit="apply")
    state = optimizer.init(PARAMS)
    updates, state = optimizer.update(_grads(0, np.nan), state, PARAMS)
    assert np.isnan(np.asarray(updates["b"][1]))
    assert int(state.total_skips) == 0


def test_each_member_skips_on_its_own_under_vmap() -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.adam(0.1))
    bare = adamjax.adam(0.1)
    members = 3
    params = jax.tree.map(lambda x: jnp.stack([x] * members), PARAMS)
    state = jax.jit(jax.vmap(optimizer.init))(params)
    batched_update = jax.jit(jax.vmap(optimizer.update))
    first = jax.tree.map(lambda *xs: jnp.stack(xs), *[_grads(10 + m) for m in range(members)])
    _, state = batched_update(first, state, params)
    before = state
    second_list = [_grads(20), _grads(21, np.nan), _grads(22)]
    second = jax.tree.map(lambda *xs: jnp.stack(xs), *second_list)
    updates, state = batched_update(second, state, params)
    np.testing.assert_array_equal(np.asarray(state.total_skips), [0, 1, 0])
    np.testing.assert_array_equal(np.asarray(state.consecutive_nonfinite), [0, 1, 0])
    for m in range(members):
        member = jax.tree.map(lambda x, m=m: x[m], updates)
        if m == 1:
            assert all(np.all(np.asarray(u) == 0.0) for u in jax.tree.leaves(member))
            inner_now = jax.tree.map(lambda x: x[1], state.inner_state)
            inner_before = jax.tree.map(lambda x: x[1], before.inner_state)
            assert _bits_equal(inner_now, inner_before)
            continue
        bare_update = jax.jit(bare.update)
        _, bare_state = bare_update(_grads(10 + m), bare.init(PARAMS), PARAMS)
        expected, _ = bare_update(second_list[m], bare_state, PARAMS)
        for key in PARAMS:
            np.testing.assert_allclose(member[key], expected[key], rtol=1e-6, atol=1e-7)


def test_finite_and_nonfinite_steps_share_one_compilation() -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.adam(0.1))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(grads: dict, state: Any) -> Any:
        return optimizer.update(grads, state, PARAMS)

    state = optimizer.init(PARAMS)
    for i, poison in enumerate([None, np.nan, None, np.inf]):
        _, state = step(_grads(i, poison), state)
    assert int(state.total_skips) == 2


def test_wraps_an_optax_transform() -> None:
    optimizer = adamjax.skip_nonfinite(optax.adam(0.1))
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        state = optimizer.init(PARAMS)
        _, state = optimizer.update(_grads(0), state, PARAMS)
        before = state
        updates, state = optimizer.update(_grads(1, np.nan), state, PARAMS)
    assert all(np.all(np.asarray(u) == 0.0) for u in jax.tree.leaves(updates))
    assert _bits_equal(state.inner_state, before.inner_state)


def test_skip_counters_saturate_at_the_int32_maximum() -> None:
    top = np.iinfo(np.int32).max
    optimizer = adamjax.skip_nonfinite(adamjax.adam(0.1))
    state = optimizer.init(PARAMS)._replace(
        total_skips=jnp.asarray(top - 1, jnp.int32),
        consecutive_nonfinite=jnp.asarray(top - 1, jnp.int32),
    )
    for i in range(3):
        _, state = optimizer.update(_grads(i, np.nan), state, PARAMS)
    assert int(state.total_skips) == top
    assert int(state.consecutive_nonfinite) == top


def test_all_finite() -> None:
    assert bool(adamjax.all_finite(PARAMS))
    assert bool(adamjax.all_finite({}))
    assert not bool(adamjax.all_finite({"a": jnp.ones(2), "b": jnp.array([1.0, jnp.inf])}))
    assert not bool(adamjax.all_finite([jnp.array([1.0 + 0j, complex(np.nan, 0)])]))


def _moons() -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(42)
    angle = rng.uniform(0, np.pi, 200)
    upper = np.stack([np.cos(angle[:100]), np.sin(angle[:100])], 1)
    lower = np.stack([1 - np.cos(angle[100:]), 0.5 - np.sin(angle[100:])], 1)
    x = np.concatenate([upper, lower]) + rng.normal(scale=0.1, size=(200, 2))
    y = np.concatenate([np.zeros(100), np.ones(100)])
    return jnp.asarray(x, F32), jnp.asarray(y, F32)


@pytest.mark.slow
def test_a_run_hit_by_bad_batches_keeps_training() -> None:
    """A 2-10-1 MLP on two moons where every 25th batch yields NaN gradients."""
    x, y = _moons()
    key = jax.random.PRNGKey(0)
    k1, k2 = jax.random.split(key)
    params = {
        "w1": jax.random.normal(k1, (2, 10), F32),
        "b1": jnp.zeros(10, F32),
        "w2": jax.random.normal(k2, (10,), F32),
        "b2": jnp.zeros((), F32),
    }

    def loss_fn(p: dict, corrupt: jax.Array) -> jax.Array:
        hidden = jnp.tanh(x @ p["w1"] + p["b1"][None, :])
        logits = hidden @ p["w2"] + p["b2"]
        losses = optax.sigmoid_binary_cross_entropy(logits, y)
        return jnp.mean(losses) * jnp.where(corrupt, jnp.nan, 1.0).astype(F32)

    def train(optimizer: Any) -> tuple[dict, float]:
        def step(i: jax.Array, carry: tuple[dict, Any]) -> tuple[dict, Any]:
            p, s = carry
            grads = jax.grad(loss_fn)(p, i % 25 == 24)
            updates, s = optimizer.update(grads, s, p)
            return adamjax.apply_updates(p, updates), s

        run = jax.jit(lambda p, s: jax.lax.fori_loop(0, 300, step, (p, s)))
        p, _ = run(params, optimizer.init(params))
        return p, float(loss_fn(p, jnp.asarray(False)))

    bare_params, bare_loss = train(adamjax.adam(0.01))
    safe_params, safe_loss = train(adamjax.skip_nonfinite(adamjax.adam(0.01)))
    start = float(loss_fn(params, jnp.asarray(False)))
    assert np.isnan(bare_loss)
    assert not bool(adamjax.all_finite(bare_params))
    assert bool(adamjax.all_finite(safe_params))
    assert safe_loss < 0.5 * start
