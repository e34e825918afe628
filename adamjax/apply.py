r"""Applying updates to params: :math:`\theta \leftarrow \theta + u`."""

from __future__ import annotations

import jax

from adamjax.base import Params, Updates
from adamjax.moments import Moments
from adamjax.tree import check_gradient_dtypes, check_matching, compute_dtype, map_leaves

__all__ = ["apply_updates"]


def apply_updates(params: Params, updates: Updates) -> Params:
    r"""Return :math:`\theta + u`, leaf by leaf, each in its param's dtype.

    The sum is formed in float32 or wider, then cast to the param's dtype (so bfloat16 params
    receive a correctly rounded sum).

    Raises:
        TypeError: if ``updates`` are moment estimates (the chain lacks ``normalize()``).
        ValueError: naming the path where ``updates`` and ``params`` differ.
        TypeError: naming the path and both dtypes where an update is not floating-point, or
            is complex for a real param.
    """
    if isinstance(updates, Moments):
        raise TypeError(
            "apply_updates() received moment estimates: end the chain with normalize() and a "
            "learning rate before applying it"
        )
    check_matching(params, updates, other_name="updates")
    check_gradient_dtypes(params, updates, other_name="updates")

    def add(p: jax.Array, u: jax.Array) -> jax.Array:
        dtype = compute_dtype(p.dtype, u.dtype)
        return (p.astype(dtype) + u.astype(dtype)).astype(p.dtype)

    return map_leaves(add, params, updates)
