r"""Moment estimators: the first stage of the Adam pipeline.

A moment estimator takes gradients and emits :class:`~adamjax.Moments` (the protocol of
``_estimates``): its estimates together with the decay rates, the step count and the gradient,
which the stages after it read. Adam's estimator keeps, for each leaf with gradient :math:`g_t`,

.. math::
    m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad v_t = b_2 v_{t-1} + (1 - b_2) |g_t|^2 ;

the others change one of the two statistics:

* :func:`moments` (Adam, RMSProp) keeps moving averages of :math:`g` and :math:`|g|^2`;
* :func:`infinity_moments` (Adamax) keeps a moving average of :math:`g` and an infinity norm;
* :func:`sum_of_squares` (Adagrad) keeps a running sum of :math:`|g|^2`;
* :func:`max_second_moment` (AMSGrad) replaces a moving average of :math:`|g|^2` by its
  running maximum.

Each estimator's state is a type of its own (:class:`MomentsState`, :class:`InfinityNormState`,
:class:`SumOfSquaresState`), so a statistic is never read as another: an estimator refuses the
state of another.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from adamjax._arraymath import (
    abs_square,
    full_like_params,
    moving_average,
    moving_average_kept,
    moving_average_square_kept,
    running_max_kept,
    zeros_like_params,
)
from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    GradientTransformation,
    Params,
    PerLeaf,
    Updates,
    declare_stage,
)
from adamjax._blockwise import BlockwiseInt8, check_storage, stand_ins
from adamjax._estimates import Moments, expect_gradients_like, expect_moments

# Moments and its guards moved to _estimates; modules that import them from here still can.
from adamjax._estimates import expect_gradients as expect_gradients
from adamjax._placement import zero_count
from adamjax._tree import (
    cast_hyperparameter,
    check_float_leaves,
    check_matching,
    compute_dtype,
    leafwise,
    map_leaves,
    real_dtype,
    saturating_increment,
    unzip,
)
from adamjax._validate import hyperparameter

__all__ = [
    "InfinityNormState",
    "MaxSecondMomentState",
    "MomentsState",
    "SumOfSquaresState",
    "check_estimator_update",
    "infinity_moments",
    "max_second_moment",
    "moments",
    "sum_of_squares",
]


class MomentsState(NamedTuple):
    """State of :func:`moments`: moving averages of ``g`` and ``|g|^2``."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates | None  # first-moment estimate; None when there is no first moment
    nu: Updates  # mean of squares |g|^2 (real dtype, also for complex params)


class InfinityNormState(NamedTuple):
    """State of :func:`infinity_moments` (Adamax): its ``nu`` is an infinity norm, not a mean
    of squares. The fields are named as in :class:`MomentsState`, so checkpoint paths agree."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # first-moment estimate
    nu: Updates  # exponentially weighted infinity norm max(b2 u, |g| + eps)


class SumOfSquaresState(NamedTuple):
    """State of :func:`sum_of_squares` (Adagrad): its ``nu`` is a running sum, not a mean."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: None  # no first moment: always None
    nu: Updates  # running sum of |g|^2 from initial_accumulator_value


def check_estimator_update(grads: Updates, state: Any, own: type, consumer: str) -> None:
    """Check what a moment estimator's ``update`` receives: gradients, and its own state.

    Args:
        grads: what the estimator received.
        state: the state it received; its ``nu`` has the params' structure.
        own: the estimator's state type: a state of another NamedTuple type is refused, so that
            no estimator reads another's statistic (an infinity norm as a mean of squares).
        consumer: the estimator's name, for error messages.

    Raises:
        TypeError: for moment estimates instead of gradients, another estimator's state, or a
            gradient whose dtype cannot update the state (naming the path).
        ValueError: naming the path where the gradients do not match the state.
    """
    if hasattr(state, "_fields") and not isinstance(state, own):
        raise TypeError(
            f"{consumer}() takes the {own.__name__} its init returned, got a "
            f"{type(state).__name__}: each moment estimator reads only its own statistics"
        )
    if state.mu is None:  # nu is real even for complex params: only require inexact grads
        expect_gradients_like(grads, state.nu, consumer, "state.nu", check_complex=False)
    else:
        expect_gradients_like(grads, state.mu, consumer, "state.mu")


def _stand_ins(state: Any, mu_dtype: Any, nu_dtype: Any) -> Any:
    """The state with 8-bit leaves replaced by the float moments they stand for, for checks."""
    if not isinstance(state, MomentsState):
        return state
    mu, nu = stand_ins(state.mu, mu_dtype, "state.mu"), stand_ins(state.nu, nu_dtype, "state.nu")
    return state._replace(mu=mu, nu=nu)


