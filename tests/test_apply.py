"""apply_updates(): each param keeps its dtype, whatever the precision of its update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import adamjax

F32 = jnp.float32


def test_apply_updates_keeps_param_dtype() -> None:
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(3, jnp.float64)}
    updates = {"a": jnp.full(3, 0.25, jnp.float32), "b": jnp.full(3, 0.25, jnp.float32)}
    out = adamjax.apply_updates(params, updates)
    assert out["a"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(out["b"]), 1.25)


def test_float64_grads_for_float32_params_are_accepted() -> None:
    """Precision may differ: only the kind (float/complex) of a gradient is checked."""
    params = {
        "encoder": {"w": jnp.ones((2, 3), F32), "b": jnp.zeros(3, F32)},
        "head": jnp.ones(3, F32),
    }
    grads = jax.tree.map(lambda p: jnp.ones(p.shape, jnp.float64), params)
    optimizer = adamjax.adam(0.1)
    updates, state = optimizer.update(grads, optimizer.init(params), params)
    assert state[0].mu["head"].dtype == jnp.float32
    assert updates["head"].dtype == jnp.float64
    assert adamjax.apply_updates(params, updates)["head"].dtype == jnp.float32


def test_apply_updates_adds_an_integer_update_of_the_params_dtype() -> None:
    params = {"step": jnp.asarray(7, jnp.int32), "flag": jnp.asarray(False)}
    new = adamjax.apply_updates(
        params, {"step": jnp.asarray(2, jnp.int32), "flag": jnp.asarray(True)}
    )
    assert int(new["step"]) == 9 and new["step"].dtype == jnp.int32
    assert bool(new["flag"])
