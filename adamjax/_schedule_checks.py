"""Checking a schedule's arguments as optax accepts them, and saying where adamjax differs.

Values (``init_value``, ``peak_value``, ...) must be finite numbers, arrays or tracers
``>= 0``; step counts must be concrete ints. Where optax would accept a value that adamjax
refuses, the message says what optax would do with it.
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import numpy as np
from jax.core import Tracer

from adamjax._validate import check_range

__all__ = ["check_not_negative", "check_steps", "check_value"]

_LEARNING_RATE = "a schedule's values are learning rates, which must be finite and >= 0"


def _is_bool(value: Any) -> bool:
    """Whether ``value`` is a bool, a NumPy bool or a bool array."""
    return isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_


def check_value(name: str, value: Any, optax_name: str | None, *, consequence: str = "") -> None:
    """Raise ``ValueError`` unless a concrete ``value`` is a finite number or array ``>= 0``.

    Args:
        name: the argument's name, for the message.
        value: the argument; a tracer is not checked.
        optax_name: the optax function that accepts the value, for the message (None: none).
        consequence: what optax's schedule would give with this value, for the message.
    """
    if value is None or callable(value) or not jax.tree_util.all_leaves([value]):
        raise TypeError(f"{name} must be a number, an array or a tracer, got {value!r}")
    if _is_bool(value):
        read_as = f" (optax.{optax_name} would read it as {int(value)})" if optax_name else ""
        raise ValueError(f"{name} must be a number or an array, got the bool {value!r}{read_as}")
    try:
        check_range(name, value)
    except ValueError as error:
        given = f" (optax.{optax_name} accepts it{consequence})" if optax_name else ""
        raise ValueError(f"{error}: {_LEARNING_RATE}{given}") from None


def check_steps(name: str, value: Any, optax_name: str) -> int:
    """``value`` as a Python int, or ``ValueError`` if it is not a concrete (NumPy) integer."""
    if isinstance(value, Tracer):
        raise ValueError(
            f"{name} must be a concrete int, got a tracer: step counts decide the schedule's "
            "pieces when it is built (trace the values instead)"
        )
    if _is_bool(value):
        raise ValueError(
            f"{name} must be an int, got the bool {value!r} (optax.{optax_name} would read it "
            f"as {int(value)})"
        )
    integral = isinstance(value, (int, np.integer)) or (
        np.ndim(value) == 0 and np.issubdtype(getattr(value, "dtype", np.float64), np.integer)
    )
    if not integral:
        raise ValueError(
            f"{name} must be an int (Python or NumPy), got {value!r} (optax.{optax_name} "
            "would use it as given)"
        )
    return operator.index(value)


def check_not_negative(name: str, steps: int, optax_behaviour: str) -> None:
    if steps < 0:
        raise ValueError(f"{name} must be >= 0, got {steps} ({optax_behaviour})")
