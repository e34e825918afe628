"""The one place that walks pytrees: matching structures, per-leaf values, dtypes, counters.

Every transform maps its per-array rule over trees through :func:`map_leaves`, after checking
with :func:`check_matching` that the trees agree. A mismatch is reported in the user's terms,
naming the path, e.g. ``grads['encoder']['extra'] is not in params``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_float_leaves",
    "cast_hyperparameter",
    "check_matching",
    "compute_dtype",
    "leafwise",
    "map_leaves",
    "one_minus",
    "real_dtype",
    "saturating_increment",
]

_INT32_MAX = np.iinfo(np.int32).max


def _paths(tree: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def check_matching(
    reference: Any,
    other: Any,
    *,
    reference_name: str = "params",
    other_name: str = "grads",
    check_shapes: bool = True,
) -> None:
    """Raise if ``other`` does not have the structure (and leaf shapes) of ``reference``.

    Raises:
        ValueError: naming the first path present in one tree but not the other, or the first
            leaf whose shape differs, with both shapes.
    """
    ref_def = jax.tree_util.tree_structure(reference)
    other_def = jax.tree_util.tree_structure(other)
    ref_paths, other_paths = _paths(reference), _paths(other)
    if ref_def != other_def:
        extra = [p for p in other_paths if p not in ref_paths]
        if extra:
            raise ValueError(f"{other_name}{extra[0]} is not in {reference_name}")
        missing = [p for p in ref_paths if p not in other_paths]
        if missing:
            raise ValueError(f"{reference_name}{missing[0]} has no entry in {other_name}")
        raise ValueError(
            f"{other_name} has tree structure {other_def}, "
            f"but {reference_name} has tree structure {ref_def}"
        )
    if not check_shapes:
        return
    for path, ref_leaf in ref_paths.items():
        ref_shape, other_shape = jnp.shape(ref_leaf), jnp.shape(other_paths[path])
        if ref_shape != other_shape:
            raise ValueError(
                f"{other_name}{path} has shape {other_shape}, "
                f"but {reference_name}{path} has shape {ref_shape}"
            )


def _is_container(value: Any) -> bool:
    return not jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(value))


def leafwise(value: Any, tree: Any, name: str) -> Any:
    """A tree with the structure of ``tree`` holding ``value`` for each leaf.

    ``value`` is either one number, array or tracer (shared by every leaf) or a pytree with the
    structure of ``tree`` (one value per leaf: per-leaf hyperparameters).
    """
    if not _is_container(value):
        return jax.tree.map(lambda _: value, tree)
    check_matching(tree, value, reference_name="params", other_name=name, check_shapes=False)
    return value


def map_leaves(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``jax.tree.map`` over trees already known to match (``None`` leaves stay ``None``)."""
    return jax.tree.map(fn, tree, *rest)


def check_float_leaves(params: Any, name: str = "params") -> None:
    """Reject integer and boolean leaves: adamjax optimizes floating and complex arrays only."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{name}{jax.tree_util.keystr(path)} has dtype {dtype}; adamjax optimizes "
                "floating-point and complex leaves only (keep integer and boolean values out "
                "of the optimized tree, or mark them with a parameter-group label)"
            )


def real_dtype(dtype: Any) -> np.dtype:
    """The real dtype of the same width: ``complex64 -> float32``, floats unchanged."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jnp.finfo(dtype).dtype
    return dtype


def compute_dtype(*dtypes: Any) -> np.dtype:
    """The dtype arithmetic runs in: the widest of ``dtypes`` and float32.

    Low-precision leaves (bfloat16, float16) are computed in float32 and cast back, so that
    ``eps`` and the bias-correction factors never underflow.
    """
    bits = 32
    is_complex = False
    for dtype in map(jnp.dtype, dtypes):
        if jnp.issubdtype(dtype, jnp.inexact):
            bits = max(bits, jnp.finfo(dtype).bits)
        is_complex = is_complex or jnp.issubdtype(dtype, jnp.complexfloating)
    if is_complex:
        return jnp.dtype(jnp.complex128 if bits == 64 else jnp.complex64)
    return jnp.dtype(jnp.float64 if bits == 64 else jnp.float32)


def saturating_increment(count: jax.Array) -> jax.Array:
    """``count + 1``, staying at the int32 maximum instead of wrapping around."""
    return jnp.where(count < _INT32_MAX, count + jnp.ones_like(count), count)


def cast_hyperparameter(value: Any, dtype: Any) -> Any:
    """``value`` in ``dtype``: Python numbers stay weakly typed, arrays and tracers are cast."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return jnp.asarray(value).astype(dtype)


def one_minus(value: Any, dtype: Any) -> Any:
    """``1 - value`` computed before any cast to ``dtype`` (exact for Python numbers)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 1.0 - value
    value = jnp.asarray(value)
    return (jnp.ones_like(value) - value).astype(dtype)
