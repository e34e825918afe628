"""bias_correction(): the factors 1 - b^t, up to the largest step count."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import adamjax
from tests import reference as ref

INT32_MAX = np.iinfo(np.int32).max


def test_adam_at_the_int32_limit_is_the_uncorrected_rule() -> None:
    """At t = 2^31 - 1, 1 - b^t = 1: bias correction is the identity, exactly and finitely."""
    params = np.zeros(5)
    optimizer = adamjax.adam(0.01)
    state = optimizer.init(jnp.asarray(params))
    state = (state[0]._replace(count=jnp.asarray(INT32_MAX - 2, jnp.int32)), *state[1:])
    reference = ref.AdamUncorrected(params, lr=0.01)
    mine, expected = jnp.asarray(params), params
    rng = np.random.default_rng(2)
    for _ in range(6):
        g = np.exp(rng.normal()) * rng.normal(size=5) + 0.1
        updates, state = optimizer.update(jnp.asarray(g), state, mine)
        mine = adamjax.apply_updates(mine, updates)
        expected = reference.step(expected, g)
        np.testing.assert_allclose(np.asarray(mine), expected, rtol=1e-12, atol=1e-14)
    assert int(state[0].count) == INT32_MAX
