"""scale_by_learning_rate(): a schedule sees the number of steps already taken."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import adamjax

PARAMS = {"w": jnp.ones(3), "b": jnp.zeros(2)}


def _grads(seed: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=3)), "b": jnp.asarray(rng.normal(size=2))}


def test_schedule_sees_count_before_increment_and_bias_correction_sees_t() -> None:
    seen = []

    def schedule(count: jax.Array) -> float:
        seen.append(int(count))
        return 0.1

    opt = adamjax.adam(schedule)
    state = opt.init(PARAMS)
    for i in range(3):
        _, state = opt.update(_grads(i), state, PARAMS)
    assert seen == [0, 1, 2]
    assert int(state[0].count) == 3  # the moments' t after three updates
