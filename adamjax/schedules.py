r"""Learning-rate schedules: functions ``count -> learning rate``.

``count`` is the number of steps already taken (the first update sees ``count = 0``). Every
argument may be a number, an array or a tracer, so a schedule can be built inside ``jit`` or
``vmap``. Any callable of this shape (an optax schedule, say) works wherever a schedule does.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax.base import Schedule
from adamjax.validate import check_range

__all__ = [
    "constant",
    "cosine_decay",
    "exponential_decay",
    "inverse_sqrt",
    "linear",
    "warmup_cosine_decay",
]


def _step(count: jax.Array) -> jax.Array:
    return jnp.asarray(count).astype(jnp.float32)


def _check_steps(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def constant(value: Any) -> Schedule:
    r""":math:`\alpha_k = \text{value}`."""
    check_range("value", value)
    return lambda count: jnp.asarray(value, dtype=jnp.float32)


def linear(init_value: Any, end_value: Any, transition_steps: int) -> Schedule:
    r"""Linear interpolation from ``init_value`` to ``end_value`` over ``transition_steps``,
    then constant:
    :math:`\alpha_k = a + (b - a)\min(k / K, 1)`."""
    check_range("init_value", init_value)
    check_range("end_value", end_value)
    _check_steps("transition_steps", transition_steps)

    def schedule(count: jax.Array) -> jax.Array:
        fraction = jnp.clip(_step(count) / transition_steps, 0.0, 1.0)
        return init_value + (end_value - init_value) * fraction

    return schedule


def cosine_decay(init_value: Any, decay_steps: int, alpha: Any = 0.0) -> Schedule:
    r"""Cosine decay to ``alpha * init_value`` over ``decay_steps`` (Loshchilov & Hutter, SGDR):
    :math:`\alpha_k = a\left((1-\alpha)\tfrac{1}{2}(1 + \cos(\pi\min(k/K,1))) + \alpha\right)`."""
    check_range("init_value", init_value)
    check_range("alpha", alpha, upper=1.0, upper_open=False)
    _check_steps("decay_steps", decay_steps)

    def schedule(count: jax.Array) -> jax.Array:
        fraction = jnp.clip(_step(count) / decay_steps, 0.0, 1.0)
        cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * fraction))
        return init_value * ((1.0 - alpha) * cosine + alpha)

    return schedule


def warmup_cosine_decay(
    init_value: Any,
    peak_value: Any,
    warmup_steps: int,
    decay_steps: int,
    end_value: Any = 0.0,
) -> Schedule:
    r"""Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then cosine
    decay to ``end_value`` at ``decay_steps`` (counted from the start, warm-up included)."""
    check_range("init_value", init_value)
    check_range("peak_value", peak_value)
    check_range("end_value", end_value)
    _check_steps("warmup_steps", warmup_steps)
    _check_steps("decay_steps", decay_steps)
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"decay_steps ({decay_steps}) must be greater than warmup_steps ({warmup_steps})"
        )

    def schedule(count: jax.Array) -> jax.Array:
        k = _step(count)
        warm = init_value + (peak_value - init_value) * jnp.clip(k / warmup_steps, 0.0, 1.0)
        fraction = jnp.clip((k - warmup_steps) / (decay_steps - warmup_steps), 0.0, 1.0)
        cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * fraction))
        decayed = end_value + (peak_value - end_value) * cosine
        return jnp.where(k < warmup_steps, warm, decayed)

    return schedule


def exponential_decay(
    init_value: Any, decay_rate: Any, transition_steps: int, *, staircase: bool = False
) -> Schedule:
    r""":math:`\alpha_k = a\,r^{k/K}` (with :math:`\lfloor k/K \rfloor` when ``staircase``)."""
    check_range("init_value", init_value)
    check_range("decay_rate", decay_rate)
    _check_steps("transition_steps", transition_steps)

    def schedule(count: jax.Array) -> jax.Array:
        exponent = _step(count) / transition_steps
        if staircase:
            exponent = jnp.floor(exponent)
        return init_value * jnp.power(jnp.asarray(decay_rate, jnp.float32), exponent)

    return schedule


def inverse_sqrt(init_value: Any) -> Schedule:
    r"""The decay of Kingma & Ba's convergence analysis: :math:`\alpha_t = \alpha / \sqrt{t}`
    with :math:`t = k + 1`, the bias-correction step."""
    check_range("init_value", init_value)

    def schedule(count: jax.Array) -> jax.Array:
        return init_value / jnp.sqrt(_step(count) + 1.0)

    return schedule
