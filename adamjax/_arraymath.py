r"""The per-array arithmetic every stage shares, written once.

Each function works on one array (one leaf) and follows the same precision rule: arithmetic
runs in :func:`~adamjax._tree.compute_dtype` (float32 or wider) and the result is stored in the
dtype of the state it replaces, so ``eps`` and ``1 - b`` never underflow for 16-bit params.

.. math::
    \mathrm{ema}(x, g; b) = b\,x + (1 - b)\,g, \qquad
    |g|^2 = g \bar g \ (\text{real for complex } g), \qquad
    d(v) = \sqrt{v + \epsilon_{root}} + \epsilon
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._blockwise import BlockwiseInt8, QuantizedBlocks
from adamjax._blockwise import moving_average as blockwise_moving_average
from adamjax._blockwise import moving_average_square as blockwise_moving_average_square
from adamjax._blockwise import running_max as blockwise_running_max
from adamjax._blockwise import zeros_like_params as blockwise_zeros_like_params
from adamjax._tree import (
    cast_hyperparameter,
    compute_dtype,
    map_leaves,
    one_minus,
    real_dtype,
    second_moment_dtype,
)

__all__ = [
    "abs_square",
    "denominator",
    "full_like_params",
    "interpolate",
    "moving_average",
    "moving_average_kept",
    "moving_average_square",
    "moving_average_square_kept",
    "nesterov_look_ahead",
    "running_max_kept",
    "zeros_like_params",
]


def abs_square(g: jax.Array) -> jax.Array:
    """``|g|^2`` in ``g``'s compute dtype, real also for complex ``g``."""
    g = g.astype(compute_dtype(g.dtype))
    return (g * jnp.conj(g)).real if jnp.iscomplexobj(g) else g * g


def real_product(u: jax.Array, g: jax.Array, dtype: Any) -> jax.Array:
    r"""``Re(u * conj(g))`` in ``dtype``: each coordinate's share of :math:`\langle u, g\rangle`."""
    product = u.astype(dtype) * jnp.conj(g.astype(dtype))
    return product.real if jnp.iscomplexobj(product) else product


def interpolate(g: jax.Array, old: jax.Array, weight: Any) -> jax.Array:
    """``weight * old + (1 - weight) * g`` in float32 or wider, not cast back."""
    dtype = compute_dtype(g.dtype, old.dtype)
    real = real_dtype(dtype)
    rest = one_minus(weight, real) * g.astype(dtype)
    return rest + cast_hyperparameter(weight, real) * old.astype(dtype)


def moving_average(g: jax.Array, old: jax.Array, decay: Any) -> jax.Array:
    """``decay * old + (1 - decay) * g`` (:func:`interpolate`), stored in ``old``'s dtype."""
    return interpolate(g, old, decay).astype(old.dtype)


def nesterov_look_ahead(
    m: jax.Array, g: jax.Array, b1: Any, weights: tuple[jax.Array, jax.Array] | None = None
) -> jax.Array:
    r"""Nesterov's look-ahead first moment (NAdam), in float32 or wider.

    .. math::
        \tilde m_t = \frac{b_1 m_t}{w_{t+1}} + \frac{(1 - b_1)\, g_t}{w_t}

    with :math:`w = 1` for the moving average as it is (``weights=None``) and, bias-corrected,
    ``weights`` :math:`= (w_{t+1}, w_t)` with :math:`w_k = 1 - b_1^k`, the weight the average
    carries after :math:`k` steps (Dozat, 2016).
    """
    dtype = compute_dtype(m.dtype, g.dtype)
    real = real_dtype(dtype)
    decay = cast_hyperparameter(b1, real)
    rest = one_minus(b1, real)
    if weights is not None:
        ahead, now = weights
        decay, rest = (decay / ahead).astype(dtype), (rest / now).astype(dtype)
    return decay * m.astype(dtype) + rest * g.astype(dtype)


