"""accumulate_gradients: k micro-batches, one update, the same as the large-batch step."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from tests import reference as ref

K = 4
MICRO = 8
F64 = jnp.float64


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(K * MICRO, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=K * MICRO)
    return x, y


def _loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean squared error: a mean over examples, so micro-batch means average to the batch's."""
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


PARAMS = {"w": jnp.zeros(3, F64), "b": jnp.zeros((), F64)}


def _schedule(count: Any) -> Any:
    return 0.05 / (1.0 + jnp.asarray(count).astype(F64))


def _train_large_batch(inner: Any, x: np.ndarray, y: np.ndarray, updates: int) -> list[dict]:
    params, state = PARAMS, inner.init(PARAMS)

    @jax.jit
    def large_step(params: dict, state: Any) -> Any:
        grads = jax.grad(_loss)(params, jnp.asarray(x), jnp.asarray(y))
        step, state = inner.update(grads, state, params)
        return adamjax.apply_updates(params, step), state

    history = []
    for _ in range(updates):
        params, state = large_step(params, state)
        history.append(params)
    return history


def _train_accumulated(
    optimizer: Any, x: np.ndarray, y: np.ndarray, updates: int
) -> tuple[list[dict], Any]:
    params, state = PARAMS, optimizer.init(PARAMS)

    @jax.jit
    def micro_step(params: dict, state: Any, xb: jax.Array, yb: jax.Array) -> Any:
        grads = jax.grad(_loss)(params, xb, yb)
        step, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, step), state, step

    history = []
    for _ in range(updates):
        for i in range(K):
            rows = slice(i * MICRO, (i + 1) * MICRO)
            before = params
            params, state, step = micro_step(params, state, x[rows], y[rows])
            if i < K - 1:  # no update until the k-th micro-batch
                chex.assert_trees_all_equal(step, jax.tree.map(jnp.zeros_like, step))
                chex.assert_trees_all_equal(params, before)
        history.append(params)
    return history, state


@pytest.mark.parametrize(
    "name, inner",
    [
        ("adam", lambda: adamjax.adam(0.05)),
        ("adamw-schedule", lambda: adamjax.adamw(_schedule, weight_decay=0.1)),
        ("nadam", lambda: adamjax.nadam(0.05)),
        ("amsgrad", lambda: adamjax.amsgrad(0.05)),
    ],
)
def test_k_micro_batches_equal_the_large_batch_step(name: str, inner: Any) -> None:
    x, y = _data()
    expected = _train_large_batch(inner(), x, y, updates=5)
    got, state = _train_accumulated(adamjax.accumulate_gradients(inner(), K), x, y, updates=5)
    chex.assert_trees_all_close(got, expected, rtol=1e-12, atol=1e-13, custom_message=name)
    assert int(state.inner_state[0].count) == 5  # bias correction counted real updates only
    assert int(state.micro_step) == 0


def test_bias_correction_and_schedule_see_the_update_index() -> None:
    """Against the float64 reference: t and the schedule's count advance once per k micro-steps."""
    x, y = _data(1)
    got, _ = _train_accumulated(
        adamjax.accumulate_gradients(adamjax.adam(_schedule), K), x, y, updates=4
    )
    schedule: Any = lambda count: 0.05 / (1.0 + count)  # noqa: E731
    opt = ref.Adam(np.zeros(3), lr=schedule)
    opt_b = ref.Adam(np.zeros(()), lr=schedule)
    w, b = np.zeros(3), np.zeros(())
    for mine in got:
        residual = x @ w + b - y
        w = opt.step(w, 2.0 * x.T @ residual / len(y))
        b = opt_b.step(b, np.asarray(2.0 * np.mean(residual)))
        np.testing.assert_allclose(mine["w"], w, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(mine["b"], b, rtol=1e-12, atol=1e-13)


def test_first_update_uses_schedule_zero() -> None:
    """The first real update is -schedule(0) * sign(mean gradient), as for Adam without k."""
    optimizer = adamjax.accumulate_gradients(
        adamjax.adam(lambda c: 0.5 / (1.0 + c.astype(F64)), eps=0.0), 3
    )
    params = {"w": jnp.zeros(2, F64)}
    state = optimizer.init(params)
    for g in ([1.0, -3.0], [2.0, 1.0], [0.5, 1.0]):
        updates, state = optimizer.update({"w": jnp.asarray(g, F64)}, state, params)
    np.testing.assert_allclose(updates["w"], [-0.5, 0.5], rtol=1e-14)


def test_memory_is_one_accumulator() -> None:
    params = {"w": jnp.zeros((64, 32), jnp.float32), "b": jnp.zeros(32, jnp.float32)}
    inner = adamjax.adam(1e-3)
    state = adamjax.accumulate_gradients(inner, 8).init(params)
    nbytes = lambda tree: sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree))  # noqa: E731
    assert nbytes(state) - nbytes(inner.init(params)) == nbytes(params) + 4
    assert jax.tree.structure(state.grad_sum) == jax.tree.structure(params)


