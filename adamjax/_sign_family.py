r"""Lion, NAdamW and AdamaxW: optax's aliases of these names, as chains of adamjax blocks.

* :func:`lion` moves every coordinate by the learning rate, in the direction of the sign of an
  interpolation between the momentum and the gradient (:func:`lion_direction`);
* :func:`nadamw` is NAdam with decoupled weight decay;
* :func:`adamaxw` is Adamax with decoupled weight decay.

Arguments, their order, defaults and meaning are optax's. Every numeric argument may be a
Python number, an array, a tracer or a per-leaf tree matching the params; ``learning_rate`` and
``weight_decay`` may also be schedules ``count -> value`` of the steps already taken.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax import _correction as correction
from adamjax._aliases import adamw
from adamjax._base import GradientTransformation, Params, ScalarOrSchedule, Updates
from adamjax._combine import chain
from adamjax._decay import Mask, add_decayed_weights
from adamjax._moments import expect_gradients, infinity_moments
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
)
from adamjax._validate import check_dtype, hyperparameter

__all__ = ["LionState", "adamaxw", "lion", "lion_direction", "nadamw"]


class LionState(NamedTuple):
    """State of :func:`lion_direction`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # momentum m, a moving average of the gradients with decay b2


def _interpolate(g: jax.Array, m: jax.Array, weight: Any) -> jax.Array:
    """``weight * m + (1 - weight) * g`` in float32 or wider."""
    dtype = compute_dtype(g.dtype, m.dtype)
    real = real_dtype(dtype)
    return cast_hyperparameter(weight, real) * m.astype(dtype) + one_minus(weight, real) * g.astype(
        dtype
    )


def _sign_direction(g: jax.Array, m: jax.Array, b1: Any) -> jax.Array:
    """``sign(b1 m + (1 - b1) g)`` in ``g``'s dtype (``c / |c|`` for complex values)."""
    return jnp.sign(_interpolate(g, m, b1)).astype(g.dtype)


def _momentum(g: jax.Array, m: jax.Array, b2: Any) -> jax.Array:
    """``b2 m + (1 - b2) g`` stored in ``m``'s dtype."""
    return _interpolate(g, m, b2).astype(m.dtype)


def lion_direction(b1: Any = 0.9, b2: Any = 0.99, mu_dtype: Any = None) -> GradientTransformation:
    r"""The sign direction of Lion (Chen et al., 2023), and its momentum.

    .. math::
        u_t = \operatorname{sign}\left(b_1 m_{t-1} + (1 - b_1) g_t\right), \qquad
        m_t = b_2 m_{t-1} + (1 - b_2) g_t, \qquad m_0 = 0

    Takes gradients and emits updates of magnitude 1 in every coordinate (0 where the
    interpolation is exactly 0; :math:`c / |c|` for complex values); follow with
    :func:`adamjax.scale_by_learning_rate`. This is optax's ``scale_by_lion`` (its ``'hard'``
    mode).

    Args:
        b1: weight of the momentum in the direction, in ``[0, 1]``.
        b2: decay of the momentum, in ``[0, 1)``.
        mu_dtype: storage dtype of :math:`m` (default: the param's dtype). Arithmetic runs in
            float32 or wider either way.

    Returns:
        A :class:`adamjax.GradientTransformation` taking gradients and emitting updates.

    Raises:
        ValueError: naming the argument, for a decay out of range.
        TypeError: naming the argument, for a non-numeric decay or a non-float ``mu_dtype``.
    """
    b1 = hyperparameter("b1", b1, upper=1.0, upper_open=False)
    b2 = hyperparameter("b2", b2, upper=1.0)
    check_dtype("mu_dtype", mu_dtype)

    def init_fn(params: Params) -> LionState:
        check_float_leaves(params)
        leafwise(b1, params, "b1")
        leafwise(b2, params, "b2")
        mu = map_leaves(lambda p: jnp.zeros_like(p, dtype=mu_dtype), params)
        return LionState(count=zero_count(params), mu=mu)

    def update_fn(
        grads: Updates, state: LionState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, LionState]:
        del params
        expect_gradients(grads, "lion_direction")
        check_matching(state.mu, grads, other_name="grads")
        check_gradient_dtypes(state.mu, grads, reference_name="state.mu")
        directions = map_leaves(_sign_direction, grads, state.mu, leafwise(b1, grads, "b1"))
        mu = map_leaves(_momentum, grads, state.mu, leafwise(b2, grads, "b2"))
        return directions, LionState(count=saturating_increment(state.count), mu=mu)

    return GradientTransformation(init_fn, update_fn)


