"""The moment estimators: moments() and max_second_moment(), what they emit, store and where the
maximum sits in the chain."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest

import adamjax

PARAMS = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
GRADS = {"w": jnp.full((2, 3), 0.5, jnp.float32), "b": jnp.full(3, -2.0, jnp.float32)}


def test_moments_emits_moments_and_state_is_namedtuple_of_arrays() -> None:
    block = adamjax.moments(0.9, 0.99)
    estimates, state = block.update(GRADS, block.init(PARAMS), PARAMS)
    assert isinstance(estimates, adamjax.Moments)
    assert isinstance(state, adamjax.MomentsState)
    chex.assert_trees_all_close(estimates.mu, {"w": 0.1 * 0.5, "b": 0.1 * -2.0}, rtol=1e-6)
    chex.assert_trees_all_close(estimates.nu, {"w": 0.01 * 0.25, "b": 0.01 * 4.0}, rtol=1e-6)
    assert int(estimates.count) == 1
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(state))


@pytest.mark.parametrize("low", ["bfloat16", "float16"])
def test_default_moment_dtypes(low: str) -> None:
    """mu follows the params; nu too, except for float16, whose range cannot hold g^2."""
    dtype = jnp.dtype(low)
    params = {"w": jnp.zeros(3, dtype)}
    state = adamjax.adam(1e-3).init(params)
    assert state[0].mu["w"].dtype == dtype
    assert state[0].nu["w"].dtype == (jnp.float32 if low == "float16" else dtype)
    mixed = adamjax.adamw(1e-3, mu_dtype=jnp.bfloat16, nu_dtype=jnp.float32).init(params)
    assert mixed[0].mu["w"].dtype == jnp.bfloat16
    assert mixed[0].nu["w"].dtype == jnp.float32


def test_bfloat16_moments_halve_state_memory() -> None:
    params = {"w": jnp.zeros((64, 64), jnp.float32)}
    full = adamjax.adam(0.1).init(params)
    half = adamjax.adam(0.1, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16).init(params)

    def size(tree: object) -> int:
        return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))

    assert size(half) * 2 == size(full) + 4  # the int32 counter is not halved


def _last_update(optimizer: adamjax.GradientTransformation, grads: list[jax.Array]) -> float:
    x = jnp.zeros(1)
    state = optimizer.init(x)
    updates = jnp.zeros(1)
    for g in grads:
        updates, state = optimizer.update(g, state, x)
    return float(updates[0])


def test_max_second_moment_position_picks_the_convention() -> None:
    """After bias_correction() the maximum is over the corrected v (the paper, optax's amsgrad);
    before it, over the raw v (torch's amsgrad=True): the two give different steps."""
    grads = [jnp.asarray([3.0]), jnp.asarray([0.1]), jnp.asarray([0.1])]
    paper = adamjax.amsgrad(1.0, eps=0.0)
    torch_like = adamjax.chain(
        adamjax.moments(),
        adamjax.max_second_moment(),
        adamjax.bias_correction(),
        adamjax.normalize(0.0),
        adamjax.scale_by_learning_rate(1.0),
    )
    assert _last_update(paper, grads) != pytest.approx(_last_update(torch_like, grads), rel=1e-3)
