r"""Moment estimators: the first stage of the Adam pipeline.

A moment estimator takes gradients and emits :class:`Moments`, the moment estimates together
with everything later stages need to use them (decay rates, step count, the gradient). The
stages that follow read those fields, so no hyperparameter is ever given twice::

    moments(b1, b2) -> [max_second_moment()] -> bias_correction() -> normalize(eps) -> updates

For each leaf with gradient :math:`g_t`, :func:`moments` keeps

.. math::
    m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad v_t = b_2 v_{t-1} + (1 - b_2) |g_t|^2 .
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from adamjax._arraymath import moving_average, moving_average_square, zeros_like_params
from adamjax._base import GRADIENTS, MOMENTS, GradientTransformation, Params, Updates, declare_stage
from adamjax._placement import zero_count
from adamjax._tree import (
    cast_hyperparameter,
    check_float_leaves,
    check_gradient_dtypes,
    check_matching,
    compute_dtype,
    leafwise,
    map_leaves,
    one_minus,
    real_dtype,
    saturating_increment,
    second_moment_dtype,
)
from adamjax._validate import check_dtype, hyperparameter

__all__ = [
    "InfinityNormState",
    "MaxSecondMomentState",
    "Moments",
    "MomentsState",
    "SumOfSquaresState",
    "max_second_moment",
    "expect_gradients",
    "expect_moments",
    "infinity_moments",
    "moments",
    "sum_of_squares",
]

MomentKind = Literal["mean_square", "sum_of_squares", "infinity_norm"]


@dataclasses.dataclass(frozen=True)
class Moments:
    """Moment estimates on their way from a moment estimator to :func:`adamjax.normalize`.

    This is what :func:`adamjax.moments` (and the other estimators) pass downstream in place of
    updates. It is a pytree, so it can cross ``jit`` and ``vmap`` boundaries.

    Attributes:
        mu: first-moment estimate per leaf (the gradient itself when there is no first moment).
        nu: second-moment estimate per leaf: a moving average of ``|g|^2`` (``mean_square``),
            a running sum of ``|g|^2`` (``sum_of_squares``) or an infinity norm
            (``infinity_norm``).
        grad: the gradient of this step; the updates take its dtype.
        b1: decay rate of ``mu`` (number, array or per-leaf tree), ``None`` if ``mu`` is the
            gradient.
        b2: decay rate of ``nu``, ``None`` for a running sum.
        count: ``t``, the number of updates including this one (int32, saturating).
        kind: which second moment ``nu`` holds (static).
        corrected: whether :func:`adamjax.bias_correction` has been applied (static).
        nesterov: whether ``mu`` still has to be turned into Nesterov's look-ahead estimate
            ``b1 * mu + (1 - b1) * grad`` (static).
    """

    mu: Updates
    nu: Updates
    grad: Updates
    b1: Any
    b2: Any
    count: jax.Array
    kind: MomentKind = "mean_square"
    corrected: bool = False
    nesterov: bool = False

    def first_moment(self) -> Updates:
        """The first-moment estimate to normalize (with Nesterov's look-ahead if pending)."""
        if not self.nesterov:
            return self.mu
        b1 = leafwise(self.b1, self.mu, "b1")

        def look_ahead(m: jax.Array, g: jax.Array, b: Any) -> jax.Array:
            dtype = compute_dtype(m.dtype, g.dtype)
            decay = cast_hyperparameter(b, real_dtype(dtype))
            rest = one_minus(b, real_dtype(dtype))
            return decay * m.astype(dtype) + rest * g.astype(dtype)

        return map_leaves(look_ahead, self.mu, self.grad, b1)

    @property
    def takes_root(self) -> bool:
        """Whether ``nu`` is a statistic of ``|g|^2`` whose square root normalizes (not an
        infinity norm)."""
        return self.kind != "infinity_norm"

    @property
    def is_moving_average(self) -> bool:
        """Whether ``nu`` is a moving average of ``|g|^2`` (bias-correctable, bounded by its
        running maximum), not a running sum or an infinity norm."""
        return self.kind == "mean_square"

    def replace(self, **changes: Any) -> Moments:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    Moments,
    data_fields=["mu", "nu", "grad", "b1", "b2", "count"],
    meta_fields=["kind", "corrected", "nesterov"],
)


