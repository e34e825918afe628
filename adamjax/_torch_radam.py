r"""``torch.optim.RAdam``: rectified Adam with torch's placement of :math:`\epsilon`.

torch's RAdam corrects the first moment, divides by :math:`\sqrt{v_t} + \epsilon` with the
*uncorrected* second moment and multiplies by :math:`\sqrt{1 - b_2^t}`, so its :math:`\epsilon`
is not bias-corrected (as in Keras' Adam); :func:`adamjax.rectified_normalize` divides by
:math:`\sqrt{\hat v_t} + \epsilon` instead. :func:`folded_rectified_normalize` is torch's rule::

    [g + wd * theta] -> moments(b1, b2) -> folded_rectified_normalize(eps)
        -> [add_decayed_weights(wd)] -> scale_by_learning_rate(lr)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    ScalarOrSchedule,
    Updates,
    declare_stage,
    init_empty_state,
)
from adamjax._correction import one_minus_power
from adamjax._estimates import Moments
from adamjax._folded_correction import folded_moments, map_folded_step
from adamjax._moments import moments
from adamjax._torch_arguments import check_bool, torch_arguments, torch_chain
from adamjax._tree import (
    cast_hyperparameter,
    compute_dtype,
    one_minus,
    real_dtype,
)
from adamjax._validate import hyperparameter

__all__ = ["folded_rectified_normalize", "torch_radam"]

RECTIFICATION_THRESHOLD = 5.0  # torch rectifies where rho_t > 5


def _rectifier(b2: Any, t: jax.Array, dtype: Any) -> tuple[jax.Array, jax.Array]:
    r"""``(rectify, r_t)``: whether :math:`\rho_t > 5`, and the rectifier (1 where it is not).

    :math:`\rho_\infty = 2 / (1 - b_2) - 1`, :math:`\rho_t = \rho_\infty - 2 t b_2^t /
    (1 - b_2^t)`; the rectifier's square is replaced by 1 where it is not used, so that no NaN
    is computed there.
    """
    rho_inf = 2.0 / jnp.asarray(one_minus(b2, dtype), dtype) - 1.0
    bc2 = one_minus_power(b2, t, dtype)
    rho_t = rho_inf - 2.0 * t.astype(dtype) * (1.0 - bc2) / bc2
    rectify = rho_t > RECTIFICATION_THRESHOLD
    square = (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
    return rectify, jnp.sqrt(jnp.where(rectify, square, jnp.ones_like(square)))


_TAKES = (
    "takes both moving averages of moments(b1, b2) uncorrected, without Nesterov's "
    "look-ahead, in place of bias_correction()"
)


def _folded_rectified_step(
    m: jax.Array, v: jax.Array, g: jax.Array, t: jax.Array, hyperparameters: tuple[Any, ...]
) -> jax.Array:
    """One leaf of :func:`folded_rectified_normalize`, computed in float32 or wider and rounded
    once to ``g``'s dtype. ``hyperparameters`` is this leaf's ``(b1, b2, eps)``."""
    b1, b2, eps = hyperparameters
    dtype = compute_dtype(g.dtype, m.dtype, v.dtype)
    real = real_dtype(dtype)
    rectify, r = _rectifier(b2, t, real)
    corrected_m = m.astype(dtype) / one_minus_power(b1, t, real).astype(dtype)
    root = jnp.sqrt(v.astype(real)) + cast_hyperparameter(eps, real)
    scale = r * jnp.sqrt(one_minus_power(b2, t, real)) / root
    return jnp.where(rectify, corrected_m * scale.astype(dtype), corrected_m).astype(g.dtype)


def folded_rectified_normalize(eps: PerLeaf = 1e-8) -> GradientTransformation:
    r"""RAdam's rectified step as torch takes it: :math:`\epsilon` added to the raw root.

    With :math:`\rho_\infty = 2 / (1 - b_2) - 1`,
    :math:`\rho_t = \rho_\infty - 2 t\, b_2^t / (1 - b_2^t)` and
    :math:`\hat m_t = m_t / (1 - b_1^t)`,

    .. math::
        r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\, \rho_\infty}
                         {(\rho_\infty - 4)(\rho_\infty - 2)\, \rho_t}}, \qquad
        u_t = \begin{cases}
            r_t\, \hat m_t\, \dfrac{\sqrt{1 - b_2^t}}{\sqrt{v_t} + \epsilon} & \rho_t > 5 \\
            \hat m_t & \text{otherwise (momentum SGD)}
        \end{cases}

    with the *uncorrected* :math:`v_t`, so that :math:`\epsilon` is not bias-corrected: this is
    :func:`adamjax.rectified_normalize` with :math:`\epsilon` replaced by
    :math:`\epsilon / \sqrt{1 - b_2^t}`, and with torch's strict threshold. :math:`b_1, b_2, t`
    come with the :class:`adamjax.Moments` of ``moments(b1, b2)``, uncorrected (in place of
    ``bias_correction()``). Arithmetic runs in float32 or wider; updates take the gradient's
    dtype.

    Args:
        eps: added to :math:`\sqrt{v_t}`, ``>= 0``.

    Returns:
        A stateless transform taking :class:`adamjax.Moments` and emitting updates.

    Raises:
        ValueError: naming ``eps`` when it is negative.
        TypeError: at ``update``, for gradients in place of moment estimates, or for moments
            that are corrected already, have no first moment, no moving average of
            :math:`|g|^2` or Nesterov's look-ahead.

    References:
        Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020,
        https://arxiv.org/abs/1908.03265
    """
    eps = hyperparameter("eps", eps)

    def update_fn(
        estimates: Moments, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        estimates = folded_moments(estimates, "folded_rectified_normalize", _TAKES)
        return map_folded_step(_folded_rectified_step, estimates, {"eps": eps}), state

    transform = GradientTransformation(init_empty_state, update_fn)
    return declare_stage(transform, takes=MOMENTS, emits=GRADIENTS)


def torch_radam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    r"""``torch.optim.RAdam`` with its arguments and defaults.

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, u_t \;[-\, \alpha\lambda\theta_{t-1}]

    with the rectified update :math:`u_t` of :func:`folded_rectified_normalize` (a momentum
    step :math:`\hat m_t` until :math:`\rho_t > 5`, at the sixth step for the usual
    :math:`b_2`; then :math:`r_t \hat m_t \sqrt{1 - b_2^t} / (\sqrt{v_t} + \epsilon)`).
    ``real_view(chain(add_decayed_weights(weight_decay), moments(*betas),
    folded_rectified_normalize(eps), scale_by_learning_rate(lr)))``: by default the weight decay
    is coupled (:math:`g \leftarrow g + \lambda\theta` feeds the moments), and the stage is
    there for every ``weight_decay``, as in :func:`adamjax.presets.torch_adam`. With
    ``decoupled_weight_decay=True`` torch scales the params by :math:`1 - \alpha\lambda` before
    the step; here ``add_decayed_weights(weight_decay)`` moves after the rectified step, before
    the learning rate, which is the same update. A complex parameter is optimized as its real
    and imaginary parts, as torch does. :func:`adamjax.radam` is optax's RAdam (corrected
    :math:`\hat v_t` under :math:`\epsilon`, threshold :math:`\rho_t \ge 5`).

    Args:
        lr: learning rate :math:`\alpha \ge 0`, or a schedule ``count -> lr``.
        betas: the pair ``(b1, b2)`` of decay rates, each in ``[0, 1)``.
        eps: added to the root of the raw second moment, :math:`\ge 0`.
        weight_decay: :math:`\lambda \ge 0`, coupled L2 unless ``decoupled_weight_decay``.
        decoupled_weight_decay: decay the params by :math:`\alpha\lambda\theta` (AdamW's rule)
            instead of adding :math:`\lambda\theta` to the gradient.

    Returns:
        A :class:`adamjax.GradientTransformation` (its state is the chain's tuple of states).

    Raises:
        TypeError: naming ``betas`` when it is not a pair, ``decoupled_weight_decay`` when it is
            not a bool, or the argument that is not a number.
        ValueError: naming ``lr``, ``betas[0]``, ``betas[1]``, ``eps`` or ``weight_decay`` when
            out of range.

    References:
        Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020,
        https://arxiv.org/abs/1908.03265
    """
    lr, b1, b2, eps, weight_decay = torch_arguments(lr, betas, eps, weight_decay)
    decoupled = check_bool("decoupled_weight_decay", decoupled_weight_decay)
    steps = [moments(b1, b2), folded_rectified_normalize(eps)]
    return torch_chain(steps, lr, weight_decay, decoupled=decoupled)
