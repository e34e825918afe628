"""Integer and boolean leaves in the params: labelled for set_to_zero(), left as they are.

A moment estimator refuses integer and boolean params and suggests a parameter group of their
own. That route must work to the end: partition + set_to_zero, then apply_updates, with the
float0 gradients of ``jax.grad(..., allow_int=True)`` or with integer zeros.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from tests import reference as ref

F32 = jnp.float32
LR = 1e-2
STEPS = 5


def _params() -> dict:
    return {
        "w": jnp.asarray([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], F32),
        "b": jnp.asarray([0.1, -0.2, 0.3], F32),
        "step": jnp.asarray(7, jnp.int32),
        "flag": jnp.asarray(True),
    }


LABELS = {"w": "adam", "b": "adam", "step": "frozen", "flag": "frozen"}
X = jnp.asarray(np.random.default_rng(0).normal(size=(4, 2)), F32)


def _loss(params: dict) -> jax.Array:
    """Uses the counter and the flag, so that their float0 gradients are real."""
    scale = params["step"].astype(F32) * params["flag"].astype(F32) / 7.0
    return jnp.sum(jnp.tanh(X @ params["w"] + params["b"][None, :]) ** 2) * scale


def _optimizer() -> Any:
    return adamjax.partition({"adam": adamjax.adam(LR), "frozen": adamjax.set_to_zero()}, LABELS)


def _float_loss(floats: dict) -> jax.Array:
    return _loss({**floats, "step": jnp.asarray(7, jnp.int32), "flag": jnp.asarray(True)})


def _bits(x: Any) -> bytes:
    return np.asarray(x).tobytes()


@pytest.mark.parametrize("integer_grads", ["float0", "zeros"])
def test_partition_with_set_to_zero_trains_around_integer_leaves(integer_grads: str) -> None:
    optimizer = _optimizer()

    def grads_of(params: dict) -> dict:
        grads = jax.grad(_loss, allow_int=True)(params)
        if integer_grads == "zeros":  # a caller that hands in zeros of the leaves' dtypes
            grads = {**grads, "step": jnp.zeros((), jnp.int32), "flag": jnp.asarray(False)}
        return grads

    @jax.jit
    def step(params: dict, state: Any) -> tuple[dict, Any]:
        updates, state = optimizer.update(grads_of(params), state, params)
        return adamjax.apply_updates(params, updates), state

    alone = adamjax.adam(LR)  # plain Adam on the float leaves only

    @jax.jit
    def step_alone(floats: dict, state: Any) -> tuple[dict, Any]:
        updates, state = alone.update(jax.grad(_float_loss)(floats), state, floats)
        return adamjax.apply_updates(floats, updates), state

    params, state = _params(), optimizer.init(_params())
    floats = {"w": _params()["w"], "b": _params()["b"]}
    alone_state = alone.init(floats)
    for _ in range(STEPS):
        params, state = step(params, state)
        floats, alone_state = step_alone(floats, alone_state)
    assert params["step"].dtype == jnp.int32 and int(params["step"]) == 7
    assert params["flag"].dtype == jnp.bool_ and bool(params["flag"])
    for key in ("w", "b"):
        assert _bits(params[key]) == _bits(floats[key]), key
        assert not np.array_equal(params[key], _params()[key]), key  # they did train


def test_the_float_leaves_follow_the_float64_reference() -> None:
    optimizer = _optimizer()

    @jax.jit
    def step(params: dict, state: Any) -> tuple[dict, Any, dict]:
        grads = jax.grad(_loss, allow_int=True)(params)
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state, grads

    params, state = _params(), optimizer.init(_params())
    w_opt = ref.Adam(np.asarray(params["w"]), lr=LR)
    b_opt = ref.Adam(np.asarray(params["b"]), lr=LR)
    w, b = np.asarray(params["w"], np.float64), np.asarray(params["b"], np.float64)
    for _ in range(STEPS):
        params, state, grads = step(params, state)
        w = w_opt.step(w, np.asarray(grads["w"], np.float64))
        b = b_opt.step(b, np.asarray(grads["b"], np.float64))
        np.testing.assert_allclose(params["w"], w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(params["b"], b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_skip_nonfinite_around_the_partition_accepts_float0_gradients() -> None:
    optimizer = adamjax.skip_nonfinite(_optimizer(), check_state=True)
    params = _params()
    state = optimizer.init(params)
    grads = jax.grad(_loss, allow_int=True)(params)
    updates, state = jax.jit(optimizer.update)(grads, state, params)
    new = adamjax.apply_updates(params, updates)
    assert int(state.total_skips) == 0
    assert int(new["step"]) == 7 and bool(new["flag"])
    poisoned = {**grads, "b": grads["b"].at[0].set(jnp.nan)}
    updates, state = jax.jit(optimizer.update)(poisoned, state, params)
    assert int(state.total_skips) == 1
    np.testing.assert_array_equal(updates["w"], np.zeros((2, 3), np.float32))
