r"""AdEMAMix (Pagliardini et al., 2024): Adam plus a slow moving average of the gradient.

A first moment with decay :math:`b_1 \approx 0.9` forgets a gradient within tens of steps.
AdEMAMix adds a second, slow average (decay :math:`b_3 \approx 0.9999`) that remembers gradients
for thousands of steps, weighted by :math:`\alpha`, to the numerator of Adam's step. It adds one
block to AdamW's chain, after the bias correction (the slow average is not corrected)::

    moments(b1, b2) -> bias_correction() -> slow_momentum(b3, alpha) -> normalize(eps, eps_root)
        -> add_decayed_weights(weight_decay, mask) -> scale_by_learning_rate(lr)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from adamjax._arraymath import moving_average, zeros_like_params
from adamjax._base import (
    MOMENTS,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
    declare_stage,
)
from adamjax._blockwise import BlockwiseInt8
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._decay import Mask, add_decayed_weights
from adamjax._estimates import Moments, expect_moments
from adamjax._moments import moments
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
    real_dtype,
    saturating_increment,
)
from adamjax._validate import check_dtype, check_range, hyperparameter, is_function

__all__ = ["SlowMomentumState", "ademamix", "slow_momentum"]


class SlowMomentumState(NamedTuple):
    """State of :func:`slow_momentum`."""

    # shape (), int32: updates taken so far (the argument of b3 and alpha schedules)
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    slow: Updates  # m2: the slow moving average of g (decay b3), not bias-corrected


def _value_now(value: Any, count: jax.Array, name: str, upper: float | None) -> Any:
    """``value``, or a schedule's value after ``count`` steps (a scalar, range-checked where it
    is concrete: ``[0, upper)``, or any real number for ``upper=None``)."""
    if not is_function(value):
        return value
    now = value(count)
    if jnp.ndim(now) != 0:
        raise ValueError(
            f"{name} schedule returned a value of shape {jnp.shape(now)}; a schedule must "
            "return a scalar"
        )
    lower = None if upper is None else 0.0
    check_range(f"{name} schedule value", now, lower=lower, upper=upper)
    return now


def _mix(mu: jax.Array, slow: jax.Array, alpha: Any) -> jax.Array:
    """``mu + alpha * slow`` in float32 or wider."""
    dtype = compute_dtype(mu.dtype, slow.dtype)
    weight = cast_hyperparameter(alpha, real_dtype(dtype))
    if not isinstance(weight, (int, float)):
        weight = weight.astype(dtype)
    return mu.astype(dtype) + weight * slow.astype(dtype)


def _refuse_8_bit_slow_average(mu_dtype: Any) -> None:
    """Refuse :func:`adamjax.blockwise_int8` as ``mu_dtype``: it also stores the slow average.

    Raises:
        TypeError: naming ``mu_dtype``, for a :class:`adamjax.BlockwiseInt8`.
    """
    if isinstance(mu_dtype, BlockwiseInt8):
        raise TypeError(
            f"mu_dtype={mu_dtype!r}: the slow average m^(2) of slow_momentum() cannot be stored "
            "in 8 bits (only the moments kept by moments() can); pass a float mu_dtype and "
            "nu_dtype=blockwise_int8() to store v in 8 bits"
        )


def slow_momentum(
    b3: PerLeafOrSchedule = 0.9999,
    alpha: PerLeafOrSchedule = 5.0,
    mu_dtype: DTypeLike | None = None,
) -> GradientTransformation:
    r"""Add a slow moving average of the gradient to the first moment (AdEMAMix).

    .. math::
        m^{(2)}_t = b_3 m^{(2)}_{t-1} + (1 - b_3) g_t, \qquad
        \hat m_t \leftarrow \hat m_t + \alpha\, m^{(2)}_t

    from :math:`m^{(2)}_0 = 0`, with no bias correction of :math:`m^{(2)}` (the paper lets the
    slow average fill itself slowly). Takes bias-corrected :class:`adamjax.Moments` (place it
    after :func:`adamjax.bias_correction`) and passes them on with the mixed first moment; the
    gradient :math:`g_t` comes with them. ``b3`` and ``alpha`` may be schedules of the steps
    already taken (the paper warms both up: :math:`\alpha` from 0, :math:`b_3` from
    :math:`b_1`).

    Args:
        b3: decay of the slow average, in ``[0, 1)``, or a schedule.
        alpha: weight :math:`\alpha` of the slow average (any real number, as in optax), or a
            schedule.
        mu_dtype: storage dtype of :math:`m^{(2)}` (default: the param's dtype); a float
            dtype, not :func:`adamjax.blockwise_int8`.

    Returns:
        A transform taking and emitting :class:`adamjax.Moments`.

    Raises:
        ValueError: naming the argument, for a value out of range.
        TypeError: at ``update``, for moments that are not bias-corrected.

    References:
        Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, 2024,
        https://arxiv.org/abs/2409.03137
    """
    b3 = hyperparameter("b3", b3, upper=1.0, schedule=True)
    alpha = hyperparameter("alpha", alpha, lower=None, schedule=True)
    _refuse_8_bit_slow_average(mu_dtype)
    check_dtype("mu_dtype", mu_dtype)

    def init_fn(params: Params) -> SlowMomentumState:
        check_float_leaves(params)
        return SlowMomentumState(count=zero_count(params), slow=zeros_like_params(params, mu_dtype))

    def update_fn(
        estimates: Moments,
        state: SlowMomentumState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Moments, SlowMomentumState]:
        del params
        expect_moments(estimates, "slow_momentum")
        if not estimates.corrected:
            raise TypeError(
                "slow_momentum() takes bias-corrected moments: place bias_correction() before it "
                "in the chain (the slow average itself is not corrected)"
            )
        grads = estimates.grad
        check_matching(state.slow, grads, other_name="grads")
        check_gradient_dtypes(state.slow, grads, reference_name="state.slow")
        decay = leafwise(_value_now(b3, state.count, "b3", 1.0), grads, "b3")
        weight = leafwise(_value_now(alpha, state.count, "alpha", None), grads, "alpha")
        slow = map_leaves(moving_average, grads, state.slow, decay)
        mu = map_leaves(_mix, estimates.first_moment(), slow, weight)
        new_state = SlowMomentumState(count=saturating_increment(state.count), slow=slow)
        return estimates.replace(mu=mu, nesterov=False), new_state

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=MOMENTS, emits=MOMENTS)


def ademamix(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    b3: PerLeafOrSchedule = 0.9999,
    alpha: PerLeafOrSchedule = 5.0,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    mu_dtype: DTypeLike | None = None,
    weight_decay: PerLeafOrSchedule = 0.0,
    mask: Mask = None,
    *,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""AdEMAMix: Adam with a mixture of a fast and a slow moving average (Pagliardini et al.).

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{\hat m_t + \alpha\, m^{(2)}_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
            + \lambda\, \theta_{t-1} \right)

    (:math:`\eta_t` the learning rate, :math:`\alpha` the mixing weight) with Adam's
    bias-corrected :math:`\hat m_t, \hat v_t` (:func:`adamjax.adam`) and the uncorrected slow
    average :math:`m^{(2)}_t` of :func:`slow_momentum`.
    ``chain(moments(b1, b2), bias_correction(), slow_momentum(b3, alpha, mu_dtype),
    normalize(eps, eps_root), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``. This is optax's ``contrib.ademamix``.

    Args:
        learning_rate: :math:`\eta_t`, or a schedule of the steps already taken.
        b1: decay of the fast average, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        b3: decay of the slow average, in ``[0, 1)``, or a schedule of the steps already taken.
        alpha: mixing weight of the slow average, or a schedule of the steps already taken.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of both averages, and, as in optax, of :math:`v` (its real
            part) unless ``nu_dtype`` is given: a float dtype, not
            :func:`adamjax.blockwise_int8` (the slow average has no 8-bit storage).
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        nu_dtype: storage dtype of :math:`v` (keyword only; not in optax), or
            :func:`adamjax.blockwise_int8` for 8-bit blocks.

    The arguments up to ``mask`` are optax's, in optax's order, with its defaults (the alias's
    ``alpha = 5``; optax's ``scale_by_ademamix`` defaults to 6).

    Returns:
        The chain above.

    Raises:
        ValueError: naming the argument, for a value out of range.
        TypeError: naming ``mu_dtype``, for :func:`adamjax.blockwise_int8`.

    References:
        Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, 2024,
        https://arxiv.org/abs/2409.03137
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    _refuse_8_bit_slow_average(mu_dtype)
    check_dtype("mu_dtype", mu_dtype)
    if nu_dtype is None and mu_dtype is not None:
        nu_dtype = real_dtype(mu_dtype)
    return chain(
        moments(b1, b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        bias_correction(),
        slow_momentum(b3, alpha, mu_dtype),
        normalize(eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