def test_accumulator_dtype_is_kept_through_a_cycle() -> None:
    params = {"w": jnp.zeros(4, jnp.bfloat16)}
    optimizer = adamjax.accumulate_gradients(adamjax.adam(1e-2), 2, accumulator_dtype=jnp.float32)
    state = optimizer.init(params)
    assert state.grad_sum["w"].dtype == jnp.float32
    grads = {"w": jnp.asarray([1.0, -1.0, 2.0, 0.5], jnp.bfloat16)}
    _, state = optimizer.update(grads, state, params)
    updates, state = optimizer.update(grads, state, params)
    assert updates["w"].dtype == jnp.bfloat16
    assert state.grad_sum["w"].dtype == jnp.float32
    np.testing.assert_array_equal(state.grad_sum["w"], np.zeros(4, np.float32))


def test_accumulator_in_float32_keeps_low_bits_of_bfloat16_gradients() -> None:
    params = {"w": jnp.zeros(1, jnp.bfloat16)}
    grads = [{"w": jnp.asarray([v], jnp.bfloat16)} for v in (256.0, 1.0, 1.0, 1.0)]

    def accumulated_sum(dtype: Any) -> float:
        optimizer = adamjax.accumulate_gradients(adamjax.sgd(1.0), 8, accumulator_dtype=dtype)
        state = optimizer.init(params)
        for g in grads:
            _, state = optimizer.update(g, state, params)
        return float(state.grad_sum["w"][0])

    assert accumulated_sum(None) == 259.0  # float32 by default for bfloat16 params
    assert accumulated_sum(jnp.float32) == 259.0
    assert accumulated_sum(jnp.bfloat16) == 256.0  # 8 bits: 256 + 1 rounds back to 256


def test_every_k_one_is_the_inner_optimizer() -> None:
    x, y = _data(2)
    inner = adamjax.adam(0.05)
    optimizer = adamjax.accumulate_gradients(adamjax.adam(0.05), 1)
    p1, s1 = PARAMS, inner.init(PARAMS)
    p2, s2 = PARAMS, optimizer.init(PARAMS)
    grad_fn = jax.jit(jax.grad(_loss))
    update1, update2 = jax.jit(inner.update), jax.jit(optimizer.update)
    for i in range(3):
        rows = slice(i * MICRO, (i + 1) * MICRO)
        g = grad_fn(p1, jnp.asarray(x[rows]), jnp.asarray(y[rows]))
        u1, s1 = update1(g, s1, p1)
        u2, s2 = update2(g, s2, p2)
        p1, p2 = adamjax.apply_updates(p1, u1), adamjax.apply_updates(p2, u2)
    chex.assert_trees_all_close(p1, p2, rtol=1e-15, atol=0)


def test_micro_steps_and_updates_under_vmap_share_one_compilation() -> None:
    optimizer = adamjax.accumulate_gradients(adamjax.adam(0.1), 2)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(grads: dict, state: Any, params: dict) -> Any:
        return jax.vmap(optimizer.update)(grads, state, params)

    members = 3
    params = {"w": jnp.zeros((members, 2), F64)}
    state = jax.vmap(optimizer.init)(params)
    signs = jnp.asarray([[1.0, -1.0], [-1.0, 1.0], [2.0, 2.0]], F64)
    updates = None
    for _ in range(4):
        updates, state = step({"w": signs}, state, params)
    assert updates is not None
    np.testing.assert_allclose(updates["w"], -0.1 * np.sign(np.asarray(signs)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(state.inner_state[0].count), [2, 2, 2])


def test_skip_nonfinite_outside_drops_a_bad_micro_batch() -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.accumulate_gradients(adamjax.adam(0.1), 2))
    params = {"w": jnp.zeros(2, F64)}
    state = optimizer.init(params)
    _, state = optimizer.update({"w": jnp.asarray([1.0, 1.0], F64)}, state, params)
    _, state = optimizer.update({"w": jnp.asarray([np.nan, 1.0], F64)}, state, params)
    assert int(state.inner_state.micro_step) == 1
    np.testing.assert_array_equal(state.inner_state.grad_sum["w"], [1.0, 1.0])
    updates, state = optimizer.update({"w": jnp.asarray([3.0, -5.0], F64)}, state, params)
    np.testing.assert_allclose(updates["w"], [-0.1, 0.1], rtol=1e-6)
    assert int(state.total_skips) == 1


@pytest.mark.parametrize(
    ("param_dtype", "accumulator_dtype", "expected"),
    [
        (jnp.bfloat16, None, jnp.float32),
        (jnp.float16, None, jnp.float32),
        (jnp.float32, None, jnp.float32),
        (jnp.float64, None, jnp.float64),
        (jnp.complex64, None, jnp.complex64),
        (jnp.float32, jnp.float16, jnp.float16),
        (jnp.float16, "float64", jnp.float64),
        (jnp.complex64, jnp.float32, jnp.complex64),
        (jnp.complex64, jnp.float64, jnp.complex128),
        (jnp.complex128, jnp.complex64, jnp.complex64),
        (jnp.complex64, jnp.complex64, jnp.complex64),
    ],
)
def test_accumulator_dtype(param_dtype: Any, accumulator_dtype: Any, expected: Any) -> None:
    optimizer = adamjax.accumulate_gradients(
        adamjax.sgd(0.1), 2, accumulator_dtype=accumulator_dtype
    )
    state = optimizer.init({"w": jnp.zeros(2, param_dtype)})
    assert state.grad_sum["w"].dtype == jnp.dtype(expected)


