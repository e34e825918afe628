r"""Adam's step with the bias correction folded into the learning rate.

Keras, TensorFlow and torch's ``SparseAdam`` do not correct the moments; they correct the step
size instead and divide by the root of the *uncorrected* second moment, so that their
:math:`\epsilon` is not corrected ("epsilon hat"). :func:`folded_correction_step` is that step
(the formula is on it); it takes the place of ``bias_correction() -> normalize(eps) ->
scale_by_learning_rate(lr)`` after a moment estimator, in :func:`adamjax.presets.keras_adam`
and :func:`adamjax.lazy_adam`.
"""

from __future__ import annotations

from collections.abc import Callable
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
from adamjax._correction import one_minus_power
from adamjax._estimates import Moments, expect_moments
from adamjax._rate import rate_at_step
from adamjax._tree import cast_hyperparameter, compute_dtype, leafwise, map_leaves, real_dtype
from adamjax._validate import hyperparameter

__all__ = ["folded_correction_step", "folded_moments", "map_folded_step"]

LeafStep = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, tuple[Any, ...]], jax.Array]


def folded_moments(estimates: Any, name: str, needs: str) -> Moments:
    """``estimates``, checked to be what a folded step takes: both moving averages of
    ``moments(b1, b2)``, uncorrected, without Nesterov's look-ahead.

    Args:
        estimates: what the stage's ``update`` received.
        name: the stage, for the errors.
        needs: the rest of the ``TypeError`` message, after ``name()``.

    Raises:
        TypeError: for gradients in place of moment estimates (naming ``name``), or for
            moments that are corrected, have no first moment, no moving average of
            :math:`|g|^2`, or Nesterov's look-ahead.
    """
    expect_moments(estimates, name)
    foldable = estimates.b1 is not None and estimates.is_moving_average
    if estimates.corrected or estimates.nesterov or not foldable:
        raise TypeError(f"{name}() {needs}")
    return estimates


def map_folded_step(step: LeafStep, estimates: Moments, extra: dict[str, Any]) -> Updates:
    """``step(m, v, g, t, (b1, b2, *extra))`` on every leaf, each hyperparameter taken per leaf
    (``extra``: the stage's own, by name, for the errors)."""
    t, nu = estimates.count, estimates.nu
    values = {"b1": estimates.b1, "b2": estimates.b2, **extra}
    per_leaf = [leafwise(value, nu, name) for name, value in values.items()]
    return map_leaves(
        lambda m, v, g, *hyperparameters: step(m, v, g, t, hyperparameters),
        estimates.first_moment(),
        nu,
        estimates.grad,
        *per_leaf,
    )


_FOLDS = (
    "folds the bias correction of both moving averages of moments(b1, b2) into the step size: "
    "it takes them uncorrected, with a first moment and without Nesterov's look-ahead, in "
    "place of bias_correction() and normalize()"
)


def _folded_step(
    m: jax.Array, v: jax.Array, g: jax.Array, t: jax.Array, hyperparameters: tuple[Any, ...]
) -> jax.Array:
    """One leaf's update by :func:`folded_correction_step`'s rule, computed in float32 or wider
    and rounded once to ``g``'s dtype.

    Args:
        m: the first moment, uncorrected.
        v: the second moment, uncorrected.
        g: the gradient, whose dtype the update takes.
        t: the step count of the moments.
        hyperparameters: this leaf's ``(b1, b2, learning_rate, eps)``.
    """
    b1, b2, lr, eps = hyperparameters
    dtype = compute_dtype(g.dtype, m.dtype, v.dtype)
    real = real_dtype(dtype)
    rate = cast_hyperparameter(lr, real) * jnp.sqrt(one_minus_power(b2, t, real))
    rate = rate / one_minus_power(b1, t, real)
    d = denominator(v, eps, dtype=dtype)
    return (-(m.astype(dtype) / d.astype(dtype)) * rate.astype(dtype)).astype(g.dtype)


def folded_correction_step(
    learning_rate: PerLeafOrSchedule, eps: PerLeaf
) -> GradientTransformation:
    r"""Turn uncorrected moments into Adam's update, the correction folded into the step size.

    .. math::
        u_t = -\alpha \frac{\sqrt{1 - b_2^t}}{1 - b_1^t} \frac{m_t}{\sqrt{v_t} + \epsilon}

    :math:`b_1, b_2, t` come with the :class:`adamjax.Moments`, so this stage takes only the
    learning rate and :math:`\epsilon`. It follows the moment estimator (and, for AMSGrad,
    :func:`adamjax.max_second_moment`, whose maximum of the raw :math:`v_t` it then divides
    by), and emits the updates: ``chain(moments(b1, b2), folded_correction_step(lr, eps))``
    is Keras' Adam.

    Args:
        learning_rate: :math:`\alpha`: a number, an array, a per-leaf tree, or a schedule of
            the steps already taken (called with :math:`t - 1`).
        eps: added to :math:`\sqrt{v_t}`, ``>= 0``.

    Returns:
        A stateless transform taking :class:`adamjax.Moments` and emitting updates.

    Raises:
        ValueError: naming ``learning_rate`` or ``eps`` when out of range.
        TypeError: at ``update``, for gradients in place of moment estimates, or for moments
            that are corrected already, have no first moment, no moving average of
            :math:`|g|^2` (there is nothing to fold) or Nesterov's look-ahead.
    """
    learning_rate = hyperparameter("learning_rate", learning_rate, schedule=True)
    eps = hyperparameter("eps", eps)

    def update_fn(
        estimates: Moments, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        estimates = folded_moments(estimates, "folded_correction_step", _FOLDS)
        rate = rate_at_step(learning_rate, estimates.count)
        return map_folded_step(_folded_step, estimates, {"learning_rate": rate, "eps": eps}), state

    transform = GradientTransformation(init_empty_state, update_fn)
    return declare_stage(transform, takes=MOMENTS, emits=GRADIENTS)
