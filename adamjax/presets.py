r"""Adam exactly as torch and Keras define it, built from adamjax's blocks.

These reproduce the other libraries' conventions (see ``docs/conventions.md``):

* ``torch.optim.Adam(weight_decay=wd)`` adds :math:`wd\,\theta` to the gradient *before* the
  moments (coupled L2) and takes AMSGrad's maximum over the raw :math:`v_t`;
* ``torch.optim.AdamW`` decays decoupled, multiplied by the learning rate, like
  :func:`adamjax.adamw`;
* ``keras.optimizers.Adam`` folds the bias correction into the learning rate,
  :math:`\alpha_t = \alpha \sqrt{1 - b_2^t} / (1 - b_1^t)`, and divides by
  :math:`\sqrt{v_t} + \epsilon` with the *uncorrected* :math:`v_t` ("epsilon hat").
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax.base import GradientTransformation, ScalarOrSchedule
from adamjax.combine import chain
from adamjax.correction import bias_correction, one_minus_power
from adamjax.decay import add_decayed_weights
from adamjax.moments import max_second_moment, moments
from adamjax.normalize import normalize
from adamjax.scale import scale_by_learning_rate
from adamjax.validate import check_range

__all__ = ["keras_adam", "torch_adam", "torch_adamw"]


def torch_adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    amsgrad: bool = False,
) -> GradientTransformation:
    r"""``torch.optim.Adam`` with its arguments and defaults.

    ``chain([add_decayed_weights(weight_decay)], moments(*betas), [max_second_moment()],
    bias_correction(), normalize(eps), scale_by_learning_rate(lr))``: the weight decay is
    coupled (:math:`g \leftarrow g + wd\,\theta` before the moments), and AMSGrad takes the
    maximum of the raw second moment.
    """
    check_range("weight_decay", weight_decay)
    b1, b2 = betas
    coupled = [] if _is_zero(weight_decay) else [add_decayed_weights(weight_decay)]
    maximum = [max_second_moment()] if amsgrad else []
    return chain(
        *coupled,
        moments(b1, b2),
        *maximum,
        bias_correction(),
        normalize(eps),
        scale_by_learning_rate(lr),
    )


def torch_adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 1e-2,
    amsgrad: bool = False,
) -> GradientTransformation:
    r"""``torch.optim.AdamW`` with its arguments and defaults (``weight_decay=1e-2``).

    torch scales the params by :math:`1 - \alpha\lambda` before the Adam step, which equals
    :func:`adamjax.adamw`'s :math:`-\alpha(\hat u + \lambda\theta)`.
    """
    b1, b2 = betas
    maximum = [max_second_moment()] if amsgrad else []
    return chain(
        moments(b1, b2),
        *maximum,
        bias_correction(),
        normalize(eps),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr),
    )


def keras_adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    beta_1: Any = 0.9,
    beta_2: Any = 0.999,
    epsilon: Any = 1e-7,
    amsgrad: bool = False,
) -> GradientTransformation:
    r"""``keras.optimizers.Adam`` with its arguments and defaults (``epsilon=1e-7``).

    .. math::
        \alpha_t = \alpha \frac{\sqrt{1 - b_2^t}}{1 - b_1^t}, \qquad
        \theta_t = \theta_{t-1} - \alpha_t \frac{m_t}{\sqrt{v_t} + \epsilon}

    which is Adam with :math:`\epsilon` replaced by :math:`\epsilon \sqrt{1 - b_2^t}`.
    ``chain(moments(beta_1, beta_2), [max_second_moment()], normalize(epsilon),
    scale_by_learning_rate(keras_rate))``: no ``bias_correction()``; the correction lives in
    the learning-rate schedule.
    """
    check_range("learning_rate", learning_rate)

    def keras_rate(count: jax.Array) -> jax.Array:
        t = jnp.asarray(count).astype(jnp.int32) + 1
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)  # float64 when x64 is enabled
        base = learning_rate(count) if callable(learning_rate) else learning_rate
        root = jnp.sqrt(one_minus_power(beta_2, t, dtype))
        return jnp.asarray(base).astype(dtype) * root / one_minus_power(beta_1, t, dtype)

    maximum = [max_second_moment()] if amsgrad else []
    return chain(
        moments(beta_1, beta_2),
        *maximum,
        normalize(epsilon),
        scale_by_learning_rate(keras_rate),
    )


def _is_zero(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == 0