def test_every_k_takes_numpy_integers() -> None:
    optimizer = adamjax.accumulate_gradients(adamjax.sgd(1.0), np.int64(2))
    params = {"w": jnp.zeros(1, F64)}
    state = optimizer.init(params)
    first, state = optimizer.update({"w": jnp.asarray([1.0], F64)}, state, params)
    second, state = optimizer.update({"w": jnp.asarray([3.0], F64)}, state, params)
    np.testing.assert_array_equal(first["w"], [0.0])
    np.testing.assert_array_equal(second["w"], [-2.0])  # sgd(1.0) on the mean of 1 and 3


# float16 micro-batch gradients whose sum overflows float16: 4 * 30000 > 65504
F16_MICRO = [[30000.0, 0.5, -1.0], [30000.0, 0.25, -2.0], [30000.0, 1.0, 1.0], [30000.0, -0.5, 3.0]]


def _run_float16(optimizer: Any, micro: list[list[float]]) -> tuple[list[np.ndarray], Any]:
    """Training steps (update, then apply) on float16 params from zero, under jit.

    Returns the params after each step and the last state.
    """
    params = {"w": jnp.zeros(3, jnp.float16)}

    @jax.jit
    def step(params: dict, state: Any, grads: dict) -> tuple[dict, Any]:
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    state = optimizer.init(params)
    seen = []
    for g in micro:
        params, state = step(params, state, {"w": jnp.asarray(g, jnp.float16)})
        seen.append(np.asarray(params["w"]))
    return seen, state


def _adam_step_on_mean(micro: list[list[float]], lr: float) -> np.ndarray:
    """The float64 reference: one Adam step from zero on the mean of the micro-batches."""
    mean = np.mean(np.asarray(micro, np.float64), axis=0)
    return ref.run(ref.Adam, np.zeros(3), [mean], lr=lr)[0]


def test_float16_sum_that_overflows_float16_is_kept_in_float32_by_default() -> None:
    optimizer = adamjax.skip_nonfinite(adamjax.accumulate_gradients(adamjax.adam(1e-3), 4))
    seen, state = _run_float16(optimizer, F16_MICRO)
    assert state.inner_state.grad_sum["w"].dtype == jnp.float32
    for params in seen[:3]:
        np.testing.assert_array_equal(params, np.zeros(3, np.float16))
    expected = _adam_step_on_mean(F16_MICRO, 1e-3)
    np.testing.assert_allclose(seen[3].astype(np.float64), expected, rtol=1e-3)
    adam_state = state.inner_state.inner_state[0]
    assert bool(adamjax.all_finite(adam_state))
    np.testing.assert_allclose(float(adam_state.nu["w"][0]), 1e-3 * 30000.0**2, rtol=1e-3)
    assert int(state.total_skips) == 0


def test_float16_accumulator_overflows_and_poisons_adam_without_check_state() -> None:
    """What the float32 default prevents: every gradient finite, Adam's state Inf for good."""
    optimizer = adamjax.skip_nonfinite(
        adamjax.accumulate_gradients(adamjax.adam(1e-3), 4, accumulator_dtype=jnp.float16)
    )
    seen, state = _run_float16(optimizer, F16_MICRO)
    adam_state = state.inner_state.inner_state[0]
    assert float(adam_state.nu["w"][0]) == np.inf
    assert np.isnan(seen[3][0])  # the param itself
    assert int(state.total_skips) == 0


def test_check_state_refuses_the_micro_batch_that_overflows_a_float16_accumulator() -> None:
    optimizer = adamjax.skip_nonfinite(
        adamjax.accumulate_gradients(adamjax.adam(1e-3), 4, accumulator_dtype=jnp.float16),
        check_state=True,
    )
    # the third micro-batch would take the sum to 90000: refused; two small ones complete it
    micro = [*F16_MICRO[:3], [1000.0, 1.0, 1.0], [1000.0, -0.5, 3.0]]
    seen, state = _run_float16(optimizer, micro)
    for params in seen[:4]:
        np.testing.assert_array_equal(params, np.zeros(3, np.float16))
    accepted = [micro[0], micro[1], micro[3], micro[4]]
    expected = _adam_step_on_mean(accepted, 1e-3)
    np.testing.assert_allclose(seen[4].astype(np.float64), expected, rtol=1e-3)
    assert int(state.total_skips) == 1
    assert int(state.inner_state.inner_state[0].count) == 1
    assert bool(adamjax.all_finite(state))
