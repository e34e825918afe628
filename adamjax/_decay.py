r"""Weight decay: adding :math:`\lambda\,\theta` to the updates.

Where :func:`add_decayed_weights` stands in a chain decides what it means:

* after :func:`adamjax.normalize` (before the learning rate) it is *decoupled* weight decay
  (AdamW, Loshchilov & Hutter): :math:`\theta \leftarrow \theta - \alpha(\hat u + \lambda\theta)`;
* before :func:`adamjax.moments` it is *coupled* L2 regularisation, torch's
  ``Adam(weight_decay=...)``: :math:`g \leftarrow g + \lambda\theta` feeds the moments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp

from adamjax._base import (
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
)
from adamjax._estimates import expect_gradients
from adamjax._scale import ScheduleState, init_step_count, value_at_step
from adamjax._tree import (
    cast_hyperparameter,
    check_matching,
    compute_dtype,
    leafwise,
    map_leaves,
    real_dtype,
)
from adamjax._validate import hyperparameter, is_function

__all__ = ["Mask", "add_decayed_weights", "resolve_mask"]

Mask: TypeAlias = PerLeaf | Callable[[Any], PerLeaf] | None
"""Which leaves to decay: a pytree of bools with the params' structure, a callable
``params -> such a tree``, or ``None`` for every leaf."""


def resolve_mask(mask: Mask, params: Params) -> Any:
    """The tree of bools ``mask`` gives for ``params``, checked against them.

    Raises:
        ValueError: naming the path where the mask does not match the params.
        TypeError: naming the path of a mask leaf that is not a bool.
    """
    tree = mask(params) if is_function(mask) else mask
    check_matching(params, tree, other_name="mask", check_shapes=False)
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if not (isinstance(leaf, bool) or jnp.result_type(leaf) == jnp.bool_):
            raise TypeError(
                f"mask{jax.tree_util.keystr(path)} must be a bool (True: decay this leaf), "
                f"got {leaf!r}"
            )
    return tree


def _decay_leaf(u: jax.Array, p: jax.Array, wd: Any, keep: Any) -> jax.Array:
    """``u + wd * p`` where ``keep`` (a bool or a bool array), ``u`` elsewhere."""
    if keep is False or (isinstance(wd, (int, float)) and wd == 0):
        return u
    dtype = compute_dtype(u.dtype, p.dtype)
    decayed = u.astype(dtype) + cast_hyperparameter(wd, real_dtype(dtype)) * p.astype(dtype)
    if keep is not True:
        decayed = jnp.where(keep, decayed, u.astype(dtype))
    return decayed.astype(u.dtype)


def add_decayed_weights(
    weight_decay: PerLeafOrSchedule = 0.0, mask: Mask = None
) -> GradientTransformation:
    r"""Add decayed weights: :math:`u \leftarrow u + \lambda\,\theta`.

    Args:
        weight_decay: :math:`\lambda \ge 0`: a number, array, tracer or per-leaf tree, or a
            schedule ``count -> weight decay`` of the steps already taken (as in optax; the
            state then keeps the count).
        mask: which leaves to decay: a pytree of bools with the params' structure, or a
            callable ``params -> mask`` (e.g. ``lambda p: jax.tree.map(lambda x: x.ndim > 1, p)``
            to spare biases and norm scales). ``None`` decays every leaf.

    Returns:
        A :class:`adamjax.GradientTransformation` taking updates (and the params) and emitting
            updates with the decay added.

    Raises:
        ValueError: at ``update`` when ``params`` is not given, or the mask or updates do not
            match the params.
    """
    return add_decayed_weights_named(weight_decay, mask, "weight_decay")


def add_decayed_weights_named(
    weight_decay: PerLeafOrSchedule, mask: Mask, name: str
) -> GradientTransformation:
    """:func:`add_decayed_weights`, its errors naming the rate ``name`` (an alias's own argument).

    Args:
        weight_decay: as in :func:`add_decayed_weights`.
        mask: as in :func:`add_decayed_weights`.
        name: the argument's name in error messages.

    Returns:
        The :func:`add_decayed_weights` transform.
    """
    weight_decay = hyperparameter(name, weight_decay, schedule=True)

    def init_fn(params: Params) -> EmptyState | ScheduleState:
        if mask is not None:
            resolve_mask(mask, params)
        return init_step_count(weight_decay, params)

    def update_fn(
        updates: Updates,
        state: EmptyState | ScheduleState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState | ScheduleState]:
        expect_gradients(updates, "add_decayed_weights")
        if params is None:
            raise ValueError(
                "add_decayed_weights() needs the params: call update(grads, state, params)"
            )
        check_matching(params, updates, other_name="updates")
        keep = True if mask is None else resolve_mask(mask, params)
        keep_tree = leafwise(keep, params, "mask")
        rate, state = value_at_step(weight_decay, state, name)
        rates = leafwise(rate, params, name)
        return map_leaves(_decay_leaf, updates, params, rates, keep_tree), state

    return GradientTransformation(init_fn, update_fn)
