r"""Applying updates to params: :math:`\theta \leftarrow \theta + u`."""

from __future__ import annotations

from typing import Any, TypeVar

import jax
import jax.numpy as jnp

from adamjax._base import Params, Updates
from adamjax._estimates import Moments
from adamjax._tree import check_gradient_dtypes, check_matching, compute_dtype, map_leaves

__all__ = ["apply_updates"]

ParamsT = TypeVar("ParamsT", bound=Params)


def _is_discrete(leaf: Any) -> bool:
    """Whether ``leaf`` is an integer or boolean array (a counter, a flag)."""
    return not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def _is_float0(leaf: Any) -> bool:
    return jnp.result_type(leaf) == jax.dtypes.float0


def _check_discrete_updates(params: Params, updates: Updates) -> None:
    """Raise unless every integer or boolean param gets an update of its own dtype or float0."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    for (path, p), u in zip(leaves, jax.tree.structure(params).flatten_up_to(updates), strict=True):
        if not _is_discrete(p) or _is_float0(u):
            continue
        own, got = jnp.result_type(p), jnp.result_type(u)
        if got != own:
            where = jax.tree_util.keystr(path)
            raise TypeError(
                f"updates{where} has dtype {got}, but params{where} has dtype {own}: an integer "
                "or boolean param takes an update of its own dtype or float0 (label it for "
                "set_to_zero() in a partition to keep it unchanged)"
            )


def _float_part(tree: Any, params: Params) -> Any:
    """``tree`` with ``None`` where the param is an integer or boolean leaf."""
    treedef = jax.tree.structure(params)
    chosen = [
        None if _is_discrete(p) else leaf
        for p, leaf in zip(jax.tree.leaves(params), treedef.flatten_up_to(tree), strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, chosen)


def _add(p: Any, u: Any) -> jax.Array:
    """One leaf of :math:`\\theta + u`, in the param's dtype."""
    if _is_float0(u):  # the gradient of an integer param: no value, nothing to add
        return jnp.asarray(p)
    if _is_discrete(p):
        return jnp.add(p, u)  # own dtype (checked): a zero update leaves the param unchanged
    dtype = compute_dtype(p.dtype, u.dtype)
    return (p.astype(dtype) + u.astype(dtype)).astype(p.dtype)


def apply_updates(params: ParamsT, updates: Updates) -> ParamsT:
    r"""Return :math:`\theta + u`, leaf by leaf, each in its param's dtype.

    The sum is formed in float32 or wider, then cast to the param's dtype (so bfloat16 params
    receive a correctly rounded sum).

    Integer and boolean params (step counters, flags) take an update of their own dtype, added
    as ``jnp.add`` does (a zero update, as :func:`adamjax.set_to_zero` returns, leaves them
    unchanged), or a ``float0`` update (the gradient ``jax.grad(..., allow_int=True)`` gives an
    integer param), which leaves them unchanged.

    Args:
        params: the params, a pytree of arrays.
        updates: updates of the same structure, as an optimizer's ``update`` returns them.

    Returns:
        The new params, with the structure, shapes and dtypes of ``params``.

    Raises:
        TypeError: if ``updates`` are moment estimates (the chain lacks ``normalize()``).
        ValueError: naming the path where ``updates`` and ``params`` differ.
        TypeError: naming the path and both dtypes where the update of a floating-point param
            is not floating-point, is complex for a real param, or where the update of an
            integer or boolean param is neither of its dtype nor ``float0``.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.ones(2), "step": jnp.asarray(3, jnp.int32)}
        >>> updates = {"w": jnp.full(2, -0.5), "step": jnp.asarray(0, jnp.int32)}
        >>> new = adamjax.apply_updates(params, updates)
        >>> new["w"], new["step"]
        (Array([0.5, 0.5], dtype=float32), Array(3, dtype=int32))
    """
    if isinstance(updates, Moments):
        raise TypeError(
            "apply_updates() received moment estimates: end the chain with normalize() and a "
            "learning rate before applying it"
        )
    check_matching(params, updates, other_name="updates")
    check_gradient_dtypes(
        _float_part(params, params), _float_part(updates, params), other_name="updates"
    )
    _check_discrete_updates(params, updates)
    return map_leaves(_add, params, updates)