def lion(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Mask = None,
) -> GradientTransformation:
    r"""Lion: sign descent on an interpolated momentum (Chen et al., 2023).

    .. math::
        c_t &= b_1 m_{t-1} + (1 - b_1) g_t \\
        \theta_t &= \theta_{t-1} - \alpha_t \left( \operatorname{sign}(c_t)
            + \lambda\, \theta_{t-1} \right) \\
        m_t &= b_2 m_{t-1} + (1 - b_2) g_t

    Only a momentum is kept. Every coordinate moves by about :math:`\alpha`, so Lion's learning
    rate is usually 3-10 times smaller than AdamW's, and its weight decay larger by the same
    factor (the decay is multiplied by the learning rate, as in optax).
    ``chain(lion_direction(b1, b2, mu_dtype), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: weight of the momentum in the direction, in ``[0, 1]``.
        b2: decay of the momentum, in ``[0, 1)``.
        mu_dtype: storage dtype of :math:`m` (default: the param's dtype).
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.

    Arguments, order, defaults and meaning are optax's.

    Returns:
        A :class:`adamjax.GradientTransformation`.

    Example:
        >>> import jax, jax.numpy as jnp, adamjax
        >>> from adamjax._sign_family import lion
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> opt = lion(0.1, weight_decay=0.0)
        >>> state = opt.init(params)
        >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
        >>> updates, state = opt.update(grads, state, params)
        >>> adamjax.apply_updates(params, updates)["w"]
        Array([ 0.9, -1.9], dtype=float32)

    References:
        Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023,
        https://arxiv.org/abs/2302.06675
    """
    return chain(
        lion_direction(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""NAdamW: NAdam with decoupled weight decay (Dozat, 2016; Loshchilov & Hutter, 2019).

    .. math::
        m_t &= b_1 m_{t-1} + (1 - b_1) g_t, \quad v_t = b_2 v_{t-1} + (1 - b_2) |g_t|^2 \\
        \hat m_t &= \frac{b_1 m_t}{1 - b_1^{t+1}} + \frac{(1 - b_1) g_t}{1 - b_1^t}, \quad
        \hat v_t = \frac{v_t}{1 - b_2^t} \\
        \theta_t &= \theta_{t-1} - \alpha_t \left( \frac{\hat m_t}{\sqrt{\hat v_t +
            \epsilon_{root}} + \epsilon} + \lambda\, \theta_{t-1} \right)

    with a constant :math:`b_1`, as in optax. ``chain(moments(b1, b2, nesterov=True),
    bias_correction(), normalize(eps, eps_root), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``, which is ``adamw(..., nesterov=True)``.

    torch's ``NAdam(decoupled_weight_decay=True)`` multiplies :math:`b_1` by a warm-up
    schedule :math:`1 - \tfrac12 0.96^{t\psi}` (``momentum_decay`` :math:`\psi`, default
    ``4e-3``), so its steps differ from these; with a ``momentum_decay`` large enough that
    :math:`0.96^{t\psi}` underflows to 0 (``1e9``, say) the two rules agree.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m`.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        nesterov: only ``True`` (``nesterov=False`` is :func:`adamjax.adamw`).
        nu_dtype: storage dtype of :math:`v`.

    The arguments up to ``mask`` are optax's, in optax's order (pass ``weight_decay=`` by
    name: the fifth positional argument is ``eps_root``).

    Returns:
        A :class:`adamjax.GradientTransformation`.

    Raises:
        ValueError: for ``nesterov=False``, which optax accepts as AdamW.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop,
        https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ;
        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019,
        https://arxiv.org/abs/1711.05101
    """
    if nesterov is not True:
        raise ValueError("nadamw(nesterov=False) is AdamW: use adamjax.adamw (optax allows it)")
    return adamw(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        weight_decay,
        mask,
        nesterov=True,
        nu_dtype=nu_dtype,
    )


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
) -> GradientTransformation:
    r"""AdamaxW: Adamax (Kingma & Ba, 2015) with decoupled weight decay.

    .. math::
        m_t &= b_1 m_{t-1} + (1 - b_1) g_t, \quad
        u_t = \max(b_2 u_{t-1}, |g_t| + \epsilon) \\
        \theta_t &= \theta_{t-1} - \alpha_t \left( \frac{m_t}{(1 - b_1^t)\, u_t}
            + \lambda\, \theta_{t-1} \right)

    ``eps`` sits inside the max, as in optax and torch. ``chain(infinity_moments(b1, b2, eps),
    bias_correction(), normalize(eps=0.0), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: decay of the infinity norm, in ``[0, 1)``.
        eps: added to :math:`|g_t|` inside the max, ``>= 0``.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.

    Arguments, order, defaults and meaning are optax's.

    Returns:
        A :class:`adamjax.GradientTransformation`.

    References:
        Kingma & Ba, *Adam: A Method for Stochastic Optimization*, section 7.1,
        https://arxiv.org/abs/1412.6980;
        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019,
        https://arxiv.org/abs/1711.05101
    """
    return chain(
        infinity_moments(b1, b2, eps),
        correction.bias_correction(),
        normalize(eps=0.0),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
