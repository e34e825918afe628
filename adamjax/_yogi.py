r"""Yogi (Zaheer et al., 2018): Adam with an additive second-moment update.

Yogi replaces one block of Adam's chain, the moment estimator::

    yogi_moments(b1, b2, initial_accumulator_value) -> bias_correction() -> normalize(eps) -> lr

Where Adam's :math:`v_t` forgets a large past gradient at the rate :math:`1 - b_2` of its size,
Yogi's moves towards :math:`|g_t|^2` by at most :math:`(1 - b_2) |g_t|^2` per step. The state
has the fields ``count, mu, nu`` of :class:`adamjax.MomentsState`, with the same meaning.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax._arraymath import abs_square, full_like_params, moving_average
from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
    declare_stage,
)
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._estimates import Moments
from adamjax._moments import check_estimator_update
from adamjax._normalize import normalize
from adamjax._placement import zero_count
from adamjax._scale import scale_by_learning_rate
from adamjax._tree import (
    check_float_leaves,
    compute_dtype,
    leafwise,
    map_leaves,
    one_minus,
    real_dtype,
    saturating_increment,
)
from adamjax._validate import hyperparameter

__all__ = ["YogiMomentsState", "yogi", "yogi_moments"]


class YogiMomentsState(NamedTuple):
    """State of :func:`yogi_moments`: fields as in :class:`adamjax.MomentsState`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # moving average of g, from initial_accumulator_value
    nu: Updates  # Yogi's additive estimate of |g|^2, from initial_accumulator_value (real)


def _additive(g: jax.Array, v: jax.Array, b2: Any) -> jax.Array:
    """``v - (1 - b2) sign(v - |g|^2) |g|^2`` in float32 or wider, stored in ``v``'s dtype."""
    dtype = compute_dtype(real_dtype(g.dtype), v.dtype)
    square = abs_square(g).astype(dtype)
    old = v.astype(dtype)
    new = old - one_minus(b2, dtype) * jnp.sign(old - square) * square
    return new.astype(v.dtype)


def yogi_moments(
    b1: PerLeaf = 0.9, b2: PerLeaf = 0.999, initial_accumulator_value: PerLeaf = 1e-6
) -> GradientTransformation:
    r"""First moment and Yogi's additive second moment.

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad
        v_t = v_{t-1} - (1 - b_2)\, \operatorname{sign}(v_{t-1} - |g_t|^2)\, |g_t|^2

    with :math:`m_0 = v_0 =` ``initial_accumulator_value``. Unlike Adam's multiplicative
    average, :math:`v` moves towards :math:`|g_t|^2` by at most :math:`(1 - b_2) |g_t|^2` per
    step, so it does not forget a large past gradient abruptly. Emits
    :class:`adamjax.Moments`; optax's Yogi bias-corrects both moments
    (:func:`adamjax.bias_correction`) before :func:`adamjax.normalize`.

    Args:
        b1: decay of the first moment, in ``[0, 1)``.
        b2: rate of the second moment, in ``[0, 1)``.
        initial_accumulator_value: :math:`m_0` and :math:`v_0`, ``>= 0`` (a number, array or
            per-leaf tree).

    Returns:
        A transform taking gradients and emitting :class:`adamjax.Moments`.

    References:
        Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    b2 = hyperparameter("b2", b2, upper=1.0)
    initial = hyperparameter("initial_accumulator_value", initial_accumulator_value)

    def init_fn(params: Params) -> YogiMomentsState:
        check_float_leaves(params)
        start = leafwise(initial, params, "initial_accumulator_value")
        mu = full_like_params(params, start)
        nu = full_like_params(params, start, real=True)
        return YogiMomentsState(count=zero_count(params), mu=mu, nu=nu)

    def update_fn(
        grads: Updates, state: YogiMomentsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, YogiMomentsState]:
        del params
        check_estimator_update(grads, state, YogiMomentsState, "yogi_moments")
        mu = map_leaves(moving_average, grads, state.mu, leafwise(b1, grads, "b1"))
        nu = map_leaves(_additive, grads, state.nu, leafwise(b2, grads, "b2"))
        count = saturating_increment(state.count)
        estimates = Moments(mu=mu, nu=nu, grad=grads, b1=b1, b2=b2, count=count)
        return estimates, YogiMomentsState(count=count, mu=mu, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def yogi(
    learning_rate: PerLeafOrSchedule, b1: PerLeaf = 0.9, b2: PerLeaf = 0.999, eps: PerLeaf = 1e-3
) -> GradientTransformation:
    r"""Yogi (Zaheer et al., 2018): Adam with an additive second-moment update.

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    with :math:`m_t` and the additive :math:`v_t` of :func:`adamjax.yogi_moments`, from
    :math:`m_0 = v_0 = 10^{-6}`, both bias-corrected (:func:`adamjax.bias_correction`), as in
    optax.
    ``chain(yogi_moments(b1, b2, initial_accumulator_value=1e-6), bias_correction(),
    normalize(eps), scale_by_learning_rate(learning_rate))``. Arguments, order, defaults and
    meaning are optax's.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: rate of the second moment, in ``[0, 1)``.
        eps: added to :math:`\sqrt{\hat v_t}`, ``>= 0``.

    Returns:
        The chain above.

    References:
        Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.
    """
    return chain(
        yogi_moments(b1, b2, initial_accumulator_value=1e-6),
        bias_correction(),
        normalize(eps),
        scale_by_learning_rate(learning_rate),
    )
