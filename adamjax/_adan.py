r"""Adan (Xie et al., 2022): adaptive Nesterov momentum without a second gradient evaluation.

Adan estimates the gradient at the look-ahead point from the difference of successive
gradients, and keeps three moving averages: of the gradient, of its difference, and of the
square of the look-ahead gradient. Its moment estimator replaces Adam's::

    adan_moments(b1, b2, b3) -> normalize(eps, eps_root)
        -> add_decayed_weights(weight_decay, mask) -> scale_by_learning_rate(lr)

:func:`adan_moments` bias-corrects its estimates itself (the first moment it emits combines two
averages with different decay rates), so the chain has no :func:`adamjax.bias_correction`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax._arraymath import interpolate, moving_average_square, zeros_like_params
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
from adamjax._correction import one_minus_power
from adamjax._decay import Mask, add_decayed_weights
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

__all__ = ["AdanMomentsState", "adan", "adan_moments"]


class AdanMomentsState(NamedTuple):
    """State of :func:`adan_moments`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # m: moving average of g (decay b1)
    nu: Updates  # n: moving average of |g + (1 - b2)(g - g_prev)|^2 (decay b3, real dtype)
    delta: Updates  # d: moving average of g - g_prev (decay b2); the first difference is 0
    previous: Updates  # g_prev: the gradient of the last update (0 before the first)


def _rest(decay: Any, dtype: Any) -> Any:
    """``1 - decay`` as a factor for arrays of ``dtype`` (real or complex)."""
    rest = one_minus(decay, real_dtype(dtype))
    return rest if isinstance(rest, float) else rest.astype(dtype)


def _adan_leaf(
    g: jax.Array,
    m: jax.Array,
    n: jax.Array,
    d: jax.Array,
    previous: jax.Array,
    b1: Any,
    b2: Any,
    b3: Any,
    first: jax.Array,
) -> tuple[jax.Array, ...]:
    """One leaf of :func:`adan_moments`: the new ``(m, n, d, previous)``, each stored in its
    dtype, with the arithmetic in float32 or wider."""
    dtype = compute_dtype(g.dtype, m.dtype, d.dtype, previous.dtype)
    grad = g.astype(dtype)
    change = jnp.where(first, jnp.zeros_like(grad), grad - previous.astype(dtype))
    ahead = grad + _rest(b2, dtype) * change
    return (
        interpolate(g, m, b1).astype(m.dtype),
        moving_average_square(ahead, n, b3),
        interpolate(change, d, b2).astype(d.dtype),
        g.astype(previous.dtype),
    )


