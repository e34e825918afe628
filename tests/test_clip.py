"""clip() and clip_by_global_norm(): bit for bit optax's, and the definition in float64."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def _grads(seed: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.asarray(rng.normal(size=2))}


def _mixed_tree(seed: int, scale: float) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "a": jnp.asarray(scale * rng.normal(size=(5, 3))),
        "b": [jnp.asarray(scale * rng.normal(size=7)), jnp.asarray(scale * rng.normal(size=()))],
        "c": jnp.asarray(scale * rng.normal(size=4), jnp.float32),
        "z": jnp.asarray(scale * (rng.normal(size=3) + 1j * rng.normal(size=3))),
    }


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.parametrize("scale", [1e-3, 0.3, 1.0, 30.0])
@pytest.mark.parametrize("limit", [0.5, 2.0])
def test_clip_by_global_norm_is_bitwise_optax(scale: float, limit: float) -> None:
    tree = _mixed_tree(0, scale)
    ours, _ = adamjax.clip_by_global_norm(limit).update(tree, adamjax.EmptyState())
    theirs, _ = optax.clip_by_global_norm(limit).update(tree, optax.EmptyState())
    chex.assert_trees_all_equal(ours, theirs, strict=True)
    # and against the definition, in float64
    leaves = [np.asarray(x, np.complex128) for x in jax.tree.leaves(tree)]
    norm = np.sqrt(sum(np.sum(np.abs(x) ** 2) for x in leaves))
    factor = 1.0 if norm < limit else limit / norm
    for a, x in zip(jax.tree.leaves(ours), leaves, strict=True):
        np.testing.assert_allclose(np.asarray(a, np.complex128), factor * x, rtol=1e-6)
    np.testing.assert_allclose(float(adamjax.global_norm(tree)), norm, rtol=1e-6)


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.parametrize("delta", [0.1, 1.0])
def test_clip_is_bitwise_optax(delta: float) -> None:
    tree = {k: v for k, v in _mixed_tree(1, 1.0).items() if k != "z"}
    ours, _ = adamjax.clip(delta).update(tree, adamjax.EmptyState())
    theirs, _ = optax.clip(delta).update(tree, optax.EmptyState())
    chex.assert_trees_all_equal(ours, theirs)
    chex.assert_trees_all_equal(
        ours, jax.tree.map(lambda x: np.clip(np.asarray(x), -delta, delta), tree)
    )


@pytest.mark.usefixtures("standard_promotion")
def test_clip_by_global_norm_before_adamw_matches_optax_under_jit() -> None:
    ours = adamjax.chain(adamjax.clip_by_global_norm(1.0), adamjax.adamw(1e-2, weight_decay=0.1))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=0.1))
    big = [jax.tree.map(lambda g: 10.0 * g, _grads(s)) for s in range(10)]

    def run(optimizer: Any) -> Any:
        @jax.jit
        def step(params: Any, state: Any, grads: Any) -> Any:
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        params, state = PARAMS, optimizer.init(PARAMS)
        for g in big:
            params, state = step(params, state, g)
        return params

    chex.assert_trees_all_close(run(ours), run(theirs), rtol=1e-6)
