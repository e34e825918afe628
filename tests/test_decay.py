"""add_decayed_weights(): its place in the chain decides coupled or decoupled decay; masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import adamjax

PARAMS = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
GRADS = {"w": jnp.full((2, 3), 0.5, jnp.float32), "b": jnp.full(3, -2.0, jnp.float32)}


def _one_step(transform: adamjax.GradientTransformation) -> dict[str, jax.Array]:
    return transform.update(GRADS, transform.init(PARAMS), PARAMS)[0]


def test_coupled_and_decoupled_weight_decay_differ_by_position() -> None:
    decoupled = _one_step(adamjax.adamw(0.1, weight_decay=0.5))
    coupled = _one_step(adamjax.chain(adamjax.add_decayed_weights(0.5), adamjax.adam(0.1)))
    # decoupled: -lr * (sign(g) + wd * w); coupled: first step is -lr * sign(g + wd * w)
    np.testing.assert_allclose(decoupled["w"], -0.1 * (1.0 + 0.5), rtol=1e-5)
    np.testing.assert_allclose(coupled["w"], -0.1, rtol=1e-5)


def test_weight_decay_mask_tree_and_callable() -> None:
    mask = {"w": True, "b": False}
    by_tree = _one_step(adamjax.adamw(0.1, weight_decay=0.5, mask=mask))
    by_fn = _one_step(
        adamjax.adamw(0.1, weight_decay=0.5, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
    )
    for updates in (by_tree, by_fn):
        np.testing.assert_allclose(updates["w"], -0.15, rtol=1e-5)
        np.testing.assert_allclose(updates["b"], 0.1, rtol=1e-5)
