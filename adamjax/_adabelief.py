r"""AdaBelief (Zhuang et al., 2020): Adam with the gradient's variance around its prediction.

AdaBelief replaces one block of Adam's chain, the moment estimator::

    belief_moments(b1, b2, eps_root) -> bias_correction() -> normalize(eps) -> lr

Its second moment measures how far each gradient strays from the first moment, the "belief"
that predicts it: a step is large where the gradient is as predicted and small where it is
not. The state has the fields ``count, mu, nu`` of :class:`adamjax.MomentsState`, with the same
meaning, so :func:`adamjax.bias_correction` divides its ``nu`` by :math:`1 - b_2^t` as Adam's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from adamjax._arraymath import abs_square, interpolate, zeros_like_params
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
    cast_hyperparameter,
    check_float_leaves,
    compute_dtype,
    leafwise,
    map_leaves,
    real_dtype,
    saturating_increment,
    unzip,
)
from adamjax._validate import hyperparameter

__all__ = ["BeliefMomentsState", "adabelief", "belief_moments"]


class BeliefMomentsState(NamedTuple):
    """State of :func:`belief_moments`: fields as in :class:`adamjax.MomentsState`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # moving average of g
    nu: Updates  # moving average of |g - m|^2 plus eps_root (real dtype)


def _belief_step(
    g: jax.Array, m: jax.Array, s: jax.Array, b1: Any, b2: Any, eps_root: Any
) -> tuple[jax.Array, jax.Array]:
    """One leaf of :func:`belief_moments`: the new ``(m, s)``, each in its stored dtype.

    The error :math:`g - m_t` is taken from :math:`m_t` before it is stored (in float32 or
    wider), as optax does.
    """
    m_new = interpolate(g, m, b1)
    error = g.astype(m_new.dtype) - m_new
    real = compute_dtype(s.dtype, real_dtype(error.dtype))
    s_new = interpolate(abs_square(error).astype(real), s, b2)
    s_new = s_new + cast_hyperparameter(eps_root, real)
    return m_new.astype(m.dtype), s_new.astype(s.dtype)


def belief_moments(
    b1: PerLeaf = 0.9, b2: PerLeaf = 0.999, eps_root: PerLeaf = 1e-16, *, nesterov: bool = False
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
        nesterov: emit Nesterov's look-ahead first moment
            (:func:`~adamjax._arraymath.nesterov_look_ahead`, corrected term by term by
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
        mu = zeros_like_params(params)
        nu = zeros_like_params(params, real=True)
        return BeliefMomentsState(count=zero_count(params), mu=mu, nu=nu)

    def update_fn(
        grads: Updates, state: BeliefMomentsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, BeliefMomentsState]:
        del params
        check_estimator_update(grads, state, BeliefMomentsState, "belief_moments")
        pairs = map_leaves(
            _belief_step,
            grads,
            state.mu,
            state.nu,
            leafwise(b1, grads, "b1"),
            leafwise(b2, grads, "b2"),
            leafwise(eps_root, grads, "eps_root"),
        )
        mu, nu = unzip(pairs, grads)
        count = saturating_increment(state.count)
        estimates = Moments(mu=mu, nu=nu, grad=grads, b1=b1, b2=b2, count=count, nesterov=nesterov)
        return estimates, BeliefMomentsState(count=count, mu=mu, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def adabelief(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-16,
    eps_root: PerLeaf = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""AdaBelief (Zhuang et al., 2020): Adam with the gradient's variance around its mean.

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, \hat m_t / (\sqrt{\hat s_t} + \epsilon)

    with :math:`m_t` and the variance :math:`s_t` of :func:`adamjax.belief_moments`,
    bias-corrected as in :func:`adamjax.adam` (:func:`adamjax.bias_correction`).
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
