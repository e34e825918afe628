r"""Rectified Adam, AdaBelief and Yogi: Adam's pipeline with one block replaced.

Each optimizer here differs from Adam in a single stage, so each is a new block dropped into the
chain :func:`adamjax.adam` is built from::

    radam:     moments(b1, b2)        -> bias_correction() -> rectified_normalize(...) -> lr
    adabelief: belief_moments(b1, b2) -> bias_correction() -> normalize(eps)           -> lr
    yogi:      yogi_moments(b1, b2)   -> bias_correction() -> normalize(eps)           -> lr

The new estimators keep states with the fields ``count, mu, nu`` of
:class:`adamjax.MomentsState`, with the same meaning: the steps taken, the first moment and the
second-moment statistic that :func:`adamjax.bias_correction` divides by :math:`1 - b_2^t`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    ScalarOrSchedule,
    Updates,
    declare_stage,
    init_empty_state,
)
from adamjax._combine import chain
from adamjax._correction import bias_correction, one_minus_power
from adamjax._moments import Moments, expect_gradients, expect_moments, moments
from adamjax._normalize import normalize
from adamjax._placement import zero_count
from adamjax._scale import scale_by_learning_rate
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
from adamjax._validate import hyperparameter

__all__ = [
    "BeliefMomentsState",
    "YogiMomentsState",
    "adabelief",
    "belief_moments",
    "radam",
    "rectified_normalize",
    "yogi",
    "yogi_moments",
]


class BeliefMomentsState(NamedTuple):
    """State of :func:`belief_moments`: fields as in :class:`adamjax.MomentsState`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # moving average of g
    nu: Updates  # moving average of |g - m|^2 plus eps_root (real dtype)


class YogiMomentsState(NamedTuple):
    """State of :func:`yogi_moments`: fields as in :class:`adamjax.MomentsState`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # moving average of g, from initial_accumulator_value
    nu: Updates  # Yogi's additive estimate of |g|^2, from initial_accumulator_value (real)


# ---------------------------------------------------------------------------------------------
# Per-leaf arithmetic (float32 or wider, stored in the state's dtype)
# ---------------------------------------------------------------------------------------------


def _square(x: jax.Array) -> jax.Array:
    """``|x|^2``, real for complex ``x``."""
    return (x * jnp.conj(x)).real if jnp.iscomplexobj(x) else x * x


def _average(g: jax.Array, old: jax.Array, decay: Any) -> jax.Array:
    """``(1 - decay) g + decay old`` in float32 or wider (not yet cast to ``old``'s dtype)."""
    dtype = compute_dtype(g.dtype, old.dtype)
    real = real_dtype(dtype)
    rest = one_minus(decay, real)
    return rest * g.astype(dtype) + cast_hyperparameter(decay, real) * old.astype(dtype)


def _check_grads(grads: Updates, state: Any, consumer: str) -> None:
    expect_gradients(grads, consumer)
    check_matching(state.nu, grads, reference_name="params", other_name="grads")
    check_gradient_dtypes(state.mu, grads, reference_name="state.mu")


def _filled(params: Params, value: Any, real: bool) -> Updates:
    """Per-leaf arrays like ``params`` holding ``value`` (a second moment's real dtype if
    ``real``)."""

    def fill(p: jax.Array, v: Any) -> jax.Array:
        dtype = second_moment_dtype(p.dtype) if real else p.dtype
        return jnp.full_like(p, cast_hyperparameter(v, real_dtype(dtype)), dtype=dtype)

    return map_leaves(fill, params, leafwise(value, params, "initial_accumulator_value"))


# ---------------------------------------------------------------------------------------------
# RAdam
# ---------------------------------------------------------------------------------------------


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
    dtype = compute_dtype(m.dtype, v.dtype, g.dtype)
    real = real_dtype(dtype)
    rho_inf, rho_t = _rho(b2, count, real)
    rectify = rho_t >= cast_hyperparameter(threshold, real)
    square = (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
    r = jnp.sqrt(jnp.where(rectify, square, jnp.ones_like(square)))  # no NaN where unused
    root = jnp.sqrt(v.astype(real) + cast_hyperparameter(eps_root, real))
    denominator = root + cast_hyperparameter(eps, real)
    m = m.astype(dtype)
    adaptive = m * (r / denominator).astype(dtype)
    return jnp.where(rectify, adaptive, m).astype(g.dtype)


def rectified_normalize(
    eps: Any = 1e-8, eps_root: Any = 0.0, threshold: Any = 5.0
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
        if estimates.kind != "mean_square" or estimates.b2 is None:
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
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    threshold: Any = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""Rectified Adam (Liu et al., 2020).

    .. math::
        m_t &= b_1 m_{t-1} + (1 - b_1) g_t, \quad v_t = b_2 v_{t-1} + (1 - b_2) |g_t|^2 \\
        \hat m_t &= m_t / (1 - b_1^t), \quad \hat v_t = v_t / (1 - b_2^t) \\
        \rho_\infty &= 2 / (1 - b_2) - 1, \quad
            \rho_t = \rho_\infty - 2 t\, b_2^t / (1 - b_2^t) \\
        r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2) \rho_\infty}
                          {(\rho_\infty - 4)(\rho_\infty - 2) \rho_t}} \\
        \theta_t &= \theta_{t-1} - \alpha \begin{cases}
            r_t\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)
                & \rho_t \ge \text{threshold} \\
            \hat m_t & \text{otherwise}
        \end{cases}

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


