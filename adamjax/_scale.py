r"""Scaling updates: constant factors and learning rates.

.. math::
    u \leftarrow -\alpha_k \, u

where :math:`\alpha_k` is a number, an array, a per-leaf tree, or a schedule evaluated at
:math:`k`, the number of steps already taken (the first step sees ``schedule(0)``; bias
correction, by contrast, sees :math:`t = k + 1`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from adamjax._arraymath import zeros_like_params
from adamjax._base import (
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
    init_empty_state,
)
from adamjax._estimates import expect_gradients, expect_gradients_like
from adamjax._placement import zero_count
from adamjax._tree import (
    cast_hyperparameter,
    check_float_leaves,
    compute_dtype,
    leafwise,
    map_leaves,
    real_dtype,
    saturating_increment,
)
from adamjax._validate import check_dtype, check_range, hyperparameter, is_function

__all__ = [
    "ScheduleState",
    "TraceState",
    "evaluate_schedule",
    "init_step_count",
    "multiply",
    "scale",
    "scale_by_learning_rate",
    "trace",
    "value_at_step",
]


def multiply(u: jax.Array, factor: Any) -> jax.Array:
    """``factor * u`` in float32 or wider, returned in ``u``'s dtype."""
    dtype = compute_dtype(u.dtype)
    return (u.astype(dtype) * cast_hyperparameter(factor, real_dtype(dtype))).astype(u.dtype)


def scale(step_size: PerLeaf) -> GradientTransformation:
    r"""Multiply the updates by a constant: :math:`u \leftarrow c\,u`.

    Args:
        step_size: a number, an array (a tracer too), or a per-leaf tree of them.

    Returns:
        A :class:`adamjax.GradientTransformation` taking updates and emitting the scaled updates.
    """
    step_size = hyperparameter("step_size", step_size, lower=None)

    def update_fn(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_gradients(updates, "scale")
        return map_leaves(multiply, updates, leafwise(step_size, updates, "step_size")), state

    return GradientTransformation(init_empty_state, update_fn)


class ScheduleState(NamedTuple):
    """State of a transform whose hyperparameter is a schedule (:func:`scale_by_learning_rate`,
    :func:`adamjax.add_decayed_weights`)."""

    # shape (), int32: steps already taken, the schedule's argument
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]


def evaluate_schedule(
    schedule: Callable[[jax.Array], Any], count: jax.Array, name: str = "learning_rate"
) -> Any:
    """``schedule(count)``, checked to be a scalar and, where it is concrete, ``>= 0``.

    Under ``jit`` the value is a tracer and only its shape is checked; see
    :func:`adamjax.schedules.checked` for a run-time check of its value.
    """
    value = schedule(count)
    if jnp.ndim(value) != 0:
        raise ValueError(
            f"{name} schedule returned a value of shape {jnp.shape(value)}; a schedule "
            "must return a scalar"
        )
    check_range(f"{name} schedule value", value)
    return value


def init_step_count(value: PerLeafOrSchedule, params: Params) -> EmptyState | ScheduleState:
    """The state a hyperparameter ``value`` needs: a step count for a schedule, else none."""
    return ScheduleState(count=zero_count(params)) if is_function(value) else EmptyState()


def value_at_step(
    value: PerLeafOrSchedule, state: EmptyState | ScheduleState, name: str
) -> tuple[Any, EmptyState | ScheduleState]:
    """``value`` now, and the state to keep: a schedule is evaluated at the steps already taken
    (:func:`evaluate_schedule`) and its count advanced; any other value is returned as it is."""
    if not (isinstance(state, ScheduleState) and is_function(value)):
        return value, state
    now = evaluate_schedule(value, state.count, name)
    return now, ScheduleState(count=saturating_increment(state.count))


def scale_by_learning_rate(
    learning_rate: PerLeafOrSchedule, *, flip_sign: bool = True
) -> GradientTransformation:
    r"""Scale by the learning rate, negated for descent: :math:`u \leftarrow -\alpha_k u`.

    Args:
        learning_rate: a number, an array or tracer, a per-leaf tree of them, or a schedule
            ``count -> lr`` called with the number of steps already taken (any callable,
            optax schedules included).
        flip_sign: negate, so that ``apply_updates`` descends (default).

    Returns:
        A :class:`adamjax.GradientTransformation` taking updates and emitting updates scaled by the
            negated learning rate.
    """
    learning_rate = hyperparameter("learning_rate", learning_rate, schedule=True)
    sign = -1.0 if flip_sign else 1.0

    def init_fn(params: Params) -> EmptyState | ScheduleState:
        return init_step_count(learning_rate, params)

    def update_fn(
        updates: Updates,
        state: EmptyState | ScheduleState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, EmptyState | ScheduleState]:
        del params
        expect_gradients(updates, "scale_by_learning_rate")
        rate, state = value_at_step(learning_rate, state, "learning_rate")
        rates = leafwise(rate, updates, "learning_rate")
        return map_leaves(lambda u, lr: multiply(u, _signed(lr, sign)), updates, rates), state

    return GradientTransformation(init_fn, update_fn)


def _signed(value: Any, sign: float) -> Any:
    """``sign * value``: exact for a Python number, an array otherwise."""
    if isinstance(value, (int, float)):
        return sign * value
    return jnp.asarray(value) * sign


class TraceState(NamedTuple):
    """State of :func:`trace`."""

    trace: Updates  # the momentum buffer


def _heavy_ball(g: jax.Array, buffer: jax.Array, mu: Any) -> jax.Array:
    """``g + mu * buffer`` in float32 or wider, not cast back."""
    dtype = compute_dtype(g.dtype, buffer.dtype)
    return g.astype(dtype) + cast_hyperparameter(mu, real_dtype(dtype)) * buffer.astype(dtype)


def trace(
    decay: PerLeaf = 0.9, nesterov: bool = False, accumulator_dtype: DTypeLike | None = None
) -> GradientTransformation:
    r"""Heavy-ball momentum (SGD's momentum buffer).

    .. math::
        b_t = g_t + \mu\, b_{t-1}, \qquad u_t = \begin{cases} g_t + \mu\, b_t & \text{Nesterov}
        \\ b_t & \text{otherwise}\end{cases}

    Args:
        decay: the momentum :math:`\mu`, ``>= 0``.
        nesterov: use Nesterov's look-ahead.
        accumulator_dtype: storage dtype of the buffer (default: the param's dtype).

    Returns:
        A :class:`adamjax.GradientTransformation` taking updates and emitting the accumulated
            momentum.
    """
    decay = hyperparameter("decay", decay)
    check_dtype("accumulator_dtype", accumulator_dtype)

    def init_fn(params: Params) -> TraceState:
        check_float_leaves(params)
        return TraceState(trace=zeros_like_params(params, accumulator_dtype))

    def update_fn(
        updates: Updates, state: TraceState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, TraceState]:
        del params
        expect_gradients_like(updates, state.trace, "trace", "state.trace")
        mus = leafwise(decay, updates, "decay")
        buffers = map_leaves(
            lambda g, b, mu: _heavy_ball(g, b, mu).astype(b.dtype), updates, state.trace, mus
        )
        if nesterov:
            out = map_leaves(
                lambda g, b, mu: _heavy_ball(g, b, mu).astype(g.dtype), updates, buffers, mus
            )
        else:
            out = map_leaves(lambda g, b: b.astype(g.dtype), updates, buffers)
        return out, TraceState(trace=buffers)

    return GradientTransformation(init_fn, update_fn)