def moments(
    b1: PerLeaf | None = 0.9,
    b2: PerLeaf = 0.999,
    *,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""Exponential moving averages of the gradient and of its squared magnitude.

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad v_t = b_2 v_{t-1} + (1 - b_2) |g_t|^2

    Emits the biased estimates :math:`m_t, v_t` as :class:`adamjax.Moments`; follow with
    :func:`adamjax.bias_correction` (optional) and :func:`adamjax.normalize`.

    Args:
        b1: decay of the first moment, in ``[0, 1)``; ``None`` keeps no first moment and passes
            the gradient itself (RMSProp).
        b2: decay of the second moment, in ``[0, 1)``.
        mu_dtype: dtype to store :math:`m` in (default: the param's dtype), or
            :func:`adamjax.blockwise_int8` for 8-bit blocks.
        nu_dtype: dtype to store :math:`v` in (default: the param's real dtype; float32 for
            float16 params), or :func:`adamjax.blockwise_int8`. Arithmetic runs in float32 or
            wider either way, and the moments passed on are those of the arithmetic.
        nesterov: emit Nesterov's look-ahead first moment
            (:func:`~adamjax._arraymath.nesterov_look_ahead`, NAdam), bias-corrected term by
            term by :func:`adamjax.bias_correction`.

    Returns:
        A :class:`adamjax.GradientTransformation` taking gradients and emitting
        :class:`adamjax.Moments`.
    """
    b1 = hyperparameter("b1", b1, upper=1.0, optional=True)
    b2 = hyperparameter("b2", b2, upper=1.0)
    check_storage("mu_dtype", mu_dtype)
    check_storage("nu_dtype", nu_dtype, complex_ok=False)
    if nesterov and b1 is None:
        raise ValueError("nesterov=True needs a first moment: b1 must not be None")

    def init_fn(params: Params) -> MomentsState:
        check_float_leaves(params)
        mu = None if b1 is None else zeros_like_params(params, mu_dtype)
        nu = zeros_like_params(params, nu_dtype, real=True)
        return MomentsState(count=zero_count(params), mu=mu, nu=nu)

    def update_fn(
        grads: Updates, state: MomentsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, MomentsState]:
        del params
        stood_for = _stand_ins(state, mu_dtype, nu_dtype)
        check_estimator_update(grads, stood_for, MomentsState, "moments")
        count = saturating_increment(state.count)
        square = partial(moving_average_square_kept, fmt=nu_dtype, step=count)
        nu, kept_nu = unzip(map_leaves(square, grads, state.nu, leafwise(b2, grads, "b2")), grads)
        mu = kept_mu = None
        if b1 is not None:
            average = partial(moving_average_kept, fmt=mu_dtype, step=count)
            pairs = map_leaves(average, grads, state.mu, leafwise(b1, grads, "b1"))
            mu, kept_mu = unzip(pairs, grads)
        estimates = Moments(
            mu=grads if mu is None else mu,
            nu=nu,
            grad=grads,
            b1=b1,
            b2=b2,
            count=count,
            nesterov=nesterov,
        )
        return estimates, MomentsState(count=count, mu=kept_mu, nu=kept_nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def _infinity_norm(g: jax.Array, old: jax.Array, decay: Any, eps: Any) -> jax.Array:
    """``max(decay * old, |g| + eps)`` in float32 or wider, stored in ``old``'s dtype."""
    dtype = compute_dtype(real_dtype(g.dtype), old.dtype)
    size = jnp.abs(g.astype(compute_dtype(g.dtype))).astype(dtype)
    new = jnp.maximum(
        cast_hyperparameter(decay, dtype) * old.astype(dtype),
        size + cast_hyperparameter(eps, dtype),
    )
    return new.astype(old.dtype)


def infinity_moments(
    b1: PerLeaf = 0.9, b2: PerLeaf = 0.999, eps: PerLeaf = 1e-8
) -> GradientTransformation:
    r"""First moment and exponentially weighted infinity norm (Adamax).

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad u_t = \max(b_2 u_{t-1}, |g_t| + \epsilon)

    ``eps`` sits inside the max, as in torch and optax, so :math:`u_t \ge \epsilon > 0`;
    normalize with ``normalize(eps=0.0)``. Kingma & Ba, section 7.1.

    Args:
        b1: decay of the first moment, in ``[0, 1)``.
        b2: decay of the infinity norm, in ``[0, 1)``.
        eps: added to :math:`|g_t|`, ``>= 0``.

    :math:`u` is stored in float32 for float16 params: ``eps = 1e-8`` rounds to zero in
    float16, which would make the update ``0 / 0`` on a zero gradient.

    Returns:
        A :class:`adamjax.GradientTransformation` taking gradients and emitting
            :class:`adamjax.Moments`.
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    b2 = hyperparameter("b2", b2, upper=1.0)
    eps = hyperparameter("eps", eps)

    def init_fn(params: Params) -> InfinityNormState:
        check_float_leaves(params)
        mu = zeros_like_params(params)
        nu = zeros_like_params(params, real=True)
        return InfinityNormState(count=zero_count(params), mu=mu, nu=nu)

    def update_fn(
        grads: Updates, state: InfinityNormState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, InfinityNormState]:
        del params
        check_estimator_update(grads, state, InfinityNormState, "infinity_moments")
        mu = map_leaves(moving_average, grads, state.mu, leafwise(b1, grads, "b1"))
        nu = map_leaves(
            _infinity_norm, grads, state.nu, leafwise(b2, grads, "b2"), leafwise(eps, grads, "eps")
        )
        count = saturating_increment(state.count)
        estimates = Moments(
            mu=mu, nu=nu, grad=grads, b1=b1, b2=b2, count=count, kind="infinity_norm"
        )
        return estimates, InfinityNormState(count=count, mu=mu, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def _add_square(g: jax.Array, old: jax.Array) -> jax.Array:
    """``old + |g|^2`` in float32 or wider, stored in ``old``'s dtype."""
    dtype = compute_dtype(real_dtype(g.dtype), old.dtype)
    return (old.astype(dtype) + abs_square(g).astype(dtype)).astype(old.dtype)


def sum_of_squares(initial_accumulator_value: PerLeaf = 0.0) -> GradientTransformation:
    r"""Running sum of squared gradient magnitudes (Adagrad).

    .. math::
        s_t = s_{t-1} + |g_t|^2, \qquad s_0 = \text{initial\_accumulator\_value}

    Emits :class:`adamjax.Moments` whose first moment is the gradient itself; there is nothing to
    bias-correct.

    Args:
        initial_accumulator_value: starting value of :math:`s`, ``>= 0``.

    Returns:
        A :class:`adamjax.GradientTransformation` taking gradients and emitting
            :class:`adamjax.Moments`.
    """
    initial_accumulator_value = hyperparameter(
        "initial_accumulator_value", initial_accumulator_value
    )

    def init_fn(params: Params) -> SumOfSquaresState:
        check_float_leaves(params)
        start = leafwise(initial_accumulator_value, params, "initial_accumulator_value")
        nu = full_like_params(params, start, real=True)
        return SumOfSquaresState(count=zero_count(params), mu=None, nu=nu)

    def update_fn(
        grads: Updates, state: SumOfSquaresState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, SumOfSquaresState]:
        del params
        check_estimator_update(grads, state, SumOfSquaresState, "sum_of_squares")
        nu = map_leaves(_add_square, grads, state.nu)
        count = saturating_increment(state.count)
        estimates = Moments(
            mu=grads, nu=nu, grad=grads, b1=None, b2=None, count=count, kind="sum_of_squares"
        )
        return estimates, SumOfSquaresState(count=count, mu=None, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


class MaxSecondMomentState(NamedTuple):
    """State of :func:`max_second_moment`."""

    nu_max: Updates  # running maximum of the second-moment estimates received


def max_second_moment(
    *, nu_max_dtype: DTypeLike | BlockwiseInt8 | None = None
) -> GradientTransformation:
    r"""Replace the second moment by its running maximum (Reddi et al., 2018).

    .. math::
        \bar v_t = \max(\bar v_{t-1}, v_t)

    Where it stands in the chain chooses the convention:

    * ``moments() -> bias_correction() -> max_second_moment()``: the maximum of the bias-corrected
      :math:`\hat v_t` (the paper and optax);
    * ``moments() -> max_second_moment() -> bias_correction()``: the maximum of the raw :math:`v_t`,
      corrected afterwards (torch and Keras).

    Args:
        nu_max_dtype: dtype to store the maximum in (default: the param's real dtype; float32
            for float16 params), or :func:`adamjax.blockwise_int8`.

    Returns:
        A :class:`adamjax.GradientTransformation` taking :class:`adamjax.Moments` and emitting
            :class:`adamjax.Moments`.
    """
    check_storage("nu_max_dtype", nu_max_dtype, complex_ok=False)

    def init_fn(params: Params) -> MaxSecondMomentState:
        check_float_leaves(params)
        return MaxSecondMomentState(nu_max=zeros_like_params(params, nu_max_dtype, real=True))

    def update_fn(
        estimates: Moments,
        state: MaxSecondMomentState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Moments, MaxSecondMomentState]:
        del params
        expect_moments(estimates, "max_second_moment")
        if not estimates.is_moving_average:
            raise TypeError(
                "max_second_moment() takes a moving average of squared gradients, got "
                f"{estimates.kind} moments: use it after moments()"
            )
        stood_for = stand_ins(state.nu_max, nu_max_dtype, "state.nu_max")
        check_matching(stood_for, estimates.nu, other_name="second moments")
        running_max = partial(running_max_kept, fmt=nu_max_dtype)
        nu, nu_max = unzip(map_leaves(running_max, estimates.nu, state.nu_max), estimates.nu)
        return estimates.replace(nu=nu), MaxSecondMomentState(nu_max=nu_max)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=MOMENTS, emits=MOMENTS)
