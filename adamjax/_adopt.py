r"""ADOPT (Taniguchi et al., 2024): normalize the gradient by the *previous* second moment, then
take its momentum.

Adam divides its momentum by a second moment that already contains the current gradient, which
correlates the two; ADOPT divides each gradient by the second moment of the gradients before
it, and averages the normalized gradients afterwards. It converges for any :math:`b_2`. Its
chain normalizes first and averages last::

    adopt_normalize(b2, eps) -> clip_by_schedule(clip_value_fn) -> ema_momentum(b1)
        -> scale_by_learning_rate(lr)

.. math::
    u_t = \operatorname{clip}_{c(t-1)}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}\right),
    \qquad m_t = b_1 m_{t-1} + (1 - b_1) u_t, \qquad \theta_t = \theta_{t-1} - \alpha_t m_t

with :math:`v_1 = g_1^2` and :math:`v_t = b_2 v_{t-1} + (1 - b_2) g_t^2`. The first step only
measures :math:`v_1`: its update is zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from adamjax._arraymath import (
    abs_square,
    interpolate,
    moving_average_square,
    zeros_like_params,
)
from adamjax._base import GradientTransformation, Params, PerLeaf, PerLeafOrSchedule, Updates
from adamjax._blockwise import BlockwiseInt8
from adamjax._combine import chain
from adamjax._estimates import expect_gradients
from adamjax._placement import zero_count
from adamjax._scale import ScheduleState, evaluate_schedule, scale_by_learning_rate
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
    unzip,
)
from adamjax._validate import check_dtype, hyperparameter, is_function

__all__ = [
    "AdoptNormalizeState",
    "EmaMomentumState",
    "adopt",
    "adopt_normalize",
    "clip_by_schedule",
    "ema_momentum",
    "ema_momentum_named",
    "quarter_power",
]


def quarter_power(count: jax.Array) -> jax.Array:
    r"""ADOPT's default clipping bound :math:`c(k) = k^{1/4}` after ``k`` steps (optax's
    ``lambda x: x**0.25``), in JAX's default float dtype, so it also runs under strict dtype
    promotion.

    Args:
        count: the number of steps taken, an integer array.

    Returns:
        :math:`k^{1/4}` as a float array of the same shape.
    """
    count = jnp.asarray(count)
    return count.astype(jax.dtypes.canonicalize_dtype(jnp.float64)) ** 0.25


class AdoptNormalizeState(NamedTuple):
    """State of :func:`adopt_normalize`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    nu: Updates  # v: moving average of |g|^2 (real dtype); |g_1|^2 after the first step


