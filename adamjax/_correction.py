r"""Bias correction: undoing the zero start of the moving averages.

Moving averages that start at zero underestimate their target early on. With
:math:`t` updates taken, :func:`bias_correction` divides by the total weight they carry:

.. math::
    \hat m_t = \frac{m_t}{1 - b_1^t}, \qquad \hat v_t = \frac{v_t}{1 - b_2^t}

(Kingma & Ba, 2015, Algorithm 1). The decay rates and ``t`` travel with the
:class:`adamjax.Moments`, so this transform takes no arguments.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._arraymath import nesterov_look_ahead
from adamjax._base import (
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    declare_stage,
    init_empty_state,
)
from adamjax._estimates import Moments, expect_moments
from adamjax._tree import compute_dtype, leafwise, map_leaves, one_minus, real_dtype

__all__ = ["bias_correction", "one_minus_power"]


def one_minus_power(decay: Any, t: jax.Array, dtype: Any) -> jax.Array:
    r"""``1 - decay**t`` in ``dtype`` (float32 or wider), accurate for decay close to 1.

    Computed as :math:`-\operatorname{expm1}(t \log(1 - (1 - b)))` from ``1 - decay`` taken
    before any rounding, so ``b2 = 0.999`` at ``t = 1`` gives ``1e-3`` to full precision.
    """
    dtype = real_dtype(compute_dtype(dtype))
    rest = jnp.asarray(one_minus(decay, dtype), dtype=dtype)
    return -jnp.expm1(t.astype(dtype) * jnp.log1p(-rest))


class _Factors:
    """``1 - decay**t`` per distinct decay and dtype, computed once per update.

    A decay shared by every leaf (a number, an array) yields one scalar computation instead of
    one per leaf, which keeps traces and compiled programs of many-leaf trees small. The decay
    is kept referenced so that its ``id`` stays unique while the cache lives.
    """

    def __init__(self, t: jax.Array) -> None:
        self.t = t
        self.cache: dict[tuple[int, Any, bool], tuple[Any, jax.Array]] = {}

    def __call__(self, decay: Any, dtype: Any, ahead: bool = False) -> jax.Array:
        key = (id(decay), real_dtype(compute_dtype(dtype)), ahead)
        if key not in self.cache:
            t = self.t
            if ahead:
                t = t.astype(key[1]) + jnp.ones([], key[1])
            self.cache[key] = (decay, one_minus_power(decay, t, key[1]))
        return self.cache[key][1]


def _correct_first(
    m: jax.Array, g: jax.Array, b1: Any, factors: _Factors, nesterov: bool
) -> jax.Array:
    """``m / (1 - b1^t)``, or the bias-corrected Nesterov look-ahead (NAdam)."""
    dtype = compute_dtype(m.dtype, g.dtype)
    real = real_dtype(dtype)
    if nesterov:
        weights = (factors(b1, real, ahead=True), factors(b1, real))
        return nesterov_look_ahead(m, g, b1, weights)
    return m.astype(dtype) / factors(b1, real).astype(dtype)


def _correct_second(v: jax.Array, b2: Any, factors: _Factors) -> jax.Array:
    dtype = compute_dtype(v.dtype)
    return v.astype(dtype) / factors(b2, dtype)


def bias_correction() -> GradientTransformation:
    r"""Divide the moment estimates by the weight their moving averages carry.

    .. math::
        \hat m_t = \frac{m_t}{1 - b_1^t}, \qquad \hat v_t = \frac{v_t}{1 - b_2^t}

    For Nesterov moments (``moments(nesterov=True)``, NAdam) the look-ahead is corrected term
    by term (:func:`~adamjax._arraymath.nesterov_look_ahead`). An infinity norm (Adamax) needs
    no correction; only its first moment is corrected.

    Takes no arguments: :math:`b_1, b_2, t` come with the :class:`adamjax.Moments` from the
    estimator. The factors are computed in float32 or wider before any cast.

    References:
        Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015,
        https://arxiv.org/abs/1412.6980

    Returns:
        A :class:`adamjax.GradientTransformation` taking :class:`adamjax.Moments` and emitting
            bias-corrected :class:`adamjax.Moments`.
    """

    def update_fn(
        estimates: Moments, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, EmptyState]:
        del params
        expect_moments(estimates, "bias_correction")
        if estimates.corrected:
            raise TypeError("bias_correction() received moments that are already corrected")
        if estimates.b1 is None and not estimates.is_moving_average:
            raise TypeError(
                "bias_correction() applies to moving averages; a running sum of squares "
                "(sum_of_squares(), Adagrad) has no bias to correct"
            )
        factors = _Factors(estimates.count)
        mu, nu = estimates.mu, estimates.nu
        if estimates.b1 is not None:
            b1 = leafwise(estimates.b1, mu, "b1")
            nesterov = estimates.nesterov
            mu = map_leaves(
                lambda m, g, b: _correct_first(m, g, b, factors, nesterov), mu, estimates.grad, b1
            )
        if estimates.is_moving_average:
            b2 = leafwise(estimates.b2, nu, "b2")
            nu = map_leaves(lambda v, b: _correct_second(v, b, factors), nu, b2)
        return estimates.replace(mu=mu, nu=nu, corrected=True, nesterov=False), state

    return declare_stage(
        GradientTransformation(init_empty_state, update_fn), takes=MOMENTS, emits=MOMENTS
    )
