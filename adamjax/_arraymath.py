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
    "moving_average",
    "moving_average_square",
    "zeros_like_params",
]


def abs_square(g: jax.Array) -> jax.Array:
    """``|g|^2`` in ``g``'s compute dtype, real also for complex ``g``."""
    g = g.astype(compute_dtype(g.dtype))
    return (g * jnp.conj(g)).real if jnp.iscomplexobj(g) else g * g


def moving_average(g: jax.Array, old: jax.Array, decay: Any) -> jax.Array:
    """``decay * old + (1 - decay) * g`` in float32 or wider, stored in ``old``'s dtype."""
    dtype = compute_dtype(g.dtype, old.dtype)
    real = real_dtype(dtype)
    rest = one_minus(decay, real) * g.astype(dtype)
    new = rest + cast_hyperparameter(decay, real) * old.astype(dtype)
    return new.astype(old.dtype)


def moving_average_square(g: jax.Array, old: jax.Array, decay: Any) -> jax.Array:
    """``decay * old + (1 - decay) * |g|^2``, stored in ``old``'s (real) dtype."""
    dtype = compute_dtype(real_dtype(g.dtype), old.dtype)
    rest = one_minus(decay, dtype) * abs_square(g).astype(dtype)
    new = rest + cast_hyperparameter(decay, dtype) * old.astype(dtype)
    return new.astype(old.dtype)


def zeros_like_params(params: Any, dtype: Any = None, *, real: bool = False) -> Any:
    """Zeros shaped (and sharded) like each leaf of ``params``.

    ``dtype`` overrides the storage dtype; without it a leaf keeps its own dtype, or with
    ``real=True`` the dtype of a second moment (:func:`~adamjax._tree.second_moment_dtype`).
    """

    def zeros(p: jax.Array) -> jax.Array:
        own = second_moment_dtype(p.dtype) if real else p.dtype
        return jnp.zeros_like(p, dtype=dtype or own)  # zeros_like takes p's sharding

    return map_leaves(zeros, params)


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
