"""A run-time check of a schedule's values, for use under ``jit`` with ``checkify``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jax.experimental import checkify

from adamjax._base import Schedule

__all__ = ["checked"]


def checked(schedule: Callable[[Any], Any], name: str = "learning_rate") -> Schedule:
    r"""``schedule`` with a run-time check that its value is finite and :math:`\ge 0`.

    The check is a ``jax.experimental.checkify.check``: under ``jit`` it needs the step to be
    wrapped in ``checkify.checkify``, which returns an error value next to the step's results;
    ``error.throw()`` raises ``checkify.JaxRuntimeError`` naming ``name``, the step and the
    value. Called outside any transformation, the check runs at once and raises the same error.
    Under ``jit`` without ``checkify.checkify``, tracing the step raises a ``ValueError`` (JAX
    cannot stage an unfunctionalized check). The values are those of ``schedule``, unchanged.

    Args:
        schedule: any callable ``count -> scalar``.
        name: what the value is, for the message.

    Returns:
        A schedule ``count -> schedule(count)``.

    Raises:
        TypeError: ``schedule`` is not callable or ``name`` is not a string.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jax.experimental import checkify
        >>> from adamjax import schedules
        >>> lr = schedules.checked(lambda count: 0.5 - 0.25 * count)
        >>> error, value = jax.jit(checkify.checkify(lr))(jnp.int32(1))
        >>> print(error.get())
        None
        >>> error, value = jax.jit(checkify.checkify(lr))(jnp.int32(3))
        >>> print(error.get())
        learning_rate schedule gave -0.25 at step 3; it must be finite and >= 0 (`check` failed)
    """
    if not callable(schedule):
        raise TypeError(f"schedule must be callable, got {schedule!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    message = name.replace("{", "{{").replace("}", "}}")
    message += " schedule gave {value} at step {step}; it must be finite and >= 0"

    def checked_schedule(count: Any) -> Any:
        value = schedule(count)
        array = jnp.asarray(value)
        valid = jnp.all(jnp.isfinite(array) & (array >= 0))
        checkify.check(valid, message, value=array, step=jnp.asarray(count))
        return value

    return checked_schedule