def _corrected(
    m: jax.Array, n: jax.Array, d: jax.Array, b1: Any, b2: Any, b3: Any, t: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""``(m / (1 - b1^t) + (1 - b2) d / (1 - b2^t), n / (1 - b3^t))`` in float32 or wider."""
    dtype = compute_dtype(m.dtype, d.dtype)
    real = real_dtype(dtype)
    m_hat = m.astype(dtype) / one_minus_power(b1, t, real).astype(dtype)
    d_hat = d.astype(dtype) / one_minus_power(b2, t, real).astype(dtype)
    first = m_hat + _rest(b2, dtype) * d_hat
    second_dtype = real_dtype(compute_dtype(n.dtype))
    return first, n.astype(second_dtype) / one_minus_power(b3, t, second_dtype)


def _split(tree: Any, like: Any, parts: int) -> tuple[Any, ...]:
    """Split a tree of ``parts``-tuples (with ``like``'s structure) into ``parts`` trees."""
    inner = jax.tree.structure(tuple(range(parts)))
    return tuple(jax.tree.transpose(jax.tree.structure(like), inner, tree))


def adan_moments(
    b1: PerLeaf = 0.98, b2: PerLeaf = 0.92, b3: PerLeaf = 0.99
) -> GradientTransformation:
    r"""Adan's moment estimates, bias-corrected (Xie et al., 2022, Algorithm 1, as in optax).

    With :math:`\Delta_t = g_t - g_{t-1}` (:math:`\Delta_1 = 0`) and
    :math:`h_t = g_t + (1 - b_2) \Delta_t`, Nesterov's look-ahead gradient estimate,

    .. math::
        m_t &= b_1 m_{t-1} + (1 - b_1) g_t, \qquad
        d_t = b_2 d_{t-1} + (1 - b_2) \Delta_t, \qquad
        n_t = b_3 n_{t-1} + (1 - b_3) |h_t|^2 \\
        \mu_t &= \frac{m_t}{1 - b_1^t} + (1 - b_2) \frac{d_t}{1 - b_2^t}, \qquad
        \nu_t = \frac{n_t}{1 - b_3^t}

    from zeros. The decay rates are optax's (the weight of the old average, so the paper's
    :math:`\beta_1 = 0.02` is ``b1 = 0.98``). Emits bias-corrected :class:`adamjax.Moments`
    :math:`(\mu_t, \nu_t)`, with ``b1`` as its first-moment decay and ``b3`` as its second's:
    follow with :func:`adamjax.normalize` (no :func:`adamjax.bias_correction`).

    Args:
        b1: decay of the average of gradients, in ``[0, 1)``.
        b2: decay of the average of gradient differences, in ``[0, 1)``.
        b3: decay of the average of squared look-ahead gradients, in ``[0, 1)``.

    Returns:
        A transform taking gradients and emitting corrected :class:`adamjax.Moments`.

    Raises:
        ValueError: naming the argument, for a decay out of range.

    References:
        Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep
        Models*, 2022, https://arxiv.org/abs/2208.06677
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    b2 = hyperparameter("b2", b2, upper=1.0)
    b3 = hyperparameter("b3", b3, upper=1.0)

    def init_fn(params: Params) -> AdanMomentsState:
        check_float_leaves(params)
        for name, value in (("b1", b1), ("b2", b2), ("b3", b3)):
            leafwise(value, params, name)
        return AdanMomentsState(
            count=zero_count(params),
            mu=zeros_like_params(params),
            nu=zeros_like_params(params, real=True),
            delta=zeros_like_params(params),
            previous=zeros_like_params(params),
        )

    def update_fn(
        grads: Updates, state: AdanMomentsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, AdanMomentsState]:
        del params
        check_estimator_update(grads, state, AdanMomentsState, "adan_moments")
        decays = [
            leafwise(value, grads, name) for name, value in (("b1", b1), ("b2", b2), ("b3", b3))
        ]
        first = state.count == 0
        fresh = map_leaves(
            lambda g, m, n, d, p, c1, c2, c3: _adan_leaf(g, m, n, d, p, c1, c2, c3, first),
            grads, state.mu, state.nu, state.delta, state.previous, *decays,
        )  # fmt: skip
        mu, nu, delta, previous = _split(fresh, grads, 4)
        count = saturating_increment(state.count)
        corrected = map_leaves(
            lambda m, n, d, c1, c2, c3: _corrected(m, n, d, c1, c2, c3, count),
            mu, nu, delta, *decays,
        )  # fmt: skip
        mu_hat, nu_hat = _split(corrected, grads, 2)
        estimates = Moments(
            mu=mu_hat, nu=nu_hat, grad=grads, b1=b1, b2=b3, count=count, corrected=True
        )
        new_state = AdanMomentsState(count=count, mu=mu, nu=nu, delta=delta, previous=previous)
        return estimates, new_state

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def adan(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.98,
    b2: PerLeaf = 0.92,
    b3: PerLeaf = 0.99,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 1e-8,
    weight_decay: PerLeafOrSchedule = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    r"""Adan: adaptive Nesterov momentum (Xie et al., 2022), as optax computes it.

    .. math::
        \theta_t = \theta_{t-1} - \alpha_t \left(
            \frac{\mu_t}{\sqrt{\nu_t + \epsilon_{root}} + \epsilon} + \lambda\, \theta_{t-1}
        \right)

    with the bias-corrected Nesterov estimates :math:`\mu_t` (gradient plus :math:`1 - b_2`
    times the average gradient difference) and :math:`\nu_t` (average squared look-ahead
    gradient) of :func:`adan_moments`.
    ``chain(adan_moments(b1, b2, b3), normalize(eps, eps_root),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))``.

    The weight decay is decoupled and multiplied by the learning rate, as optax's code does
    (its docstring, like the paper, shows the proximal form
    :math:`(\theta - \alpha u) / (1 + \lambda \alpha)`, which optax does not compute). The
    decay rates weigh the old averages (optax's convention; the paper's
    :math:`\beta_k` are :math:`1 - b_k`).

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: decay of the average of gradients, in ``[0, 1)``.
        b2: decay of the average of gradient differences, in ``[0, 1)``.
        b3: decay of the average of squared look-ahead gradients, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0`` (optax's alias default, ``1e-8``).
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.

    Arguments, order, defaults and meaning are optax's.

    Returns:
        The chain above.

    Raises:
        ValueError: naming the argument, for a value out of range.

    References:
        Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep
        Models*, 2022, https://arxiv.org/abs/2208.06677
    """
    return chain(
        adan_moments(b1, b2, b3),
        normalize(eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