# ---------------------------------------------------------------------------------------------
# AdaBelief
# ---------------------------------------------------------------------------------------------


def belief_moments(
    b1: Any = 0.9, b2: Any = 0.999, eps_root: Any = 1e-16, *, nesterov: bool = False
) -> GradientTransformation:
    r"""First moment and the moving variance of the gradient around it (AdaBelief).

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad
        s_t = b_2 s_{t-1} + (1 - b_2) |g_t - m_t|^2 + \epsilon_{root}

    :math:`s_t` measures how far the gradient strays from its prediction :math:`m_t` (the
    "belief"). ``eps_root`` is added to the stored :math:`s_t` at every step, before bias
    correction, as in optax and the paper's Algorithm 2. Emits :class:`adamjax.Moments`
    with :math:`\nu = s_t`; follow with :func:`adamjax.bias_correction` and
    :func:`adamjax.normalize`.

    Args:
        b1: decay of the first moment, in ``[0, 1)``.
        b2: decay of :math:`s`, in ``[0, 1)``.
        eps_root: added to :math:`s_t` at each step, ``>= 0``.
        nesterov: emit Nesterov's look-ahead first moment (corrected term by term by
            :func:`adamjax.bias_correction`).

    Returns:
        A transform taking gradients and emitting :class:`adamjax.Moments`.

    References:
        Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
        Gradients*, NeurIPS 2020, https://arxiv.org/abs/2010.07468
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    b2 = hyperparameter("b2", b2, upper=1.0)
    eps_root = hyperparameter("eps_root", eps_root)

    def init_fn(params: Params) -> BeliefMomentsState:
        check_float_leaves(params)
        return BeliefMomentsState(
            count=zero_count(params), mu=_filled(params, 0.0, False), nu=_filled(params, 0.0, True)
        )

    def step(
        g: jax.Array, m: jax.Array, s: jax.Array, b1: Any, b2: Any, eps_root: Any
    ) -> tuple[jax.Array, jax.Array]:
        m_new = _average(g, m, b1)  # in float32 or wider; stored in m's dtype below
        error = g.astype(m_new.dtype) - m_new
        real = compute_dtype(s.dtype, real_dtype(error.dtype))
        s_new = _average(_square(error).astype(real), s, b2)
        s_new = s_new + cast_hyperparameter(eps_root, real)
        return m_new.astype(m.dtype), s_new.astype(s.dtype)

    def update_fn(
        grads: Updates, state: BeliefMomentsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, BeliefMomentsState]:
        del params
        _check_grads(grads, state, "belief_moments")
        pairs = map_leaves(
            step,
            grads,
            state.mu,
            state.nu,
            leafwise(b1, grads, "b1"),
            leafwise(b2, grads, "b2"),
            leafwise(eps_root, grads, "eps_root"),
        )
        mu, nu = _unzip(pairs, grads)
        count = saturating_increment(state.count)
        estimates = Moments(mu=mu, nu=nu, grad=grads, b1=b1, b2=b2, count=count, nesterov=nesterov)
        return estimates, BeliefMomentsState(count=count, mu=mu, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def _unzip(pairs: Any, like: Any) -> tuple[Any, Any]:
    """Split a tree of ``(a, b)`` leaves (with ``like``'s structure) into two trees."""
    outer = jax.tree.structure(like)
    inner = jax.tree.structure((0, 0))
    first, second = jax.tree.transpose(outer, inner, pairs)
    return first, second


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-16,
    eps_root: Any = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""AdaBelief (Zhuang et al., 2020): Adam with the gradient's variance around its mean.

    .. math::
        m_t &= b_1 m_{t-1} + (1 - b_1) g_t \\
        s_t &= b_2 s_{t-1} + (1 - b_2) |g_t - m_t|^2 + \epsilon_{root} \\
        \hat m_t &= m_t / (1 - b_1^t), \quad \hat s_t = s_t / (1 - b_2^t) \\
        \theta_t &= \theta_{t-1} - \alpha\, \hat m_t / (\sqrt{\hat s_t} + \epsilon)

    ``chain(belief_moments(b1, b2, eps_root, nesterov=nesterov), bias_correction(),
    normalize(eps), scale_by_learning_rate(learning_rate))``. Arguments, order, defaults and
    meaning are optax's (``eps_root`` is added to the stored :math:`s_t`, as there).

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: decay of :math:`s`, in ``[0, 1)``.
        eps: added to :math:`\sqrt{\hat s_t}`, ``>= 0``.
        eps_root: added to :math:`s_t` at each step, ``>= 0``.
        nesterov: use Nesterov's look-ahead first moment.

    Returns:
        The chain above.

    References:
        Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
        Gradients*, NeurIPS 2020, https://arxiv.org/abs/2010.07468
    """
    return chain(
        belief_moments(b1, b2, eps_root, nesterov=nesterov),
        bias_correction(),
        normalize(eps),
        scale_by_learning_rate(learning_rate),
    )


# ---------------------------------------------------------------------------------------------
# Yogi
# ---------------------------------------------------------------------------------------------


def yogi_moments(
    b1: Any = 0.9, b2: Any = 0.999, initial_accumulator_value: Any = 1e-6
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
        return YogiMomentsState(
            count=zero_count(params),
            mu=_filled(params, initial, real=False),
            nu=_filled(params, initial, real=True),
        )

    def additive(g: jax.Array, v: jax.Array, b2: Any) -> jax.Array:
        dtype = compute_dtype(real_dtype(g.dtype), v.dtype)
        square = _square(g.astype(compute_dtype(g.dtype))).astype(dtype)
        old = v.astype(dtype)
        new = old - one_minus(b2, dtype) * jnp.sign(old - square) * square
        return new.astype(v.dtype)

    def update_fn(
        grads: Updates, state: YogiMomentsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, YogiMomentsState]:
        del params
        _check_grads(grads, state, "yogi_moments")
        mu = map_leaves(
            lambda g, m, b: _average(g, m, b).astype(m.dtype),
            grads,
            state.mu,
            leafwise(b1, grads, "b1"),
        )
        nu = map_leaves(additive, grads, state.nu, leafwise(b2, grads, "b2"))
        count = saturating_increment(state.count)
        estimates = Moments(mu=mu, nu=nu, grad=grads, b1=b1, b2=b2, count=count)
        return estimates, YogiMomentsState(count=count, mu=mu, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def yogi(
    learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-3
) -> GradientTransformation:
    r"""Yogi (Zaheer et al., 2018): Adam with an additive second-moment update.

    .. math::
        m_t &= b_1 m_{t-1} + (1 - b_1) g_t, \quad
        v_t = v_{t-1} - (1 - b_2) \operatorname{sign}(v_{t-1} - |g_t|^2) |g_t|^2 \\
        \hat m_t &= m_t / (1 - b_1^t), \quad \hat v_t = v_t / (1 - b_2^t) \\
        \theta_t &= \theta_{t-1} - \alpha\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    with :math:`m_0 = v_0 = 10^{-6}` and both moments bias-corrected, as in optax.
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
