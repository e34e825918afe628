r"""Block-wise root mean square transforms: each leaf (a "block") scaled by its own RMS.

.. math::
    \operatorname{rms}(x) = \sqrt{\operatorname{mean}_i |x_i|^2}

Adafactor clips its updates by their RMS and scales them by the params' RMS; both blocks work on
any gradient or update tree.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._arraymath import abs_square
from adamjax._base import (
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    Updates,
    init_empty_state,
)
from adamjax._estimates import expect_gradients
from adamjax._tree import (
    cast_hyperparameter,
    check_matching,
    compute_dtype,
    leafwise,
    map_leaves,
    real_dtype,
)
from adamjax._validate import hyperparameter

__all__ = ["clip_by_block_rms", "clip_by_block_rms_named", "scale_by_param_block_rms"]


def _block_rms(x: jax.Array) -> jax.Array:
    """``sqrt(mean(|x|^2))`` over the whole leaf, in float32 or wider."""
    return jnp.sqrt(jnp.mean(abs_square(x)))


def clip_by_block_rms(threshold: PerLeaf) -> GradientTransformation:
    r"""Shrink each leaf whose root mean square exceeds ``threshold``.

    .. math::
        u \leftarrow \frac{u}{\max\left(1, \operatorname{rms}(u) / d\right)}, \qquad
        \operatorname{rms}(u) = \sqrt{\operatorname{mean}_i |u_i|^2}

    over each whole leaf (a "block"), as optax's ``clip_by_block_rms``; Adafactor's update
    clipping with :math:`d` = ``threshold``. Takes gradients or updates.

    Args:
        threshold: :math:`d > 0`, the largest root mean square a leaf keeps: one value, or a
            tree with the params' structure giving each leaf its own.

    Returns:
        A :class:`adamjax.GradientTransformation` with no state.

    Raises:
        ValueError: naming the argument, for a negative threshold; at ``update``, naming the
            path, for a per-leaf tree that does not match the updates.
    """
    return clip_by_block_rms_named(threshold, "threshold")


def _clip_leaf(u: jax.Array, threshold: Any) -> jax.Array:
    """``u / max(1, rms(u) / threshold)``, computed in float32 or wider."""
    dtype = compute_dtype(u.dtype)
    rms = _block_rms(u).astype(real_dtype(dtype))
    divisor = jnp.maximum(1.0, rms / cast_hyperparameter(threshold, real_dtype(dtype)))
    return (u.astype(dtype) / divisor.astype(dtype)).astype(u.dtype)


def clip_by_block_rms_named(threshold: PerLeaf, name: str) -> GradientTransformation:
    """:func:`clip_by_block_rms`, its errors naming the threshold ``name`` (an alias's own).

    Args:
        threshold: as in :func:`clip_by_block_rms`.
        name: the argument's name in error messages.

    Returns:
        The :func:`clip_by_block_rms` transform.
    """
    threshold = hyperparameter(name, threshold)

    def update_fn(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_gradients(updates, "clip_by_block_rms")
        return map_leaves(_clip_leaf, updates, leafwise(threshold, updates, name)), state

    return GradientTransformation(init_empty_state, update_fn)


def scale_by_param_block_rms(min_scale: PerLeaf = 1e-3) -> GradientTransformation:
    r"""Multiply each leaf's update by the root mean square of its param, at least ``min_scale``.

    .. math::
        u \leftarrow \max\left(\operatorname{rms}(\theta), s\right) u

    over each whole leaf, as optax's ``scale_by_param_block_rms``: Adafactor's relative step
    size, so that the learning rate is a fraction of the param's scale.

    Args:
        min_scale: :math:`s \ge 0`, the smallest factor: one value, or a tree with the params'
            structure giving each leaf its own.

    Returns:
        A :class:`adamjax.GradientTransformation` with no state.

    Raises:
        ValueError: naming the argument, for a negative value; at ``update``, when the params
            are not given or do not match the updates.
    """
    min_scale = hyperparameter("min_scale", min_scale)

    def scale_leaf(u: jax.Array, p: jax.Array, low: Any) -> jax.Array:
        dtype = compute_dtype(u.dtype, p.dtype)
        real = real_dtype(dtype)
        low = cast_hyperparameter(low, real)
        factor = jnp.maximum(_block_rms(p).astype(real), low)
        return (u.astype(dtype) * factor.astype(dtype)).astype(u.dtype)

    def update_fn(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        expect_gradients(updates, "scale_by_param_block_rms")
        if params is None:
            raise ValueError(
                "scale_by_param_block_rms() needs the params: call update(grads, state, params)"
            )
        check_matching(params, updates, other_name="updates")
        lows = leafwise(min_scale, params, "min_scale")
        return map_leaves(scale_leaf, updates, params, lows), state

    return GradientTransformation(init_empty_state, update_fn)
