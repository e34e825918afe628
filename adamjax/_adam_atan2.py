r"""Adam-atan2 (Everett et al., 2024): Adam without epsilon, normalizing through ``atan2``.

Adam's :math:`\hat m / (\sqrt{\hat v} + \epsilon)` needs an :math:`\epsilon` that must be scaled
with the model to keep small gradients from underflowing. ``atan2`` gives a bounded, scale
invariant ratio with no :math:`\epsilon`::

    moments(b1, b2) -> bias_correction() -> atan2_normalize(a, b)
        -> add_decayed_weights(weight_decay, mask) -> scale_by_learning_rate(lr)

.. math::
    u_t = a \operatorname{atan2}\!\left(\hat m_t, b \sqrt{\hat v_t}\right), \qquad
    \theta_t = \theta_{t-1} - \alpha_t (u_t + \lambda\, \theta_{t-1})

Since :math:`\operatorname{atan2}(x, y) \approx x / y` for :math:`|x| \ll y`, small ratios
move as in Adam with :math:`\epsilon = 0` (times :math:`a / b`), and :math:`|u| < a \pi / 2`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

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
from adamjax._blockwise import BlockwiseInt8
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._decay import Mask, add_decayed_weights
from adamjax._estimates import Moments, expect_moments
from adamjax._moments import moments
from adamjax._scale import scale_by_learning_rate
from adamjax._tree import cast_hyperparameter, compute_dtype, leafwise, map_leaves, real_dtype
from adamjax._validate import hyperparameter, is_concrete

__all__ = ["adam_atan2", "atan2_normalize"]


def _refuse_zero(name: str, value: Any) -> None:
    """Raise if a concrete value (or a leaf of a per-leaf tree) holds a zero: it divides."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(value):
        if is_concrete(leaf) and np.any(np.asarray(leaf) == 0):
            raise ValueError(f"{name}{jax.tree_util.keystr(path)} must be > 0, got 0")


def _atan2_leaf(m: jax.Array, v: jax.Array, g: jax.Array, a: Any, b: Any) -> jax.Array:
    r"""``a * atan2(m, b * sqrt(v))`` in float32 or wider, in ``g``'s dtype; for complex ``m``,
    :math:`a \operatorname{atan2}(|m|, b\sqrt v)\, m / |m|` (0 where :math:`m = 0`)."""
    dtype = compute_dtype(m.dtype, v.dtype, g.dtype)
    real = real_dtype(dtype)
    scale = cast_hyperparameter(b, real) * jnp.sqrt(v.astype(real))
    value = m.astype(dtype)
    if not jnp.iscomplexobj(value):
        angle = jnp.arctan2(value, scale)
        return (cast_hyperparameter(a, real) * angle).astype(g.dtype)
    size = jnp.abs(value)
    safe = jnp.where(size > 0, size, jnp.ones_like(size))
    phase = jnp.where(size > 0, value / safe.astype(dtype), jnp.zeros_like(value))
    angle = cast_hyperparameter(a, real) * jnp.arctan2(size, scale)
    return (angle.astype(dtype) * phase).astype(g.dtype)


def atan2_normalize(a: PerLeaf = 1.27, b: PerLeaf = 1.0) -> GradientTransformation:
    r"""Turn moment estimates into an update with ``atan2`` in place of a division.

    .. math::
        u = a \operatorname{atan2}\!\left(m, b \sqrt{v}\right)

    elementwise, with no :math:`\epsilon`: :math:`u = 0` where :math:`m = 0` (also where
    :math:`v = 0`), :math:`|u| < a\pi/2`, and :math:`u` does not change when the gradients
    are scaled by any :math:`c > 0`. For small :math:`|m| / \sqrt v` it is Adam's
    :math:`(a / b)\, m / \sqrt v`. A complex :math:`m` keeps its phase:
    :math:`a \operatorname{atan2}(|m|, b\sqrt v)\, m / |m|`. :math:`v` may broadcast against
    :math:`m` (:func:`adamjax.mini_moments`). Takes :class:`adamjax.Moments` holding a mean of
    squares (after :func:`adamjax.bias_correction`, usually) and emits updates.

    Args:
        a: the scale of the update, ``>= 0``; the default 1.27 (about :math:`4/\pi`, so that
            :math:`m = \sqrt v` gives :math:`u \approx 1`, as in Adam) and ``b = 1`` are the
            values of the widely used PyTorch implementation.
        b: the scale of :math:`\sqrt v`, ``> 0``.

    Returns:
        A stateless transform taking :class:`adamjax.Moments` and emitting updates.

    Raises:
        ValueError: naming the argument, for a value out of range.
        TypeError: at ``update``, for an infinity norm or a running sum in place of a mean of
            squares.

    References:
        Everett et al., *Scaling Exponents Across Parameterizations and Optimizers*, ICML 2024,
        https://arxiv.org/abs/2407.05872
    """
    a = hyperparameter("a", a)
    b = hyperparameter("b", b)
    _refuse_zero("b", b)

    def update_fn(
        estimates: Moments, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_moments(estimates, "atan2_normalize")
        if not estimates.is_moving_average:
            raise TypeError(
                f"atan2_normalize() takes a moving average of squared gradients, got "
                f"{estimates.kind} moments: use it after moments()"
            )
        mu = estimates.first_moment()
        updates = map_leaves(
            _atan2_leaf,
            mu,
            estimates.nu,
            estimates.grad,
            leafwise(a, mu, "a"),
            leafwise(b, mu, "b"),
        )
        return updates, state

    return declare_stage(
        GradientTransformation(init_empty_state, update_fn), takes=MOMENTS, emits=GRADIENTS
    )


def adam_atan2(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    weight_decay: PerLeafOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    a: PerLeaf = 1.27,
    b: PerLeaf = 1.0,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""Adam-atan2: epsilon-free, scale-invariant AdamW (Everett et al., 2024).

    .. math::
        \theta_t = \theta_{t-1} - \alpha_t \left(a \operatorname{atan2}\!\left(\hat m_t,
            b \sqrt{\hat v_t}\right) + \lambda\, \theta_{t-1}\right)

    with Adam's bias-corrected moments :math:`\hat m_t, \hat v_t` (:func:`adamjax.adam`) and
    :func:`atan2_normalize`. ``chain(moments(b1, b2), bias_correction(), atan2_normalize(a, b),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))``. ``b1``,
    ``b2`` and ``weight_decay`` default to :func:`adamjax.adamw`'s.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        a: the scale of the update, ``>= 0``.
        b: the scale of :math:`\sqrt{\hat v}`, ``> 0``.
        mu_dtype: storage dtype of :math:`m`, or :func:`adamjax.blockwise_int8` for 8-bit
            blocks.
        nu_dtype: storage dtype of :math:`v`, or :func:`adamjax.blockwise_int8` for 8-bit
            blocks.

    Returns:
        The chain above.

    Raises:
        ValueError: naming the argument, for a value out of range.

    References:
        Everett et al., *Scaling Exponents Across Parameterizations and Optimizers*, ICML 2024,
        https://arxiv.org/abs/2407.05872
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    return chain(
        moments(b1, b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        bias_correction(),
        atan2_normalize(a, b),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
