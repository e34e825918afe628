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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax.base import (
    MOMENTS,
    GradientTransformation,
    Params,
    ScalarOrSchedule,
    Updates,
    declare_stage,
)
from adamjax.combine import chain
from adamjax.correction import bias_correction, one_minus_power
from adamjax.decay import add_decayed_weights
from adamjax.moments import Moments, expect_gradients, expect_moments, max_second_moment, moments
from adamjax.normalize import normalize
from adamjax.scale import ScheduleState, _evaluate, _multiply, scale_by_learning_rate
from adamjax.sharding import zero_count
from adamjax.tree import (
    cast_hyperparameter,
    compute_dtype,
    leafwise,
    map_leaves,
    saturating_increment,
)
from adamjax.validate import check_range

__all__ = [
    "DozatMomentumState",
    "dozat_momentum",
    "keras_adam",
    "torch_adam",
    "torch_adamw",
    "torch_nadam",
]


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
    ``chain(moments(beta_1, beta_2), [max_second_moment()], normalize(epsilon))`` followed by
    a scale of :math:`-\alpha_t`: no ``bias_correction()``; the correction lives in the step
    size. ``learning_rate``, ``beta_1`` and ``beta_2`` may be per-leaf trees.
    """
    check_range("learning_rate", learning_rate)
    maximum = [max_second_moment()] if amsgrad else []
    return chain(
        moments(beta_1, beta_2),
        *maximum,
        normalize(epsilon),
        _keras_step_size(learning_rate, beta_1, beta_2),
    )


def _keras_step_size(learning_rate: Any, beta_1: Any, beta_2: Any) -> GradientTransformation:
    r"""Scale by :math:`-\alpha \sqrt{1 - b_2^t} / (1 - b_1^t)`, leaf by leaf.

    Each of ``learning_rate``, ``beta_1``, ``beta_2`` may be a per-leaf tree; a schedule gives
    one rate for every leaf. The factor is computed in float64 when x64 is enabled.
    """

    def init_fn(params: Params) -> ScheduleState:
        return ScheduleState(count=zero_count(params))

    def update_fn(
        updates: Updates, state: ScheduleState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, ScheduleState]:
        del params
        expect_gradients(updates, "keras_adam")
        t = saturating_increment(state.count)  # t = count + 1, staying at the int32 maximum
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)  # float64 when x64 is enabled
        base = _evaluate(learning_rate, state.count) if callable(learning_rate) else learning_rate

        def step_size(u: jax.Array, lr: Any, b1: Any, b2: Any) -> jax.Array:
            root = jnp.sqrt(one_minus_power(b2, t, dtype))
            rate = jnp.asarray(lr).astype(dtype) * root / one_minus_power(b1, t, dtype)
            return _multiply(u, -rate)

        updates = map_leaves(
            step_size,
            updates,
            leafwise(base, updates, "learning_rate"),
            leafwise(beta_1, updates, "beta_1"),
            leafwise(beta_2, updates, "beta_2"),
        )
        return updates, ScheduleState(count=saturating_increment(state.count))

    return GradientTransformation(init_fn, update_fn)


class DozatMomentumState(NamedTuple):
    """State of :func:`dozat_momentum`."""

    mu_product: jax.Array  # shape (): the product of the momentum schedule so far


def dozat_momentum(momentum_decay: Any = 4e-3) -> GradientTransformation:
    r"""torch's NAdam first moment, with Dozat's momentum schedule (Moments -> Moments).

    .. math::
        \mu_t = b_1 (1 - \tfrac12 0.96^{t\psi}), \quad \Pi_t = \prod_{i \le t} \mu_i, \quad
        \hat m_t = \frac{1 - \mu_t}{1 - \Pi_t} g_t + \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}} m_t,
        \quad \hat v_t = \frac{v_t}{1 - b_2^t}

    Place it right after ``moments(b1, b2)`` in place of ``bias_correction()``; it corrects both
    moments itself.

    Args:
        momentum_decay: :math:`\psi \ge 0`.
    """
    check_range("momentum_decay", momentum_decay)

    def init_fn(params: Params) -> DozatMomentumState:
        del params
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        return DozatMomentumState(mu_product=jnp.ones([], dtype))

    def update_fn(
        estimates: Moments,
        state: DozatMomentumState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Moments, DozatMomentumState]:
        del params
        expect_moments(estimates, "dozat_momentum")
        if estimates.corrected or estimates.kind != "mean_square" or estimates.b1 is None:
            raise TypeError(
                "dozat_momentum() takes the uncorrected output of moments(b1, b2) and replaces "
                "bias_correction()"
            )
        dtype = state.mu_product.dtype
        t = estimates.count.astype(dtype)
        psi = cast_hyperparameter(momentum_decay, dtype)
        b1 = jnp.asarray(estimates.b1).astype(dtype)
        mu_now = b1 * (1.0 - 0.5 * jnp.power(0.96, t * psi))
        mu_next = b1 * (1.0 - 0.5 * jnp.power(0.96, (t + 1.0) * psi))
        product = state.mu_product * mu_now
        grad_weight = (1.0 - mu_now) / (1.0 - product)
        moment_weight = mu_next / (1.0 - product * mu_next)

        def first(m: jax.Array, g: jax.Array) -> jax.Array:
            work = compute_dtype(m.dtype, g.dtype, dtype)
            return grad_weight.astype(work) * g.astype(work) + moment_weight.astype(
                work
            ) * m.astype(work)

        def second(v: jax.Array, b2: Any) -> jax.Array:
            work = compute_dtype(v.dtype, dtype)
            return v.astype(work) / one_minus_power(b2, estimates.count, work)

        mu = map_leaves(first, estimates.mu, estimates.grad)
        nu = map_leaves(second, estimates.nu, leafwise(estimates.b2, estimates.nu, "b2"))
        return estimates.replace(mu=mu, nu=nu, corrected=True), DozatMomentumState(product)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=MOMENTS, emits=MOMENTS)


def torch_nadam(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    momentum_decay: Any = 4e-3,
) -> GradientTransformation:
    r"""``torch.optim.NAdam`` with its arguments and defaults (Dozat's momentum schedule).

    ``chain([add_decayed_weights(weight_decay)], moments(*betas), dozat_momentum(momentum_decay),
    normalize(eps), scale_by_learning_rate(lr))``; see :func:`dozat_momentum` for the rule.
    :func:`adamjax.nadam` is optax's NAdam, with a constant :math:`b_1`.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop.
    """
    check_range("weight_decay", weight_decay)
    b1, b2 = betas
    coupled = [] if _is_zero(weight_decay) else [add_decayed_weights(weight_decay)]
    return chain(
        *coupled,
        moments(b1, b2),
        dozat_momentum(momentum_decay),
        normalize(eps),
        scale_by_learning_rate(lr),
    )


def _is_zero(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == 0
