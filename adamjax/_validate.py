"""Checking hyperparameters when a transform is built.

Hyperparameters are data: a Python number, a NumPy or JAX array, a tracer, or a pytree of those
matching the params (one value per leaf). :func:`hyperparameter` checks a value at construction
and returns it in the form the transforms compute with; a bad one raises a ``ValueError`` or
``TypeError`` naming the argument (and the tree path, for per-leaf values).

What is checked when:

* at construction, for every value: it is not ``None`` (where a value is required), it is real
  and numeric, and a value shared by every leaf is a scalar (a one-element array of any rank is
  taken as a scalar; a longer array must be given per leaf, in a tree);
* at construction, for concrete values (numbers, arrays; not tracers): the range, in the
  precision the value will be computed in (a NumPy float64 array becomes float32 in JAX unless
  ``jax_enable_x64`` is on, so ``b2 = 1 - 1e-9`` in such an array is refused: it would be 1.0);
* at the first ``init``/``update`` (trace time): that a per-leaf tree matches the params and each
  of its leaves broadcasts to its param's shape without changing it;
* never: the values of tracers (hyperparameters built inside ``jit`` or ``vmap``) and the values
  a schedule returns under ``jit`` (see ``adamjax.schedules.checked`` for a run-time check).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import operator
from collections.abc import Callable, Iterator
from typing import Any, TypeGuard

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

__all__ = [
    "check_dtype",
    "check_int",
    "check_range",
    "hyperparameter",
    "is_concrete",
    "is_function",
    "member_axis_allowed",
]

_MEMBER_AXIS = contextvars.ContextVar("adamjax_member_axis", default=False)


def is_function(value: Any) -> TypeGuard[Callable[..., Any]]:
    """Whether ``value`` is a function to call (a schedule, a mask or labels function).

    A callable that is also a pytree container holding values (an ``equinox.Module`` built by
    mapping over a model, say) is a tree of values, not a function; ``jax.tree_util.Partial``
    is a function.
    """
    if not callable(value):
        return False
    if isinstance(value, jax.tree_util.Partial):
        return True
    return jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(value))


def is_concrete(value: Any) -> bool:
    """Whether ``value`` holds a known value (not a tracer)."""
    return not isinstance(value, Tracer)


@contextlib.contextmanager
def member_axis_allowed() -> Iterator[None]:
    """Within this block, shared hyperparameters may carry a leading member axis.

    :func:`adamjax.ensemble.hyperparameters` checks every member's values at once by building the
    optimizer with the stacked arrays; this lets those arrays through the scalar rule while
    their ranges are still checked element by element.
    """
    token = _MEMBER_AXIS.set(True)
    try:
        yield
    finally:
        _MEMBER_AXIS.reset(token)


def _describe(lower: float | None, upper: float | None, upper_open: bool) -> str:
    if upper is None:
        return "a real number" if lower is None else f">= {lower}"
    closing = ")" if upper_open else "]"
    return f"in [{lower}, {upper}{closing}"


def _numeric_array(where: str, leaf: Any) -> np.ndarray:
    """``leaf`` as a NumPy array of a real numeric dtype (bfloat16 and float8 included)."""
    try:
        array = np.asarray(leaf)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{where} must be a number or an array, got {leaf!r}") from error
    dtype = array.dtype
    if dtype.kind == "O" or not (jnp.issubdtype(dtype, jnp.number) or dtype == np.bool_):
        raise TypeError(f"{where} must be a number or an array, got {leaf!r}")
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{where} must be real, got {leaf!r}")
    return array


def _computed(leaf: Any, array: np.ndarray) -> np.ndarray:
    """The values JAX will compute with: Python numbers exactly, arrays in JAX's dtype."""
    if isinstance(leaf, (bool, int, float)):
        return array.astype(np.float64)
    dtype = jax.dtypes.canonicalize_dtype(array.dtype)
    return array.astype(dtype).astype(np.float64)


