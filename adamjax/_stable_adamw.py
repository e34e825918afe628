r"""StableAdamW (Wortsman et al., 2023): AdamW whose step per tensor is capped by update clipping.

Adafactor's update clipping, ported to AdamW: where the current gradient is large compared with
the second moment it is divided by (a loss spike coming), the tensor's step shrinks. It is one
block in the moments stage, between the bias correction and the normalization::

    moments(b1, b2) -> bias_correction() -> update_clipping(eps) -> normalize(eps)
        -> add_decayed_weights(weight_decay, mask) -> scale_by_learning_rate(lr)

.. math::
    R_t = \sqrt{\operatorname{mean}\!\left(\frac{g_t^2}{\max(\hat v_t, \epsilon^2)}\right)},
    \qquad
    \theta_t = \theta_{t-1} - \alpha_t \left(\frac{1}{\max(1, R_t)}
        \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda\, \theta_{t-1}\right)

with the mean over each tensor (leaf) separately.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from adamjax._arraymath import abs_square
from adamjax._base import (
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    declare_stage,
    init_empty_state,
)
from adamjax._blockwise import BlockwiseInt8
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._decay import Mask, add_decayed_weights
from adamjax._estimates import Moments, expect_moments
from adamjax._moments import moments
from adamjax._normalize import normalize
from adamjax._scale import scale_by_learning_rate
from adamjax._tree import cast_hyperparameter, compute_dtype, leafwise, map_leaves, real_dtype
from adamjax._validate import hyperparameter, is_concrete

__all__ = ["stable_adamw", "update_clipping", "update_rms"]


def _refuse_zero(name: str, value: Any) -> None:
    """Raise if a concrete value (or a leaf of a per-leaf tree) holds a zero: it divides."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(value):
        if is_concrete(leaf) and np.any(np.asarray(leaf) == 0):
            raise ValueError(f"{name}{jax.tree_util.keystr(path)} must be > 0, got 0")


def update_rms(g: jax.Array, v: jax.Array, eps: Any = 1e-8) -> jax.Array:
    r"""The root mean square of :math:`g^2 / \max(v, \epsilon^2)` over a whole leaf.

    .. math::
        R = \sqrt{\frac{1}{d} \sum_i \frac{|g_i|^2}{\max(v_i, \epsilon^2)}}

    ``v`` may have fewer elements than ``g`` if it broadcasts against it (one second moment per
    block, :func:`adamjax.mini_moments`); the mean is over ``g``'s :math:`d` elements. An empty
    leaf has :math:`R = 0`.

    Args:
        g: the gradient of one leaf.
        v: its (bias-corrected) second moment.
        eps: :math:`\epsilon`; :math:`\epsilon^2` bounds ``v`` from below.

    Returns:
        :math:`R`, a scalar in the real compute dtype.
    """
    real = real_dtype(compute_dtype(g.dtype, v.dtype))
    if g.size == 0:
        return jnp.zeros([], real)
    floor = cast_hyperparameter(eps, real)
    ratio = abs_square(g).astype(real) / jnp.maximum(v.astype(real), floor * floor)
    return jnp.sqrt(jnp.mean(ratio))


def _clip_leaf(m: jax.Array, g: jax.Array, v: jax.Array, eps: Any, threshold: Any) -> jax.Array:
    """``m / max(1, R / threshold)`` in float32 or wider, stored in ``m``'s compute dtype."""
    dtype = compute_dtype(m.dtype, g.dtype, v.dtype)
    real = real_dtype(dtype)
    rms = update_rms(g, v, eps) / cast_hyperparameter(threshold, real)
    factor = jnp.ones([], real) / jnp.maximum(jnp.ones([], real), rms)
    return m.astype(dtype) * factor.astype(dtype)


def _expect_corrected_mean_square(estimates: Moments) -> None:
    if not (estimates.is_moving_average and estimates.corrected):
        raise TypeError(
            "update_clipping() takes bias-corrected moving averages of squared gradients, got "
            f"{estimates.kind} moments (corrected={estimates.corrected}): place it after "
            "moments() and bias_correction()"
        )


