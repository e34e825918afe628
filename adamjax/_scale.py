r"""Scaling updates: constant factors and learning rates.

.. math::
    u \leftarrow -\alpha_k \, u

where :math:`\alpha_k` is a number, an array, a per-leaf tree, or a schedule evaluated at
:math:`k`, the number of steps already taken (the first step sees ``schedule(0)``; bias
correction, by contrast, sees :math:`t = k + 1`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax._base import EmptyState, GradientTransformation, Params, Updates, init_empty_state
from adamjax._moments import expect_gradients
from adamjax._placement import zero_count
from adamjax._tree import (
    cast_hyperparameter,
    check_float_leaves,
    check_gradient_dtypes,
    check_matching,
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
    "scale",
    "scale_by_learning_rate",
    "trace",
]


def multiply(u: jax.Array, factor: Any) -> jax.Array:
    dtype = compute_dtype(u.dtype)
    return (u.astype(dtype) * cast_hyperparameter(factor, real_dtype(dtype))).astype(u.dtype)


def scale(step_size: Any) -> GradientTransformation:
    r"""Multiply the updates by a constant: :math:`u \leftarrow c\,u`.

    Args:
        step_size: a number, an array (a tracer too), or a per-leaf tree of them.
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
    """State of :func:`scale_by_learning_rate` with a schedule."""

    # shape (), int32: steps already taken, the schedule's argument
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]


def evaluate_schedule(schedule: Any, count: jax.Array, name: str = "learning_rate") -> Any:
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


def scale_by_learning_rate(learning_rate: Any, *, flip_sign: bool = True) -> GradientTransformation:
    r"""Scale by the learning rate, negated for descent: :math:`u \leftarrow -\alpha_k u`.

    Args:
        learning_rate: a number, an array or tracer, a per-leaf tree of them, or a schedule
            ``count -> lr`` called with the number of steps already taken (any callable,
            optax schedules included).
        flip_sign: negate, so that ``apply_updates`` descends (default).
    """
    learning_rate = hyperparameter("learning_rate", learning_rate, schedule=True)
    sign = -1.0 if flip_sign else 1.0

    if is_function(learning_rate):

        def init_schedule(params: Params) -> ScheduleState:
            return ScheduleState(count=zero_count(params))

        def update_schedule(
            updates: Updates, state: ScheduleState, params: Params | None = None, **extra_args: Any
        ) -> tuple[Updates, ScheduleState]:
            del params
            expect_gradients(updates, "scale_by_learning_rate")
            lr = evaluate_schedule(learning_rate, state.count)
            updates = map_leaves(lambda u: multiply(u, sign * jnp.asarray(lr)), updates)
            return updates, ScheduleState(count=saturating_increment(state.count))

        return GradientTransformation(init_schedule, update_schedule)

    def update_fn(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_gradients(updates, "scale_by_learning_rate")
        rates = leafwise(learning_rate, updates, "learning_rate")
        return map_leaves(lambda u, lr: multiply(u, _negate(lr, sign)), updates, rates), state

    return GradientTransformation(init_empty_state, update_fn)


def _negate(value: Any, sign: float) -> Any:
    if isinstance(value, (int, float)):
        return sign * value
    return jnp.asarray(value) * sign


class TraceState(NamedTuple):
    """State of :func:`trace`."""

    trace: Updates  # the momentum buffer


def trace(
    decay: Any = 0.9, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    r"""Heavy-ball momentum (SGD's momentum buffer).

    .. math::
        b_t = g_t + \mu\, b_{t-1}, \qquad u_t = \begin{cases} g_t + \mu\, b_t & \text{Nesterov}
        \\ b_t & \text{otherwise}\end{cases}

    Args:
        decay: the momentum :math:`\mu`, ``>= 0``.
        nesterov: use Nesterov's look-ahead.
        accumulator_dtype: storage dtype of the buffer (default: the param's dtype).
    """
    decay = hyperparameter("decay", decay)
    check_dtype("accumulator_dtype", accumulator_dtype)

    def init_fn(params: Params) -> TraceState:
        check_float_leaves(params)
        return TraceState(
            trace=map_leaves(lambda p: jnp.zeros_like(p, dtype=accumulator_dtype), params)
        )

    def accumulate(g: jax.Array, buffer: jax.Array, mu: Any) -> jax.Array:
        dtype = compute_dtype(g.dtype, buffer.dtype)
        mu = cast_hyperparameter(mu, real_dtype(dtype))
        return (g.astype(dtype) + mu * buffer.astype(dtype)).astype(buffer.dtype)

    def look_ahead(g: jax.Array, buffer: jax.Array, mu: Any) -> jax.Array:
        dtype = compute_dtype(g.dtype, buffer.dtype)
        mu = cast_hyperparameter(mu, real_dtype(dtype))
        return (g.astype(dtype) + mu * buffer.astype(dtype)).astype(g.dtype)

    def update_fn(
        updates: Updates, state: TraceState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, TraceState]:
        del params
        expect_gradients(updates, "trace")
        check_matching(state.trace, updates, other_name="grads")
        check_gradient_dtypes(state.trace, updates, reference_name="state.trace")
        mus = leafwise(decay, updates, "decay")
        buffers = map_leaves(accumulate, updates, state.trace, mus)
        if nesterov:
            out = map_leaves(look_ahead, updates, buffers, mus)
        else:
            out = map_leaves(lambda g, b: b.astype(g.dtype), updates, buffers)
        return out, TraceState(trace=buffers)

    return GradientTransformation(init_fn, update_fn)