def check_range(
    name: str,
    value: Any,
    *,
    lower: float | None = 0.0,
    upper: float | None = None,
    upper_open: bool = True,
) -> None:
    """Raise ``ValueError`` if a concrete hyperparameter lies outside ``[lower, upper)``.

    ``value`` may be a number, an array (every element is checked, in the precision JAX will
    compute it in), a tracer (skipped), a pytree of those (each leaf is checked and the path is
    named), or ``None`` (skipped). A callable (a schedule) is checked when it is called, not
    here.

    Raises:
        TypeError: naming the argument and path, for a value that is not real and numeric.
        ValueError: naming the argument and path, for a value out of range, NaN or infinite
            where no upper bound is set, or one that rounds onto the bound in JAX's dtype.
    """
    if value is None or is_function(value):
        return
    for path, leaf in jax.tree_util.tree_leaves_with_path(value):
        if not is_concrete(leaf):
            continue
        where = name + jax.tree_util.keystr(path)
        array = _numeric_array(where, leaf)
        values = array.astype(np.float64)
        bounds = _describe(lower, upper, upper_open)
        if np.any(np.isnan(values)):
            raise ValueError(f"{where} must be {bounds}, got nan")
        low_bad = lower is not None and np.any(values < lower)
        high_bad = upper is not None and (
            np.any(values >= upper) if upper_open else np.any(values > upper)
        )
        if low_bad or high_bad:
            shown = values.item() if values.ndim == 0 else values
            raise ValueError(f"{where} must be {bounds}, got {shown}")
        if upper is None and lower is not None and np.any(values == math.inf):
            raise ValueError(f"{where} must be finite, got inf")
        computed = _computed(leaf, array)
        if upper is not None and upper_open and np.any(computed >= upper):
            dtype = jax.dtypes.canonicalize_dtype(array.dtype)
            raise ValueError(
                f"{where} must be {bounds}, but {float(values.max())!r} rounds to "
                f"{float(computed.max())!r} in "
                f"{dtype}, the dtype JAX computes it in: pass a Python float, a value further "
                "from the bound, or enable jax_enable_x64"
            )


def _is_container(value: Any) -> bool:
    return not jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(value))


def _as_scalar(where: str, leaf: Any, per_leaf: bool) -> Any:
    """A one-element array as a 0-d one; a longer array refused unless it is a per-leaf value."""
    if isinstance(leaf, (bool, int, float)) or leaf is None:
        return leaf
    shape = np.shape(leaf)
    if not shape:
        return leaf
    if math.prod(shape) == 1:
        return leaf.reshape(())
    if per_leaf or _MEMBER_AXIS.get():
        return leaf
    raise ValueError(
        f"{where} has shape {shape}: a value shared by every leaf must be a scalar (or hold one "
        "element). For one value per leaf, pass a tree with the params' structure."
    )


def hyperparameter(
    name: str,
    value: Any,
    *,
    lower: float | None = 0.0,
    upper: float | None = None,
    upper_open: bool = True,
    optional: bool = False,
    schedule: bool = False,
) -> Any:
    """Check a hyperparameter at construction and return it in the form transforms use.

    Args:
        name: the argument's name, used in error messages.
        value: a number, an array or tracer, or a per-leaf pytree of those; a callable where
            ``schedule`` is set.
        lower: the smallest value allowed (``None``: no bound).
        upper: the bound above (``None``: none).
        upper_open: whether ``upper`` itself is excluded.
        optional: whether ``None`` is a meaningful value (it is returned as is).
        schedule: whether a callable ``count -> value`` is allowed (checked when called).

    Returns:
        ``value`` with each one-element array reshaped to a scalar.

    Raises:
        TypeError: naming the argument, for ``None`` where a value is required, a callable
            where no schedule is allowed, or a non-numeric or complex value.
        ValueError: naming the argument (and path), for a value out of range or a shared
            array with more than one element.
    """
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name} must be a number, an array or a per-leaf tree, got None")
    if is_function(value):
        if schedule:
            return value
        raise TypeError(f"{name} must be a number, an array or a per-leaf tree, not a callable")
    check_range(name, value, lower=lower, upper=upper, upper_open=upper_open)
    if not _is_container(value):
        return _as_scalar(name, value, per_leaf=False)

    def leaf_value(path: Any, leaf: Any) -> Any:
        where = name + jax.tree_util.keystr(path)
        if leaf is not None and not is_concrete(leaf):
            return _as_scalar(where, leaf, per_leaf=True)
        if leaf is not None:
            _numeric_array(where, leaf)
        return _as_scalar(where, leaf, per_leaf=True)

    return jax.tree_util.tree_map_with_path(leaf_value, value)


def check_dtype(name: str, dtype: Any, *, complex_ok: bool = True) -> Any:
    """Refuse a storage dtype that cannot hold an optimizer statistic (integer, bool).

    Returns:
        ``dtype`` (``None`` stays ``None``: each param's own default).

    Raises:
        TypeError: naming the argument, for a dtype that is not floating-point (or complex,
            where ``complex_ok``).
    """
    if dtype is None:
        return None
    try:
        resolved = jnp.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{name} must be a floating-point dtype, got {dtype!r}") from error
    kinds = jnp.inexact if complex_ok else jnp.floating
    if not jnp.issubdtype(resolved, kinds):
        raise TypeError(
            f"{name} must be a floating-point dtype, got {resolved}: integer and boolean "
            "storage would round every update away"
        )
    return dtype


def check_int(name: str, value: Any, *, minimum: int = 0) -> int:
    """``value`` as a Python int ``>= minimum``; NumPy integers are accepted, bools are not.

    Raises:
        TypeError: naming the argument, for a value that is not an integer.
        ValueError: naming the argument, for an integer below ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError as error:
        raise TypeError(f"{name} must be an int, got {value!r}") from error
    if number < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {number}")
    return number
