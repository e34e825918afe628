r"""Lion (Chen et al., 2023): sign descent on an interpolation of momentum and gradient.

Lion keeps one moving average of the gradient and moves every coordinate by the learning rate,
in the direction of the sign of an interpolation between that momentum and the gradient::

    lion_direction(b1, b2) -> add_decayed_weights(weight_decay, mask) -> scale_by_learning_rate(lr)

.. math::
    c_t &= b_1 m_{t-1} + (1 - b_1) g_t \\
    \theta_t &= \theta_{t-1} - \alpha_t \left( \operatorname{sign}(c_t)
        + \lambda\, \theta_{t-1} \right) \\
    m_t &= b_2 m_{t-1} + (1 - b_2) g_t

Arguments, their order, defaults and meaning are optax's. Every numeric argument may be a
Python number, an array, a tracer or a per-leaf tree matching the params; ``learning_rate`` and
``weight_decay`` may also be schedules ``count -> value`` of the steps already taken.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from adamjax._arraymath import interpolate, moving_average, zeros_like_params
from adamjax._base import GradientTransformation, Params, PerLeaf, PerLeafOrSchedule, Updates
from adamjax._combine import chain
from adamjax._decay import Mask, add_decayed_weights
from adamjax._estimates import expect_gradients_like
from adamjax._placement import zero_count
from adamjax._scale import scale_by_learning_rate
from adamjax._tree import (
    check_float_leaves,
    leafwise,
    map_leaves,
    saturating_increment,
)
from adamjax._validate import check_dtype, hyperparameter

__all__ = ["LionState", "lion", "lion_direction"]


class LionState(NamedTuple):
    """State of :func:`lion_direction`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # momentum m, a moving average of the gradients with decay b2


def _sign_direction(g: jax.Array, m: jax.Array, b1: Any) -> jax.Array:
    """``sign(b1 m + (1 - b1) g)`` in ``g``'s dtype (``c / |c|`` for complex values)."""
    return jnp.sign(interpolate(g, m, b1)).astype(g.dtype)


def lion_direction(
    b1: PerLeaf = 0.9, b2: PerLeaf = 0.99, mu_dtype: DTypeLike | None = None
) -> GradientTransformation:
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
        mu = zeros_like_params(params, mu_dtype)
        return LionState(count=zero_count(params), mu=mu)

    def update_fn(
        grads: Updates, state: LionState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, LionState]:
        del params
        expect_gradients_like(grads, state.mu, "lion_direction", "state.mu")
        directions = map_leaves(_sign_direction, grads, state.mu, leafwise(b1, grads, "b1"))
        mu = map_leaves(moving_average, grads, state.mu, leafwise(b2, grads, "b2"))
        return directions, LionState(count=saturating_increment(state.count), mu=mu)

    return GradientTransformation(init_fn, update_fn)


def lion(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.99,
    mu_dtype: DTypeLike | None = None,
    weight_decay: PerLeafOrSchedule = 1e-3,
    mask: Mask = None,
) -> GradientTransformation:
    r"""Lion: sign descent on an interpolated momentum (Chen et al., 2023).

    .. math::
        \theta_t = \theta_{t-1} - \alpha_t \left( u_t + \lambda\, \theta_{t-1} \right)

    with the sign direction :math:`u_t` of :func:`adamjax.lion_direction`. Only a momentum is
    kept. Every coordinate moves by about :math:`\alpha`, so Lion's learning
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
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> opt = adamjax.lion(0.1, weight_decay=0.0)
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
