r"""The per-array arithmetic of the diagnostics: step size, signal-to-noise ratio, summaries.

For one leaf with moments :math:`\hat m, \hat v` and Adam's normalizing denominator
:math:`d(v) = \sqrt{v + \epsilon_{root}} + \epsilon` (:func:`~adamjax._arraymath.denominator`;
:math:`v + \epsilon` for an infinity norm):

.. math::
    \eta = \frac{\alpha}{d(\hat v)}, \qquad
    \rho = \frac{\hat m}{\sqrt{\hat v}} \ (\hat m / \hat v \text{ for an infinity norm}), \qquad
    \text{update RMS} = \sqrt{\overline{|\eta\,\hat m|^2}}

Each function takes one array (one leaf) and computes in float32 or wider.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._arraymath import abs_square, denominator
from adamjax._diagnostics_state import SUMMARIES
from adamjax._tree import cast_hyperparameter, compute_dtype, real_dtype

__all__ = [
    "mean_or_zero",
    "reciprocal_denominator",
    "signal_to_noise_ratio",
    "step_size",
    "summarize_leaf",
    "summary_dtype",
]


def summary_dtype(dtype: Any) -> Any:
    """The dtype a summary of a leaf of ``dtype`` is kept in: float32, or float64."""
    return real_dtype(compute_dtype(dtype))


def step_size(v: jax.Array, lr: Any, eps: Any, eps_root: Any, *, root: bool) -> jax.Array:
    r"""Per entry :math:`\eta = \alpha / d(v)`, in ``v``'s real compute dtype."""
    d = denominator(v, eps, eps_root, root=root)
    return cast_hyperparameter(lr, d.dtype) / d


def signal_to_noise_ratio(m: jax.Array, v: jax.Array, *, root: bool) -> jax.Array:
    r"""Per entry :math:`m / \sqrt{v}` (:math:`m / v` without ``root``), 0 where :math:`v = 0`."""
    dtype = compute_dtype(m.dtype, v.dtype)
    real = real_dtype(dtype)
    v = v.astype(real)
    scale = jnp.sqrt(v) if root else v
    positive = scale > jnp.zeros([], real)
    safe = jnp.where(positive, scale, jnp.ones_like(scale))
    ratio = m.astype(dtype) / safe.astype(dtype)
    return jnp.where(positive, ratio, jnp.zeros_like(ratio))


def mean_or_zero(x: jax.Array, dtype: Any) -> jax.Array:
    """The mean of ``x`` in ``dtype``; 0 for an empty array."""
    if x.size == 0:
        return jnp.zeros([], dtype)
    return jnp.mean(x).astype(dtype)


def reciprocal_denominator(
    v: jax.Array, scale: Any, eps: Any, eps_root: Any, *, root: bool
) -> jax.Array:
    r""":math:`1 / d(s v)`, with the scale :math:`s` taken out of the root.

    .. math::
        d(s v) = \sqrt{s v + \epsilon_{root}} + \epsilon
               = \sqrt{s}\,\sqrt{v + \epsilon_{root} / s} + \epsilon

    The right-hand form is :math:`\sqrt s\, d_0(v) + \epsilon` with :math:`d_0` the denominator
    without :math:`\epsilon` and with :math:`\epsilon_{root} / s` under the root. It reads the
    stored :math:`v` directly (the correction :math:`s = 1 / (1 - b_2^t)` is a scalar), and its
    root is not the one :func:`adamjax.normalize` takes, so XLA does not share the two and keep
    the root of every entry in memory between them.
    """
    outer = jnp.sqrt(scale) if root else scale
    return 1 / (outer * denominator(v, 0.0, eps_root / scale, root=root) + eps)


def summarize_leaf(
    m: jax.Array,
    v: jax.Array,
    scales: tuple[Any, Any],
    hyperparameters: tuple[Any, Any, Any],
    *,
    root: bool,
    dtype: Any,
) -> jax.Array:
    r"""The five summaries of one leaf, in the order of ``SUMMARIES``, as a ``(5,)`` array.

    ``m, v`` are the moments as stored and ``scales`` the scalars :math:`(s_1, s_2)` that correct
    them, :math:`\hat m = s_1 m, \hat v = s_2 v` (1 for moments already corrected). Scalars are
    applied after each reduction where the math allows it, so the reductions read the moments
    in place: :math:`\max \eta` and :math:`\min \eta` are the step size at :math:`s_2 \min v`
    and :math:`s_2 \max v` (it is monotone), and :math:`|\hat m| / \sqrt{\hat v} =
    s_1 s_2^{-1/2} |m| / \sqrt v`. Per entry that leaves one reciprocal
    :math:`r = 1 / d(s_2 v)` (:func:`reciprocal_denominator`), giving the mean step size
    :math:`\alpha \bar r` and the update's RMS :math:`\alpha s_1 \sqrt{\overline{r^2 |m|^2}}`,
    and one reciprocal root.

    Args:
        m: the first moment as stored (complex for complex params).
        v: the second moment as stored.
        scales: :math:`(s_1, s_2)`, numbers or scalar arrays.
        hyperparameters: ``(learning_rate, eps, eps_root)`` of this leaf.
        root: whether ``v`` is normalized by its root (not an infinity norm).
        dtype: the dtype of the result.

    Returns:
        ``[mean eta, min eta, max eta, mean |snr|, update RMS]``.
    """
    if v.size == 0:
        return jnp.zeros([len(SUMMARIES)], dtype)
    real = real_dtype(compute_dtype(m.dtype, v.dtype))
    v = v.astype(real)
    m = m.astype(compute_dtype(m.dtype))
    scale1, scale2 = (cast_hyperparameter(s, real) for s in scales)
    lr, eps, eps_root = (cast_hyperparameter(x, real) for x in hyperparameters)

    def reciprocal(v: jax.Array) -> jax.Array:
        return reciprocal_denominator(v, scale2, eps, eps_root, root=root)

    r = reciprocal(v)
    positive = v > jnp.zeros([], real)
    safe = jnp.where(positive, v, jnp.ones_like(v))
    ratio = jnp.where(positive, jnp.abs(m) * (jax.lax.rsqrt(safe) if root else 1 / safe), 0)
    snr_scale = scale1 * (jax.lax.rsqrt(scale2) if root else 1 / scale2)
    values = (
        lr * jnp.mean(r),
        lr * reciprocal(jnp.max(v)),
        lr * reciprocal(jnp.min(v)),
        snr_scale * jnp.mean(ratio),
        lr * scale1 * jnp.sqrt(jnp.mean(r * r * abs_square(m))),
    )
    return jnp.stack([x.astype(dtype) for x in values])
