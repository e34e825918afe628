"""normalize(): m / (sqrt(v + eps_root) + eps), divided in float32 for low-precision moments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamjax


def test_float16_zero_gradient_steps_stay_finite_where_optax_goes_nan() -> None:
    """optax #1754 / #1784: eps = 1e-8 rounds to 0 in float16, and 0 / (sqrt(0) + 0) is NaN.

    adamjax divides in float32 (see ``normalize``), so a zero gradient gives a zero update.
    """
    params = {"w": jnp.ones(4, jnp.float16)}
    grads = {"w": jnp.zeros(4, jnp.float16)}
    ours = adamjax.adam(1e-3)
    state = ours.init(params)
    for _ in range(3):
        updates, state = ours.update(grads, state, params)
        assert updates["w"].dtype == jnp.float16
        np.testing.assert_array_equal(np.asarray(updates["w"]), np.zeros(4, np.float16))
    assert np.float16(1e-8) == 0.0  # the cause: eps does not exist in float16
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        theirs = optax.adam(1e-3)
        their_updates, _ = theirs.update(grads, theirs.init(params), params)
    [their] = [np.asarray(leaf) for leaf in jax.tree.leaves(their_updates)]
    # optax 0.2.8 gives NaN here; if a later optax fixes it, both must agree on zero
    assert np.all(np.isnan(their)) or np.all(their == 0.0)
