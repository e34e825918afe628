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
    "check_gradient_dtypes",
    "check_matching",
    "compute_dtype",
    "leafwise",
    "map_leaves",
    "one_minus",
    "real_dtype",
    "saturating_increment",
    "second_moment_dtype",
    "unzip",
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
        for path in extra:
            _check_leaf_against_subtree(path, ref_paths, other_name, reference_name)
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


def _check_leaf_against_subtree(
    path: str, ref_paths: dict[str, Any], other_name: str, reference_name: str
) -> None:
    """Raise if ``path`` (a leaf of the other tree) is a subtree of, or inside a leaf of, ref."""
    for ref_path in ref_paths:
        if ref_path.startswith(path) and ref_path[len(path)] in "[.":
            raise ValueError(
                f"{other_name}{path} is a single leaf, but {reference_name}{path} is a subtree "
                f"(holding {reference_name}{ref_path})"
            )
        if path.startswith(ref_path) and path[len(ref_path)] in "[.":
            raise ValueError(
                f"{other_name}{ref_path} is a subtree (holding {other_name}{path}), but "
                f"{reference_name}{ref_path} is a single leaf"
            )


def check_gradient_dtypes(
    reference: Any,
    other: Any,
    *,
    reference_name: str = "params",
    other_name: str = "grads",
    check_complex: bool = True,
) -> None:
    """Raise if a leaf of ``other`` cannot be a gradient for the same leaf of ``reference``.

    The trees must already match (:func:`check_matching`). Every leaf of ``other`` must be
    floating or complex, and (with ``check_complex``) complex only where ``reference`` is
    complex. Precision may differ (float64 gradients for float32 state are computed in float64
    and stored in float32).

    Raises:
        TypeError: naming the first offending path and both dtypes.
    """
    ref_paths = _paths(reference)
    for path, leaf in _paths(other).items():
        dtype = jnp.result_type(leaf)
        ref_dtype = jnp.result_type(ref_paths[path])
        if not jnp.issubdtype(dtype, jnp.inexact):
            shown = "float0" if dtype == jax.dtypes.float0 else dtype  # jax.grad of an int
            raise TypeError(
                f"{other_name}{path} has dtype {shown}, but {reference_name}{path} has dtype "
                f"{ref_dtype}: {other_name} must be floating-point or complex"
            )
        if (
            check_complex
            and jnp.issubdtype(dtype, jnp.complexfloating)
            and not jnp.issubdtype(ref_dtype, jnp.complexfloating)
        ):
            raise TypeError(
                f"{other_name}{path} has dtype {dtype}, but {reference_name}{path} has dtype "
                f"{ref_dtype}: complex {other_name} need a complex parameter"
            )


def _is_container(value: Any) -> bool:
    return not jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(value))


def leafwise(value: Any, tree: Any, name: str) -> Any:
    """A tree with the structure of ``tree`` holding ``value`` for each leaf.

    ``value`` is either one number, array or tracer (shared by every leaf) or a pytree with the
    structure of ``tree`` (one value per leaf: per-leaf hyperparameters).

    Raises:
        ValueError: naming ``name`` and the path, where the per-leaf tree does not match
            ``tree``, or one of its leaves does not broadcast to the shape of ``tree``'s leaf
            without changing it (which would change the shape of the stored state).
    """
    if not _is_container(value):
        return jax.tree.map(lambda _: value, tree)
    check_matching(tree, value, reference_name="params", other_name=name, check_shapes=False)
    values = _paths(value)
    for path, leaf in _paths(tree).items():
        own, shape = jnp.shape(values[path]), jnp.shape(leaf)
        try:
            fits = np.broadcast_shapes(own, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"{name}{path} has shape {own}, which does not broadcast to the shape {shape} "
                f"of params{path} without changing it"
            )
    return value


def map_leaves(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``jax.tree.map`` over trees already known to match (``None`` leaves stay ``None``)."""
    return jax.tree.map(fn, tree, *rest)


def unzip(pairs: Any, like: Any) -> tuple[Any, Any]:
    """Split a tree of ``(a, b)`` pairs (one at each leaf of ``like``; ``a`` and ``b`` may be
    subtrees) into two trees with ``like``'s structure above them."""
    outer = jax.tree.structure(like)
    split = outer.flatten_up_to(pairs)
    return outer.unflatten([a for a, _ in split]), outer.unflatten([b for _, b in split])


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


def second_moment_dtype(dtype: Any) -> np.dtype:
    """Default storage dtype of a second moment (``|g|^2`` statistics) for params of ``dtype``.

    The real dtype of the param, except float16, whose range cannot hold the squares of
    ordinary gradients (``(1 - b2) * g**2`` rounds to zero for ``|g| < 5e-3``, and the update
    ``m / (sqrt(0) + eps)`` overflows): float16 params get float32 second moments.
    """
    dtype = real_dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype == jnp.float16 else dtype


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
    if isinstance(value, np.ndarray | np.generic):  # in its own precision, before JAX rounds it
        return jnp.asarray(np.subtract(1, value, dtype=np.result_type(value, np.float32)), dtype)
    value = jnp.asarray(value)
    return (jnp.ones_like(value) - value).astype(dtype)