def expect_moments(value: Any, consumer: str) -> Moments:
    """Raise ``TypeError`` unless ``value`` is :class:`Moments` (for a moments consumer)."""
    if not isinstance(value, Moments):
        raise TypeError(
            f"{consumer}() takes moment estimates but received a gradient tree: a moment "
            f"estimator such as moments() must come before {consumer}() in the chain"
        )
    count = value.count
    if not (hasattr(count, "dtype") and jnp.issubdtype(count.dtype, jnp.integer)):
        raise TypeError(
            f"{consumer}() received moment estimates whose step count is not an integer: a "
            "transform that takes gradients (an optax transform, say) was applied to them. "
            "Place it before the moment estimator or after normalize(); adamjax.chain() checks "
            "the order when it is built."
        )
    return value


def expect_gradients(value: Any, consumer: str) -> None:
    """Raise ``TypeError`` if ``value`` is :class:`Moments` (for a gradient consumer)."""
    if isinstance(value, Moments):
        raise TypeError(
            f"{consumer}() takes a gradient tree but received moment estimates: normalize() "
            f"must come between the moment estimator and {consumer}() in the chain"
        )


class MomentsState(NamedTuple):
    """State of :func:`moments`: moving averages of ``g`` and ``|g|^2``."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # first-moment estimate; None when there is no first moment
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


def _check_grads(grads: Updates, state: Any, consumer: str) -> None:
    expect_gradients(grads, consumer)
    check_matching(state.nu, grads, reference_name="params", other_name="grads")
    if state.mu is None:  # nu is real even for complex params: only require inexact grads
        check_gradient_dtypes(state.nu, grads, reference_name="state.nu", check_complex=False)
    else:
        check_gradient_dtypes(state.mu, grads, reference_name="state.mu")


def moments(
    b1: Any = 0.9,
    b2: Any = 0.999,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""Exponential moving averages of the gradient and of its squared magnitude.

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad v_t = b_2 v_{t-1} + (1 - b_2) |g_t|^2

    Emits the biased estimates :math:`m_t, v_t` as :class:`Moments`; follow with
    :func:`adamjax.bias_correction` (optional) and :func:`adamjax.normalize`.

    Args:
        b1: decay of the first moment, in ``[0, 1)``; ``None`` keeps no first moment and passes
            the gradient itself (RMSProp).
        b2: decay of the second moment, in ``[0, 1)``.
        mu_dtype: dtype to store :math:`m` in (default: the param's dtype).
        nu_dtype: dtype to store :math:`v` in (default: the param's real dtype; float32 for
            float16 params). Arithmetic runs
            in float32 or wider either way.
        nesterov: emit Nesterov's look-ahead :math:`b_1 m_t + (1 - b_1) g_t` as the first moment
            (NAdam), bias-corrected term by term by :func:`adamjax.bias_correction`.

    Returns:
        A :class:`adamjax.GradientTransformation` taking gradients and emitting
        :class:`Moments`.
    """
    b1 = hyperparameter("b1", b1, upper=1.0, optional=True)
    b2 = hyperparameter("b2", b2, upper=1.0)
    check_dtype("mu_dtype", mu_dtype)
    check_dtype("nu_dtype", nu_dtype, complex_ok=False)
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
        _check_grads(grads, state, "moments")
        nu = map_leaves(moving_average_square, grads, state.nu, leafwise(b2, grads, "b2"))
        if b1 is None:
            mu = None
        else:
            mu = map_leaves(moving_average, grads, state.mu, leafwise(b1, grads, "b1"))
        count = saturating_increment(state.count)
        estimates = Moments(
            mu=grads if mu is None else mu,
            nu=nu,
            grad=grads,
            b1=b1,
            b2=b2,
            count=count,
            nesterov=nesterov,
        )
        return estimates, MomentsState(count=count, mu=mu, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def infinity_moments(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8) -> GradientTransformation:
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
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    b2 = hyperparameter("b2", b2, upper=1.0)
    eps = hyperparameter("eps", eps)

    def init_fn(params: Params) -> InfinityNormState:
        check_float_leaves(params)
        mu = zeros_like_params(params)
        nu = zeros_like_params(params, real=True)
        return InfinityNormState(count=zero_count(params), mu=mu, nu=nu)

    def norm(g: jax.Array, old: jax.Array, decay: Any, eps: Any) -> jax.Array:
        dtype = compute_dtype(real_dtype(g.dtype), old.dtype)
        size = jnp.abs(g.astype(compute_dtype(g.dtype))).astype(dtype)
        new = jnp.maximum(
            cast_hyperparameter(decay, dtype) * old.astype(dtype),
            size + cast_hyperparameter(eps, dtype),
        )
        return new.astype(old.dtype)

    def update_fn(
        grads: Updates, state: InfinityNormState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, InfinityNormState]:
        del params
        _check_grads(grads, state, "infinity_moments")
        mu = map_leaves(moving_average, grads, state.mu, leafwise(b1, grads, "b1"))
        nu = map_leaves(
            norm, grads, state.nu, leafwise(b2, grads, "b2"), leafwise(eps, grads, "eps")
        )
        count = saturating_increment(state.count)
        estimates = Moments(
            mu=mu, nu=nu, grad=grads, b1=b1, b2=b2, count=count, kind="infinity_norm"
        )
        return estimates, InfinityNormState(count=count, mu=mu, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def sum_of_squares(initial_accumulator_value: Any = 0.0) -> GradientTransformation:
    r"""Running sum of squared gradient magnitudes (Adagrad).

    .. math::
        s_t = s_{t-1} + |g_t|^2, \qquad s_0 = \text{initial\_accumulator\_value}

    Emits :class:`Moments` whose first moment is the gradient itself; there is nothing to
    bias-correct.

    Args:
        initial_accumulator_value: starting value of :math:`s`, ``>= 0``.
    """
    initial_accumulator_value = hyperparameter(
        "initial_accumulator_value", initial_accumulator_value
    )

    def init_fn(params: Params) -> SumOfSquaresState:
        check_float_leaves(params)
        start = leafwise(initial_accumulator_value, params, "initial_accumulator_value")

        def fill(p: jax.Array, value: Any) -> jax.Array:
            dtype = second_moment_dtype(p.dtype)
            return jnp.full_like(p, cast_hyperparameter(value, dtype), dtype=dtype)

        return SumOfSquaresState(
            count=zero_count(params), mu=None, nu=map_leaves(fill, params, start)
        )

    def accumulate(g: jax.Array, old: jax.Array) -> jax.Array:
        dtype = compute_dtype(real_dtype(g.dtype), old.dtype)
        g = g.astype(compute_dtype(g.dtype))
        square = (g * jnp.conj(g)).real if jnp.iscomplexobj(g) else g * g
        return (old.astype(dtype) + square.astype(dtype)).astype(old.dtype)

    def update_fn(
        grads: Updates, state: SumOfSquaresState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, SumOfSquaresState]:
        del params
        _check_grads(grads, state, "sum_of_squares")
        nu = map_leaves(accumulate, grads, state.nu)
        count = saturating_increment(state.count)
        estimates = Moments(
            mu=grads, nu=nu, grad=grads, b1=None, b2=None, count=count, kind="sum_of_squares"
        )
        return estimates, SumOfSquaresState(count=count, mu=None, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


class MaxSecondMomentState(NamedTuple):
    """State of :func:`max_second_moment`."""

    nu_max: Updates  # running maximum of the second-moment estimates received


def max_second_moment(*, nu_max_dtype: Any = None) -> GradientTransformation:
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
            for float16 params).
    """
    check_dtype("nu_max_dtype", nu_max_dtype, complex_ok=False)

    def init_fn(params: Params) -> MaxSecondMomentState:
        check_float_leaves(params)
        return MaxSecondMomentState(nu_max=zeros_like_params(params, nu_max_dtype, real=True))

    def running_max(v: jax.Array, old: jax.Array) -> jax.Array:
        dtype = compute_dtype(v.dtype, old.dtype)
        return jnp.maximum(old.astype(dtype), v.astype(dtype))

    def update_fn(
        estimates: Moments,
        state: MaxSecondMomentState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Moments, MaxSecondMomentState]:
        del params
        expect_moments(estimates, "max_second_moment")
        if estimates.kind != "mean_square":
            raise TypeError(
                "max_second_moment() takes a moving average of squared gradients, got "
                f"{estimates.kind} moments: use it after moments()"
            )
        check_matching(state.nu_max, estimates.nu, other_name="second moments")
        nu = map_leaves(running_max, estimates.nu, state.nu_max)
        nu_max = map_leaves(lambda new, old: new.astype(old.dtype), nu, state.nu_max)
        return estimates.replace(nu=nu), MaxSecondMomentState(nu_max=nu_max)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=MOMENTS, emits=MOMENTS)
