r"""Learning-rate schedules: functions ``count -> learning rate``.

``count`` is the number of steps already taken (the first update sees ``count = 0``). Each
schedule takes the arguments of its optax namesake, in the same order, with the same names and
defaults, and gives the same values: ``constant`` is ``optax.constant_schedule``, ``linear``
``optax.linear_schedule``, ``cosine_decay`` ``optax.cosine_decay_schedule``,
``warmup_cosine_decay`` ``optax.warmup_cosine_decay_schedule`` and ``exponential_decay``
``optax.exponential_decay``; ``inverse_sqrt`` has no optax twin.

Where optax accepts an argument that adamjax does not, adamjax raises a ``ValueError`` that says
what optax would do. adamjax refuses: a value that would make the learning rate negative or not
finite; a negative step count (optax silently treats it as a constant schedule or as 0); a
step count that is not an int (a NumPy integer is fine, a bool or a float is not); a bool where
a number is expected.

Values (``init_value``, ``peak_value``, ``end_value``, ``alpha``, ``exponent``, ``decay_rate``)
may be numbers, arrays or tracers, so a schedule can be built inside ``jit`` or ``vmap``; a
traced value is not range-checked. Step counts (``transition_steps``, ``decay_steps``, ...) set
the schedule's pieces and must be concrete ints.

A schedule computes in the widest float that JAX has enabled: float64 under
``jax_enable_x64``, float32 otherwise. :func:`checked` adds a run-time check of the values for
use under ``jit`` with ``jax.experimental.checkify``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamjax._base import Schedule
from adamjax._checked_schedule import checked as checked
from adamjax._schedule_checks import check_not_negative, check_steps, check_value

__all__ = [
    "checked",
    "constant",
    "cosine_decay",
    "exponential_decay",
    "inverse_sqrt",
    "linear",
    "warmup_cosine_decay",
]

# ----------------------------------------------------------------------------------------------
# Arithmetic in the enabled precision


def _float_dtype() -> np.dtype:
    """float64 under ``jax_enable_x64``, float32 otherwise."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _as_float(value: Any) -> jax.Array:
    return jnp.asarray(value).astype(_float_dtype())


def _fractions(count: jax.Array, steps: int, begin: int = 0) -> tuple[Any, Any]:
    r"""The fractions done and left, :math:`f = d/K` and :math:`r = (K - d)/K`, of a transition
    of ``steps`` starting at ``begin``, with :math:`d = \operatorname{clip}(k - B, 0, K)`.

    Both are computed from whole numbers, so :math:`r` is exact to one rounding where it is
    small (``1 - f`` would lose digits there).
    """
    done = jnp.clip(count - float(begin), 0.0, float(steps))
    return done / float(steps), (float(steps) - done) / float(steps)


def _linear_value(count: jax.Array, init: jax.Array, end: jax.Array, steps: int, begin: int) -> Any:
    r""":math:`a\,r + b\,f`: optax's :math:`(a - b)(1 - f) + b`, as a sum of terms :math:`\ge 0`
    (exactly :math:`a` before the transition and :math:`b` after it). ``steps > 0``."""
    done, left = _fractions(count, steps, begin)
    return init * left + end * done


def _cosine_factor(count: jax.Array, steps: int, alpha: jax.Array, exponent: jax.Array) -> Any:
    r""":math:`(1 - \alpha)\,c^p + \alpha` with :math:`c = \tfrac12(1 + \cos(\pi f))`, the
    cosine decay's factor after a fraction :math:`f = \min(k, K)/K` of ``steps``.

    :math:`c` is computed as :math:`\sin^2(\tfrac{\pi}{2} r)`, :math:`r = 1 - f` (the same
    number), which keeps its relative precision near the end of the decay, where
    :math:`1 + \cos(\pi f)` cancels; it is exactly 1 at :math:`k = 0` and 0 from :math:`k = K` on.
    """
    _, left = _fractions(count, steps)
    cosine = jnp.square(jnp.sin((0.5 * jnp.pi) * left))
    return (1.0 - alpha) * jnp.power(cosine, exponent) + alpha


# ----------------------------------------------------------------------------------------------
# Schedules


def constant(value: Any) -> Schedule:
    r"""The same learning rate at every step: :math:`\alpha_k = v`.

    Like ``optax.constant_schedule``; the value comes back as an array in the enabled float
    precision.

    Args:
        value: :math:`v \ge 0`, finite.

    Returns:
        A schedule ``count -> value``.

    Raises:
        ValueError: ``value`` is negative, not finite, or a bool.
        TypeError: ``value`` is not a number, an array or a tracer.
    """
    check_value("value", value, "constant_schedule")
    return lambda count: _as_float(value)


