"""Checking hyperparameters when a transform is built.

Hyperparameters are data: a Python number, a JAX array, a tracer, or a pytree of those matching
the params. Concrete values are checked here, at construction, and a bad one raises a
``ValueError`` naming the argument (and the tree path, for per-leaf values). Tracers cannot be
checked and pass through untouched.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from jax.core import Tracer

__all__ = ["check_range", "is_concrete"]


def is_concrete(value: Any) -> bool:
    """Whether ``value`` holds a known value (not a tracer)."""
    return not isinstance(value, Tracer)


def _describe(lower: float | None, upper: float | None, upper_open: bool) -> str:
    if upper is None:
        return f">= {lower}"
    closing = ")" if upper_open else "]"
    return f"in [{lower}, {upper}{closing}"


def check_range(
    name: str,
    value: Any,
    *,
    lower: float | None = 0.0,
    upper: float | None = None,
    upper_open: bool = True,
) -> None:
    """Raise ``ValueError`` if a concrete hyperparameter lies outside ``[lower, upper)``.

    ``value`` may be a number, an array (every element is checked), a tracer (skipped), a
    pytree of those (each leaf is checked and the path is named), or ``None`` (skipped).
    A callable (a schedule) is checked when it is called, not here.
    """
    if value is None or callable(value):
        return
    leaves = jax.tree_util.tree_leaves_with_path(value)
    for path, leaf in leaves:
        if not is_concrete(leaf):
            continue
        where = name + jax.tree_util.keystr(path)
        try:
            array = np.asarray(leaf)
        except TypeError as error:
            raise TypeError(f"{where} must be a number or an array, got {leaf!r}") from error
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
        ):
            raise TypeError(f"{where} must be a number or an array, got {leaf!r}")
        if np.iscomplexobj(array):
            raise TypeError(f"{where} must be real, got {leaf!r}")
        values = array.astype(np.float64)
        if np.any(np.isnan(values)):
            raise ValueError(f"{where} must be {_describe(lower, upper, upper_open)}, got nan")
        low_bad = lower is not None and np.any(values < lower)
        high_bad = upper is not None and (
            np.any(values >= upper) if upper_open else np.any(values > upper)
        )
        if low_bad or high_bad:
            shown = values.item() if values.ndim == 0 else values
            raise ValueError(f"{where} must be {_describe(lower, upper, upper_open)}, got {shown}")
        if upper is None and lower is not None and np.any(values == math.inf):
            raise ValueError(f"{where} must be finite, got inf")
