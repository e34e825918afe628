r"""Rectified Adam (RAdam): Adam's normalization, switched on once it can be trusted.

Early in training the second moment :math:`\hat v_t` averages few gradients, and the variance of
the adaptive step size :math:`1 / \sqrt{\hat v_t}` is large (unbounded for the first steps).
RAdam takes plain momentum steps until the simple moving average that :math:`\hat v_t`
approximates is long enough, then multiplies Adam's step by a rectifier :math:`r_t \to 1`
(Liu et al., 2020)::

    moments(b1, b2) -> bias_correction() -> rectified_normalize(eps, eps_root, threshold) -> lr
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._arraymath import denominator
from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
    declare_stage,
    init_empty_state,
)
from adamjax._combine import chain
from adamjax._correction import bias_correction, one_minus_power
from adamjax._estimates import Moments, expect_moments
from adamjax._moments import moments
from adamjax._scale import scale_by_learning_rate
from adamjax._tree import (
    cast_hyperparameter,
    compute_dtype,
    leafwise,
    map_leaves,
    one_minus,
    real_dtype,
)
from adamjax._validate import hyperparameter

__all__ = ["radam", "rectified_normalize"]


def _rho(b2: Any, count: jax.Array, dtype: Any) -> tuple[jax.Array, jax.Array]:
    r"""``(rho_inf, rho_t)``: the length of the approximated simple moving average."""
    rest = jnp.asarray(one_minus(b2, dtype), dtype=dtype)
    rho_inf = 2.0 / rest - 1.0
    weight = one_minus_power(b2, count, dtype)  # 1 - b2^t
    t = count.astype(dtype)
    rho_t = rho_inf - 2.0 * t * (1.0 - weight) / weight
    return rho_inf, rho_t


def _rectified_step(
    m: jax.Array,
    v: jax.Array,
    g: jax.Array,
    b2: Any,
    eps: Any,
    eps_root: Any,
    threshold: Any,
    count: jax.Array,
) -> jax.Array:
    """One leaf of :func:`rectified_normalize`'s update, in the gradient's dtype."""
    dtype = compute_dtype(m.dtype, v.dtype, g.dtype)
    real = real_dtype(dtype)
    rho_inf, rho_t = _rho(b2, count, real)
    rectify = rho_t >= cast_hyperparameter(threshold, real)
    square = (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
    r = jnp.sqrt(jnp.where(rectify, square, jnp.ones_like(square)))  # no NaN where unused
    m = m.astype(dtype)
    adaptive = m * (r / denominator(v, eps, eps_root, dtype=dtype)).astype(dtype)
    return jnp.where(rectify, adaptive, m).astype(g.dtype)


def rectified_normalize(
    eps: PerLeaf = 1e-8, eps_root: PerLeaf = 0.0, threshold: PerLeaf = 5.0
) -> GradientTransformation:
    r"""Adam's normalization, switched on only once the second moment's variance is tractable.

    With :math:`\rho_\infty = 2 / (1 - b_2) - 1` and
    :math:`\rho_t = \rho_\infty - 2 t\, b_2^t / (1 - b_2^t)` (the length of the simple moving
    average that :math:`\hat v_t` approximates),

    .. math::
        r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\, \rho_\infty}
                         {(\rho_\infty - 4)(\rho_\infty - 2)\, \rho_t}}, \qquad
        u_t = \begin{cases}
            r_t\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)
                & \rho_t \ge \text{threshold} \\
            \hat m_t & \text{otherwise (momentum SGD)}
        \end{cases}

    (Liu et al., 2020, Algorithm 2; the paper's threshold is 4, optax's default 5).
    :math:`b_2` and :math:`t` come with the :class:`adamjax.Moments`, which must be
    bias-corrected (place :func:`adamjax.bias_correction` before this block). Arithmetic runs in
    float32 or wider; updates take the gradient's dtype.

    Args:
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        threshold: the smallest :math:`\rho_t` at which the adaptive step is taken (any real
            number, as in optax; below 4 the rectifier is not real for :math:`2 < \rho_t < 4`).

    Returns:
        A transform taking bias-corrected :class:`adamjax.Moments` and emitting updates.

    Raises:
        TypeError: at update time, for moments that are not bias-corrected or not a moving
            average of squared gradients.

    References:
        Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020,
        https://arxiv.org/abs/1908.03265
    """
    eps = hyperparameter("eps", eps)
    eps_root = hyperparameter("eps_root", eps_root)
    threshold = hyperparameter("threshold", threshold, lower=None)

    def update_fn(
        estimates: Moments, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_moments(estimates, "rectified_normalize")
        if not estimates.is_moving_average or estimates.b2 is None:
            raise TypeError(
                "rectified_normalize() takes a moving average of squared gradients, got "
                f"{estimates.kind} moments: use it after moments() and bias_correction()"
            )
        if not estimates.corrected:
            raise TypeError(
                "rectified_normalize() takes bias-corrected moments: place bias_correction() "
                "before it in the chain"
            )
        mu = estimates.first_moment()
        count = estimates.count
        updates = map_leaves(
            lambda m, v, g, b2, e, er, th: _rectified_step(m, v, g, b2, e, er, th, count),
            mu,
            estimates.nu,
            estimates.grad,
            leafwise(estimates.b2, mu, "b2"),
            leafwise(eps, mu, "eps"),
            leafwise(eps_root, mu, "eps_root"),
            leafwise(threshold, mu, "threshold"),
        )
        return updates, state

    return declare_stage(
        GradientTransformation(init_empty_state, update_fn), takes=MOMENTS, emits=GRADIENTS
    )


def radam(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    threshold: PerLeaf = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""Rectified Adam (Liu et al., 2020).

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, u_t

    with Adam's bias-corrected moments (:func:`adamjax.adam`) and the rectified update
    :math:`u_t` of :func:`adamjax.rectified_normalize`: Adam's step scaled by :math:`r_t` once
    :math:`\rho_t \ge` ``threshold``, a momentum step :math:`\hat m_t` before.
    ``chain(moments(b1, b2, nesterov=nesterov), bias_correction(),
    rectified_normalize(eps, eps_root, threshold), scale_by_learning_rate(learning_rate))``.
    Arguments, order, defaults and meaning are optax's.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        threshold: the smallest :math:`\rho_t` at which the adaptive step is taken.
        nesterov: use Nesterov's look-ahead first moment, bias-corrected term by term as in
            :func:`adamjax.nadam`.

    Returns:
        The chain above.

    References:
        Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020,
        https://arxiv.org/abs/1908.03265
    """
    return chain(
        moments(hyperparameter("b1", b1, upper=1.0), b2, nesterov=nesterov),
        bias_correction(),
        rectified_normalize(eps, eps_root, threshold),
        scale_by_learning_rate(learning_rate),
    )