def update_clipping(eps: PerLeaf = 1e-8, threshold: PerLeaf = 1.0) -> GradientTransformation:
    r"""Scale each leaf's first moment down by its update RMS (StableAdamW's update clipping).

    .. math::
        \hat m \leftarrow \frac{\hat m}{\max(1, R / c)}, \qquad
        R = \sqrt{\operatorname{mean}\!\left(\frac{g^2}{\max(\hat v, \epsilon^2)}\right)}

    per leaf (:func:`update_rms`), :math:`c` = ``threshold``. Since the update is linear in
    :math:`\hat m`, this divides that leaf's Adam step by :math:`\max(1, R / c)`, which is
    dividing its learning rate, as Wortsman et al. do (their reference code divides the Adam
    term only, not the decoupled weight decay; so does this block, placed before
    :func:`adamjax.normalize`). Takes and emits :class:`adamjax.Moments`, bias-corrected
    moving averages (after :func:`adamjax.bias_correction`); works with one second moment per
    block (:func:`adamjax.mini_moments`) too.

    Args:
        eps: :math:`\epsilon`, ``>= 0``; :math:`\epsilon^2` bounds :math:`\hat v` from below.
        threshold: :math:`c > 0`, the RMS above which the step shrinks (1 in the paper).

    Returns:
        A stateless transform taking and emitting :class:`adamjax.Moments`.

    Raises:
        ValueError: naming the argument, for a value out of range.
        TypeError: at ``update``, for moments that are not bias-corrected moving averages.

    References:
        Wortsman et al., *Stable and low-precision training for large-scale vision-language
        models*, NeurIPS 2023, https://arxiv.org/abs/2304.13013
    """
    eps = hyperparameter("eps", eps)
    threshold = hyperparameter("threshold", threshold)
    _refuse_zero("threshold", threshold)

    def update_fn(
        estimates: Moments, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, EmptyState]:
        del params
        expect_moments(estimates, "update_clipping")
        _expect_corrected_mean_square(estimates)
        mu = map_leaves(
            _clip_leaf,
            estimates.mu,
            estimates.grad,
            estimates.nu,
            leafwise(eps, estimates.mu, "eps"),
            leafwise(threshold, estimates.mu, "threshold"),
        )
        return estimates.replace(mu=mu), state

    return declare_stage(
        GradientTransformation(init_empty_state, update_fn), takes=MOMENTS, emits=MOMENTS
    )


def stable_adamw(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.99,
    eps: PerLeaf = 1e-8,
    weight_decay: PerLeafOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    threshold: PerLeaf = 1.0,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""StableAdamW: AdamW with update clipping per tensor (Wortsman et al., 2023).

    .. math::
        \theta_t = \theta_{t-1} - \alpha_t \left(\frac{1}{\max(1, R_t / c)}
            \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda\, \theta_{t-1}\right),
        \qquad
        R_t = \sqrt{\operatorname{mean}\!\left(\frac{g_t^2}{\max(\hat v_t, \epsilon^2)}\right)}

    per leaf, with Adam's bias-corrected moments (:func:`adamjax.adam`; the paper's
    bias-corrected decay rates :math:`\hat\beta_t` give the same :math:`\hat m_t, \hat v_t`).
    ``chain(moments(b1, b2), bias_correction(), update_clipping(eps, threshold),
    normalize(eps), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``.

    ``b1``, ``b2``, ``eps`` and the decay left unclipped follow the authors' reference code
    (``StableAdamWUnfused``: betas ``(0.9, 0.99)``, eps ``1e-8``); ``weight_decay`` defaults
    to :func:`adamjax.adamw`'s ``1e-4`` (the reference code's 0.2 is its CLIP setting).

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to :math:`\sqrt{\hat v}`, and :math:`\epsilon^2` bounds :math:`\hat v` in
            :math:`R`; ``>= 0``.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        threshold: :math:`c > 0`, the RMS above which the step shrinks.
        mu_dtype: storage dtype of :math:`m`, or :func:`adamjax.blockwise_int8` for 8-bit
            blocks.
        nu_dtype: storage dtype of :math:`v`, or :func:`adamjax.blockwise_int8` for 8-bit
            blocks.

    Returns:
        The chain above.

    Raises:
        ValueError: naming the argument, for a value out of range.

    References:
        Wortsman et al., *Stable and low-precision training for large-scale vision-language
        models*, NeurIPS 2023, https://arxiv.org/abs/2304.13013
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    return chain(
        moments(b1, b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        bias_correction(),
        update_clipping(eps, threshold),
        normalize(eps),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
