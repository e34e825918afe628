"""The learning rate a stage after the moment estimator uses at step :math:`t`.

Such a stage keeps no step counter of its own: it reads :math:`t` from the
:class:`adamjax.Moments` it receives, and calls a schedule with :math:`t - 1`, the number of
steps already taken, as :func:`adamjax.scale_by_learning_rate` calls it with its own counter.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._base import PerLeafOrSchedule
from adamjax._scale import evaluate_schedule
from adamjax._validate import is_function

__all__ = ["rate_at_step"]


def rate_at_step(learning_rate: PerLeafOrSchedule, t: jax.Array) -> Any:
    """``learning_rate`` itself, or a schedule's value after ``t - 1`` steps.

    Args:
        learning_rate: a number, an array, a per-leaf tree, or a schedule ``count -> rate``.
        t: the step count of the moments, ``>= 1`` (int32).

    Returns:
        The learning rate for step ``t``: a number, an array or a per-leaf tree.

    Raises:
        ValueError: if a schedule returns a value that is not a scalar, or a concrete value
            below 0.
    """
    if not is_function(learning_rate):
        return learning_rate
    return evaluate_schedule(learning_rate, t - jnp.ones_like(t))