def moving_average_square(g: jax.Array, old: jax.Array, decay: Any) -> jax.Array:
    """``decay * old + (1 - decay) * |g|^2``, stored in ``old``'s (real) dtype."""
    dtype = compute_dtype(real_dtype(g.dtype), old.dtype)
    rest = one_minus(decay, dtype) * abs_square(g).astype(dtype)
    new = rest + cast_hyperparameter(decay, dtype) * old.astype(dtype)
    return new.astype(old.dtype)


def moving_average_kept(
    g: jax.Array, old: Any, decay: Any, fmt: Any = None, step: Any = 0
) -> tuple[Any, Any]:
    """:func:`moving_average` and what the state keeps of it: the same array, or 8-bit blocks
    (:func:`adamjax.blockwise_int8` ``fmt``, rounded with the dither of ``step``) where ``old``
    is stored in them."""
    if isinstance(old, QuantizedBlocks):
        return blockwise_moving_average(g, old, decay, fmt, step)
    new = moving_average(g, old, decay)
    return new, new


def moving_average_square_kept(
    g: jax.Array, old: Any, decay: Any, fmt: Any = None, step: Any = 0
) -> tuple[Any, Any]:
    """:func:`moving_average_square` and what the state keeps of it, as in
    :func:`moving_average_kept`."""
    if isinstance(old, QuantizedBlocks):
        return blockwise_moving_average_square(g, old, decay, fmt, step)
    new = moving_average_square(g, old, decay)
    return new, new


def running_max_kept(v: jax.Array, old: Any, fmt: Any = None) -> tuple[Any, Any]:
    """``max(old, v)`` in float32 or wider, and what the state keeps of it: that maximum in
    ``old``'s dtype, or 8-bit blocks where ``old`` is stored in them."""
    if isinstance(old, QuantizedBlocks):
        return blockwise_running_max(v, old, fmt)
    dtype = compute_dtype(v.dtype, old.dtype)
    new = jnp.maximum(old.astype(dtype), v.astype(dtype))
    return new, new.astype(old.dtype)


def zeros_like_params(params: Any, dtype: Any = None, *, real: bool = False) -> Any:
    """Zeros shaped (and sharded) like each leaf of ``params``.

    ``dtype`` overrides the storage dtype; without it a leaf keeps its own dtype, or with
    ``real=True`` the dtype of a second moment (:func:`~adamjax._tree.second_moment_dtype`).
    A :func:`adamjax.blockwise_int8` format stores large leaves in 8-bit blocks (int8 codes, or
    uint8 with ``real=True``) and the others in float32.
    """
    if isinstance(dtype, BlockwiseInt8):
        return blockwise_zeros_like_params(params, dtype, signed=not real)

    def zeros(p: jax.Array) -> jax.Array:
        own = second_moment_dtype(p.dtype) if real else p.dtype
        return jnp.zeros_like(p, dtype=dtype or own)  # zeros_like takes p's sharding

    return map_leaves(zeros, params)


def full_like_params(params: Any, values: Any, *, real: bool = False) -> Any:
    """Arrays shaped (and sharded) like each leaf of ``params``, filled with the matching leaf
    of ``values`` (a tree from :func:`~adamjax._tree.leafwise`), in the leaf's dtype or, with
    ``real=True``, in the dtype of a second moment."""

    def full(p: jax.Array, value: Any) -> jax.Array:
        dtype = second_moment_dtype(p.dtype) if real else p.dtype
        return jnp.full_like(p, cast_hyperparameter(value, real_dtype(dtype)), dtype=dtype)

    return map_leaves(full, params, values)


def denominator(
    v: jax.Array, eps: Any, eps_root: Any = 0.0, *, root: bool = True, dtype: Any = None
) -> jax.Array:
    """Adam's normalizing denominator ``sqrt(v + eps_root) + eps``.

    With ``root=False`` (an infinity norm, Adamax) it is ``v + eps``. It is computed in the real
    part of ``dtype`` (default: ``v``'s compute dtype). The step size of a parameter is
    ``lr / denominator(v, eps, eps_root)``.
    """
    real = real_dtype(dtype if dtype is not None else compute_dtype(v.dtype))
    v = v.astype(real)
    size = jnp.sqrt(v + cast_hyperparameter(eps_root, real)) if root else v
    return size + cast_hyperparameter(eps, real)