def linear(
    init_value: Any, end_value: Any, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    r"""Linear interpolation from ``init_value`` to ``end_value``, as ``optax.linear_schedule``.

    .. math::
        \alpha_k = (a - b)\left(1 - \frac{\operatorname{clip}(k - B, 0, K)}{K}\right) + b

    :math:`a` until step :math:`B`, :math:`b` from step :math:`B + K` on. With
    ``transition_steps=0`` the schedule is :math:`a` at every step (optax's rule).

    Args:
        init_value: :math:`a \ge 0`.
        end_value: :math:`b \ge 0`.
        transition_steps: :math:`K \ge 0`, the length of the transition.
        transition_begin: :math:`B \ge 0`, the step the transition starts at.

    Returns:
        A schedule ``count -> learning rate``.

    Raises:
        ValueError: a value is negative or not finite; a step count is negative (optax holds
            ``init_value`` for ``transition_steps < 0`` and starts at 0 for
            ``transition_begin < 0``) or not an int.
        TypeError: a value is not a number, an array or a tracer.
    """
    name = "linear_schedule"
    check_value("init_value", init_value, name)
    check_value("end_value", end_value, name)
    steps = check_steps("transition_steps", transition_steps, name)
    begin = check_steps("transition_begin", transition_begin, name)
    check_not_negative(
        "transition_steps", steps, f"optax.{name} would hold init_value at every step"
    )
    check_not_negative("transition_begin", begin, f"optax.{name} would start at step 0")
    if steps == 0:
        return constant(init_value)

    def schedule(count: jax.Array) -> jax.Array:
        return _linear_value(
            _as_float(count), _as_float(init_value), _as_float(end_value), steps, begin
        )

    return schedule


def cosine_decay(
    init_value: Any, decay_steps: int, alpha: Any = 0.0, exponent: Any = 1.0
) -> Schedule:
    r"""Cosine decay to ``alpha * init_value`` over ``decay_steps``, as
    ``optax.cosine_decay_schedule`` (Loshchilov & Hutter, SGDR).

    .. math::
        \alpha_k = a\left((1 - \alpha)\left(\tfrac12\left(1 + \cos\frac{\pi\min(k, K)}{K}
        \right)\right)^p + \alpha\right)

    Args:
        init_value: :math:`a \ge 0`.
        decay_steps: :math:`K > 0`.
        alpha: :math:`\alpha \ge 0`, the final value as a fraction of ``init_value``
            (above 1 the schedule rises to it).
        exponent: :math:`p \ge 0`.

    Returns:
        A schedule ``count -> learning rate``.

    Raises:
        ValueError: ``decay_steps`` is not a positive int (optax raises too); ``alpha`` is
            negative (optax ends below zero); ``exponent`` is negative (optax reaches
            infinity at :math:`k = K`); ``init_value`` is negative; a value is not finite.
        TypeError: a value is not a number, an array or a tracer.
    """
    name = "cosine_decay_schedule"
    check_value("init_value", init_value, name)
    check_value("alpha", alpha, name, consequence=" and ends at alpha * init_value")
    check_value("exponent", exponent, name, consequence=" and reaches inf at decay_steps")
    steps = check_steps("decay_steps", decay_steps, name)
    if steps <= 0:
        raise ValueError(
            f"decay_steps must be a positive int, got {steps} (optax.{name} raises too)"
        )

    def schedule(count: jax.Array) -> jax.Array:
        factor = _cosine_factor(_as_float(count), steps, _as_float(alpha), _as_float(exponent))
        return _as_float(init_value) * factor

    return schedule


def warmup_cosine_decay(
    init_value: Any,
    peak_value: Any,
    warmup_steps: int,
    decay_steps: int,
    end_value: Any = 0.0,
    exponent: Any = 1.0,
) -> Schedule:
    r"""Linear warm-up, then cosine decay, as ``optax.warmup_cosine_decay_schedule``.

    With :math:`W` = ``warmup_steps``, :math:`D` = ``decay_steps`` (counted from step 0, the
    warm-up included) and :math:`\beta = b / P` (0 when :math:`P = 0`):

    .. math::
        \alpha_k = \begin{cases} a + (P - a)\,k / W & k < W \\
        P\left((1 - \beta)\left(\tfrac12\left(1 + \cos\frac{\pi\min(k - W, D - W)}{D - W}
        \right)\right)^p + \beta\right) & k \ge W \end{cases}

    ``warmup_steps=0`` starts at the peak. As in optax, ``end_value`` has no effect when
    ``peak_value`` is 0 (the schedule is 0 after the warm-up).

    Args:
        init_value: :math:`a \ge 0`, the value at step 0.
        peak_value: :math:`P \ge 0`, the value at the end of the warm-up.
        warmup_steps: :math:`W \ge 0`.
        decay_steps: :math:`D > W`, the step the decay ends at.
        end_value: :math:`b \ge 0`, the value from step :math:`D` on.
        exponent: :math:`p \ge 0`.

    Returns:
        A schedule ``count -> learning rate``.

    Raises:
        ValueError: ``decay_steps <= warmup_steps`` (optax raises too); ``warmup_steps`` is
            negative (optax would start the decay before step 0); a value is negative or not
            finite; a step count is not an int.
        TypeError: a value is not a number, an array or a tracer.
    """
    name = "warmup_cosine_decay_schedule"
    check_value("init_value", init_value, name)
    check_value("peak_value", peak_value, name)
    check_value("end_value", end_value, name)
    check_value("exponent", exponent, name, consequence=" and reaches inf at decay_steps")
    warmup = check_steps("warmup_steps", warmup_steps, name)
    decay = check_steps("decay_steps", decay_steps, name)
    check_not_negative(
        "warmup_steps", warmup, f"optax.{name} would start the cosine decay at step {warmup}"
    )
    if decay <= warmup:
        raise ValueError(
            f"decay_steps ({decay}) must be greater than warmup_steps ({warmup}) (optax.{name} "
            "raises too: its cosine part would have no steps)"
        )

    def schedule(count: jax.Array) -> jax.Array:
        k = _as_float(count)
        init, peak, end = _as_float(init_value), _as_float(peak_value), _as_float(end_value)
        warm = _linear_value(k, init, peak, warmup, 0) if warmup > 0 else init
        is_zero = peak == 0.0
        alpha = jnp.where(is_zero, 0.0, end / jnp.where(is_zero, 1.0, peak))
        factor = _cosine_factor(k - float(warmup), decay - warmup, alpha, _as_float(exponent))
        decayed = peak * factor
        return jnp.where(k < float(warmup), warm, decayed)

    return schedule


def exponential_decay(
    init_value: Any,
    transition_steps: int,
    decay_rate: Any,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Any = None,
) -> Schedule:
    r"""Exponential decay, as ``optax.exponential_decay`` (same argument order).

    .. math::
        \alpha_k = \begin{cases} a & k \le B \\ a\,r^{(k - B)/K} & k > B \end{cases}

    with :math:`\lfloor (k - B)/K \rfloor` as the exponent when ``staircase``. With
    ``end_value``, the value is clipped to it: from below when :math:`r < 1`, from above
    otherwise. As in optax, ``transition_steps=0`` or ``decay_rate=0`` give :math:`a` at every
    step (``end_value`` is then not applied).

    Args:
        init_value: :math:`a \ge 0`.
        transition_steps: :math:`K \ge 0`.
        decay_rate: :math:`r \ge 0`; above 1 the schedule grows.
        transition_begin: :math:`B \ge 0`, the step the decay starts at.
        staircase: decay in whole steps of :math:`K`.
        end_value: ``None``, or a bound :math:`\ge 0` the schedule does not pass.

    Returns:
        A schedule ``count -> learning rate``.

    Raises:
        ValueError: a value is negative or not finite (a negative ``decay_rate`` gives nan or
            alternating signs in optax); a step count is negative (optax holds ``init_value``
            for ``transition_steps < 0`` and starts at 0 for ``transition_begin < 0``) or not
            an int; ``staircase`` is not a bool.
        TypeError: a value is not a number, an array or a tracer.
    """
    name = "exponential_decay"
    check_value("init_value", init_value, name)
    check_value("decay_rate", decay_rate, name, consequence=" and gives nan or negative values")
    if end_value is not None:
        check_value("end_value", end_value, name)
    steps = check_steps("transition_steps", transition_steps, name)
    begin = check_steps("transition_begin", transition_begin, name)
    check_not_negative(
        "transition_steps", steps, f"optax.{name} would hold init_value at every step"
    )
    check_not_negative("transition_begin", begin, f"optax.{name} would start at step 0")
    if not isinstance(staircase, (bool, np.bool_)):
        raise ValueError(
            f"staircase must be a bool, got {staircase!r} (optax.{name} would use its truth value)"
        )
    if steps == 0:
        return constant(init_value)

    def schedule(count: jax.Array) -> jax.Array:
        init, rate = _as_float(init_value), _as_float(decay_rate)
        since = _as_float(count) - float(begin)
        power = since / float(steps)
        if staircase:
            power = jnp.floor(power)
        value = jnp.where(since <= 0.0, init, init * jnp.power(rate, power))
        if end_value is not None:
            end = _as_float(end_value)
            value = jnp.where(rate < 1.0, jnp.maximum(value, end), jnp.minimum(value, end))
        return jnp.where(rate == 0.0, init, value)

    return schedule


def inverse_sqrt(init_value: Any) -> Schedule:
    r"""The decay of Kingma & Ba's convergence analysis: :math:`\alpha_t = a / \sqrt{t}`
    with :math:`t = k + 1`, the bias-correction step. optax has no such schedule.

    Args:
        init_value: :math:`a \ge 0`.

    Returns:
        A schedule ``count -> learning rate``.

    Raises:
        ValueError: ``init_value`` is negative, not finite or a bool.
        TypeError: a value is not a number, an array or a tracer.
    """
    check_value("init_value", init_value, None)

    def schedule(count: jax.Array) -> jax.Array:
        return _as_float(init_value) / jnp.sqrt(_as_float(count) + 1.0)

    return schedule