def _adopt_leaf(
    g: jax.Array, v: jax.Array, b2: Any, eps: Any, first: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One leaf of :func:`adopt_normalize`: ``(g / max(sqrt(v), eps)`` or 0 on the first
    step, the new ``v``)."""
    dtype = compute_dtype(g.dtype, v.dtype)
    real = real_dtype(dtype)
    scale = jnp.maximum(jnp.sqrt(v.astype(real)), cast_hyperparameter(eps, real))
    grad = g.astype(dtype)
    normalized = jnp.where(first, jnp.zeros_like(grad), grad / scale.astype(dtype))
    square = abs_square(g).astype(v.dtype)
    nu = jnp.where(first, square, moving_average_square(g, v, b2))
    return normalized.astype(g.dtype), nu


def adopt_normalize(b2: PerLeaf = 0.9999, eps: PerLeaf = 1e-6) -> GradientTransformation:
    r"""Divide each gradient by the root of the second moment of the gradients before it.

    .. math::
        u_t = \frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, \qquad
        v_t = b_2 v_{t-1} + (1 - b_2) |g_t|^2

    for :math:`t \ge 2`; the first step sets :math:`v_1 = |g_1|^2` and emits
    :math:`u_1 = 0` (there is no earlier second moment to divide by; optax discards that step's
    value the same way). ``eps`` bounds the divisor from below (:math:`\max`, not a sum).
    Takes gradients and emits updates; ADOPT follows it with an optional
    :func:`clip_by_schedule` and :func:`ema_momentum`.

    Args:
        b2: decay of the second moment, in ``[0, 1)``.
        eps: lower bound of :math:`\sqrt{v_{t-1}}`, ``>= 0``.

    Returns:
        A :class:`adamjax.GradientTransformation`.

    Raises:
        ValueError: naming the argument, for a value out of range.

    References:
        Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any* :math:`\beta_2` *with
        the Optimal Rate*, NeurIPS 2024, https://arxiv.org/abs/2411.02853
    """
    b2 = hyperparameter("b2", b2, upper=1.0)
    eps = hyperparameter("eps", eps)

    def init_fn(params: Params) -> AdoptNormalizeState:
        check_float_leaves(params)
        leafwise(b2, params, "b2")
        leafwise(eps, params, "eps")
        nu = zeros_like_params(params, real=True)
        return AdoptNormalizeState(count=zero_count(params), nu=nu)

    def update_fn(
        grads: Updates, state: AdoptNormalizeState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, AdoptNormalizeState]:
        del params
        expect_gradients(grads, "adopt_normalize")
        check_matching(state.nu, grads, other_name="grads")
        check_gradient_dtypes(state.nu, grads, reference_name="state.nu", check_complex=False)
        first = state.count == 0
        pairs = map_leaves(
            lambda g, v, b, e: _adopt_leaf(g, v, b, e, first),
            grads,
            state.nu,
            leafwise(b2, grads, "b2"),
            leafwise(eps, grads, "eps"),
        )
        normalized, nu = unzip(pairs, grads)
        return normalized, AdoptNormalizeState(count=saturating_increment(state.count), nu=nu)

    return GradientTransformation(init_fn, update_fn)


def _clip_leaf(u: jax.Array, bound: Any) -> jax.Array:
    """``u`` clipped to ``[-bound, bound]``; a complex value's magnitude clipped to ``bound``."""
    dtype = compute_dtype(u.dtype)
    real = real_dtype(dtype)
    limit = jnp.asarray(bound).astype(real)
    value = u.astype(dtype)
    if jnp.iscomplexobj(value):
        size = jnp.abs(value)
        shrink = jnp.where(size > limit, limit / jnp.where(size > limit, size, 1), 1)
        return (value * shrink.astype(dtype)).astype(u.dtype)
    return jnp.clip(value, -limit, limit).astype(u.dtype)


def clip_by_schedule(clip_value_fn: Callable[[jax.Array], ArrayLike]) -> GradientTransformation:
    r"""Clip every element to :math:`[-c(k), c(k)]`, a bound that changes with the step.

    .. math::
        u \leftarrow \min(\max(u, -c(k)), c(k))

    where :math:`k` is the number of steps already taken (``clip_value_fn`` gets the int32 count,
    0 on the first step, as optax's ADOPT calls it). A complex element keeps its phase and has
    its magnitude clipped to :math:`c(k)`. Takes gradients or updates.

    Args:
        clip_value_fn: a function ``count -> bound`` returning a scalar ``>= 0``, e.g.
            :func:`quarter_power`.

    Returns:
        A :class:`adamjax.GradientTransformation` whose state is the step count.

    Raises:
        TypeError: if ``clip_value_fn`` is not callable.
        ValueError: at ``update``, for a bound that is not a scalar or, where it is concrete,
            is negative.
    """
    if not is_function(clip_value_fn):
        raise TypeError(f"clip_value_fn must be a function count -> bound, got {clip_value_fn!r}")

    def init_fn(params: Params) -> ScheduleState:
        return ScheduleState(count=zero_count(params))

    def update_fn(
        updates: Updates, state: ScheduleState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, ScheduleState]:
        del params
        expect_gradients(updates, "clip_by_schedule")
        bound = evaluate_schedule(clip_value_fn, state.count, "clip_value_fn")
        clipped = map_leaves(lambda u: _clip_leaf(u, bound), updates)
        return clipped, ScheduleState(count=saturating_increment(state.count))

    return GradientTransformation(init_fn, update_fn)


class EmaMomentumState(NamedTuple):
    """State of :func:`ema_momentum`."""

    mu: Updates  # m: moving average of the updates received (decay b1)


def _ema_leaf(u: jax.Array, m: jax.Array, b1: Any, nesterov: bool) -> tuple[jax.Array, jax.Array]:
    """``(output in u's dtype, new m in m's dtype)``; the output is taken before ``m`` is cast
    to its storage dtype."""
    fresh = interpolate(u, m, b1)
    out = interpolate(u, fresh, b1) if nesterov else fresh
    return out.astype(u.dtype), fresh.astype(m.dtype)


def ema_momentum(
    b1: PerLeaf = 0.9, mu_dtype: DTypeLike | None = None, *, nesterov: bool = False
) -> GradientTransformation:
    r"""Momentum as a moving average of the updates it receives, not bias-corrected.

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) u_t, \qquad
        \text{out}_t = \begin{cases} b_1 m_t + (1 - b_1) u_t & \text{Nesterov} \\
        m_t & \text{otherwise} \end{cases}

    from :math:`m_0 = 0`. Takes gradients or updates (ADOPT's normalized gradients, say).

    Args:
        b1: decay of the average, in ``[0, 1)``.
        mu_dtype: storage dtype of :math:`m` (default: the param's dtype), a float dtype (not
            :func:`adamjax.blockwise_int8`). Arithmetic runs in float32 or wider either way.
        nesterov: emit Nesterov's look-ahead :math:`b_1 m_t + (1 - b_1) u_t`.

    Returns:
        A :class:`adamjax.GradientTransformation`.

    Raises:
        ValueError: naming the argument, for a decay out of range.
        TypeError: naming ``mu_dtype``, for a non-float dtype or :func:`adamjax.blockwise_int8`.
    """
    return ema_momentum_named(b1, mu_dtype, nesterov=nesterov, name="b1")


def ema_momentum_named(
    b1: PerLeaf, mu_dtype: DTypeLike | None, *, nesterov: bool, name: str
) -> GradientTransformation:
    """:func:`ema_momentum`, its errors naming the decay ``name`` (an alias's own argument).

    Args:
        b1: as in :func:`ema_momentum`.
        mu_dtype: as in :func:`ema_momentum`.
        nesterov: as in :func:`ema_momentum`.
        name: the argument's name in error messages.

    Returns:
        The :func:`ema_momentum` transform.
    """
    b1 = hyperparameter(name, b1, upper=1.0)
    if isinstance(mu_dtype, BlockwiseInt8):
        raise TypeError(
            f"mu_dtype={mu_dtype!r}: the momentum m of ema_momentum() (ADOPT's first moment) "
            "cannot be stored in 8 bits; blockwise_int8() stores the moments kept by moments()"
        )
    check_dtype("mu_dtype", mu_dtype)

    def init_fn(params: Params) -> EmaMomentumState:
        check_float_leaves(params)
        leafwise(b1, params, name)
        return EmaMomentumState(mu=zeros_like_params(params, mu_dtype))

    def update_fn(
        updates: Updates, state: EmaMomentumState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmaMomentumState]:
        del params
        expect_gradients(updates, "ema_momentum")
        check_matching(state.mu, updates, other_name="updates")
        check_gradient_dtypes(state.mu, updates, reference_name="state.mu", other_name="updates")
        pairs = map_leaves(
            lambda u, m, b: _ema_leaf(u, m, b, nesterov),
            updates,
            state.mu,
            leafwise(b1, updates, name),
        )
        out, mu = unzip(pairs, updates)
        return out, EmaMomentumState(mu=mu)

    return GradientTransformation(init_fn, update_fn)


def adopt(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.9999,
    eps: PerLeaf = 1e-6,
    mu_dtype: DTypeLike | None = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], ArrayLike] = quarter_power,
) -> GradientTransformation:
    r"""ADOPT: Adam that converges with any :math:`b_2` (Taniguchi et al., 2024), as in optax.

    .. math::
        u_t = \operatorname{clip}_{c(t-1)}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}
        \right), \qquad m_t = b_1 m_{t-1} + (1 - b_1) u_t, \qquad
        \theta_t = \theta_{t-1} - \alpha_t m_t

    with the second moment :math:`v_t` of :func:`adopt_normalize` (:math:`v_1 = g_1^2`) and the
    bound :math:`c(k) =` ``clip_value_fn(k)`` after :math:`k` steps
    (:math:`k^{1/4}` by default, so :math:`c(0) = 0`). The first update is zero: it only
    measures :math:`v_1`. With ``nesterov``, the step is
    :math:`b_1 m_t + (1 - b_1) u_t` instead of :math:`m_t`.
    ``chain(adopt_normalize(b2, eps), clip_by_schedule(clip_value_fn),
    ema_momentum(b1, mu_dtype, nesterov=nesterov), scale_by_learning_rate(learning_rate))``,
    without the clipping block when ``use_clipping`` is false.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: decay of the momentum, in ``[0, 1)``.
        b2: decay of the second moment, in ``[0, 1)``.
        eps: lower bound of :math:`\sqrt{v_{t-1}}`, ``>= 0``.
        mu_dtype: storage dtype of :math:`m` (default: the param's dtype), a float dtype: not
            :func:`adamjax.blockwise_int8`, as ADOPT's momentum is not kept by ``moments()``.
        nesterov: take Nesterov's look-ahead momentum.
        use_clipping: clip the normalized gradient (the paper's stabilized variant).
        clip_value_fn: the bound ``count -> c`` (called with the int32 number of steps already
            taken); optax's default :math:`k^{1/4}` is :func:`quarter_power`.

    Arguments, order, defaults and meaning are optax's (``optax.contrib.adopt``).

    Returns:
        The chain above.

    Raises:
        ValueError: naming the argument, for a value out of range.
        TypeError: if ``clip_value_fn`` is not callable while ``use_clipping`` is set, or
            naming ``mu_dtype`` for :func:`adamjax.blockwise_int8`.

    References:
        Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any* :math:`\beta_2` *with
        the Optimal Rate*, NeurIPS 2024, https://arxiv.org/abs/2411.02853
    """
    clipping = (clip_by_schedule(clip_value_fn),) if use_clipping else ()
    return chain(
        adopt_normalize(b2, eps),
        *clipping,
        ema_momentum(b1, mu_dtype, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )
