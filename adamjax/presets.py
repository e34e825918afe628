r"""Adam exactly as torch and Keras define it, built from adamjax's blocks.

These reproduce the other libraries' conventions (see ``docs/conventions.md``):

* ``torch.optim.Adam(weight_decay=wd)`` adds :math:`wd\,\theta` to the gradient *before* the
  moments (coupled L2) and takes AMSGrad's maximum over the raw :math:`v_t`;
* ``torch.optim.AdamW`` decays decoupled, multiplied by the learning rate, like
  :func:`adamjax.adamw`;
* ``keras.optimizers.Adam`` folds the bias correction into the learning rate and divides by
  the root of the *uncorrected* second moment ("epsilon hat", :func:`keras_adam`);
* ``torch.optim.RAdam`` divides by :math:`\sqrt{v_t} + \epsilon` with :math:`v_t` uncorrected
  and the correction in the step size (:func:`torch_radam`, :func:`folded_rectified_normalize`);
* ``torch.optim.Adafactor`` factors the second moment of every leaf with two axes or more over
  its last two axes and clamps it by :math:`\epsilon_1` (:func:`torch_adafactor`,
  :func:`clamped_factored_second_moment`);
* torch's optimizers take a complex parameter as its real and imaginary parts, each with its own
  second moment; the torch presets do too (see ``docs/conventions.md``), except Adafactor, which
  torch does not define for complex parameters.

Each preset checks its arguments under the other library's names (``lr``, ``betas[0]``;
``learning_rate``, ``beta_1``) before it builds its chain.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax._base import (
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    ScalarOrSchedule,
    declare_stage,
)
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._estimates import Moments, expect_moments
from adamjax._folded_correction import folded_correction_step
from adamjax._moments import max_second_moment, moments
from adamjax._normalize import normalize
from adamjax._torch_adafactor import (
    ClampedFactoredState,
    clamped_factored_second_moment,
    torch_adafactor,
)
from adamjax._torch_arguments import check_bool, torch_arguments, torch_chain
from adamjax._torch_radam import folded_rectified_normalize, torch_radam
from adamjax._tree import cast_hyperparameter, compute_dtype, map_leaves
from adamjax._validate import hyperparameter

__all__ = [
    "ClampedFactoredState",
    "DozatMomentumState",
    "clamped_factored_second_moment",
    "dozat_momentum",
    "folded_rectified_normalize",
    "keras_adam",
    "torch_adafactor",
    "torch_adam",
    "torch_adamw",
    "torch_nadam",
    "torch_radam",
]


def torch_adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    amsgrad: bool = False,
) -> GradientTransformation:
    r"""``torch.optim.Adam`` with its arguments and defaults.

    ``real_view(chain(add_decayed_weights(weight_decay), moments(*betas), [max_second_moment()],
    bias_correction(), normalize(eps), scale_by_learning_rate(lr)))``: the weight decay is
    coupled (:math:`g \leftarrow g + wd\,\theta` before the moments), and AMSGrad takes the
    maximum of the raw second moment. The decay stage is there for every ``weight_decay``, so the
    state has the same structure whether it is ``0.0`` or an array; a Python ``0`` costs nothing.

    A complex parameter is optimized as torch does, as its real and imaginary parts, each with its
    own second moment (see ``docs/conventions.md``); its state is stored as real arrays
    of shape ``(*shape, 2)``. :func:`adamjax.adam` keeps one second moment of :math:`|g|^2` per
    complex entry instead (see ``docs/conventions.md``).

    Args:
        lr: learning rate :math:`\ge 0`, or a schedule ``count -> lr``.
        betas: the pair ``(b1, b2)`` of decay rates, each in ``[0, 1)``.
        eps: added to the root of the second moment, :math:`\ge 0`.
        weight_decay: coupled L2 coefficient :math:`\ge 0`.
        amsgrad: use the running maximum of the raw second moment.

    Returns:
        A :class:`adamjax.GradientTransformation` (its state is the chain's tuple of states).

    Raises:
        TypeError: naming ``betas`` when it is not a pair, ``amsgrad`` when it is not a bool, or
            the argument that is not a number.
        ValueError: naming ``lr``, ``betas[0]``, ``betas[1]``, ``eps`` or ``weight_decay`` when
            out of range.
    """
    return _torch_adam_family(lr, betas, eps, weight_decay, amsgrad, decoupled=False)


def torch_adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 1e-2,
    amsgrad: bool = False,
) -> GradientTransformation:
    r"""``torch.optim.AdamW`` with its arguments and defaults (``weight_decay=1e-2``).

    torch scales the params by :math:`1 - \alpha\lambda` before the Adam step, which equals
    :func:`adamjax.adamw`'s :math:`-\alpha(\hat u + \lambda\theta)`. A complex parameter is
    optimized as its real and imaginary parts, as in :func:`torch_adam`.

    Args:
        lr: learning rate :math:`\ge 0`, or a schedule ``count -> lr``.
        betas: the pair ``(b1, b2)`` of decay rates, each in ``[0, 1)``.
        eps: added to the root of the second moment, :math:`\ge 0`.
        weight_decay: decoupled decay coefficient :math:`\lambda \ge 0`.
        amsgrad: use the running maximum of the raw second moment.

    Returns:
        A :class:`adamjax.GradientTransformation` (its state is the chain's tuple of states).

    Raises:
        TypeError: naming ``betas`` when it is not a pair, ``amsgrad`` when it is not a bool, or
            the argument that is not a number.
        ValueError: naming ``lr``, ``betas[0]``, ``betas[1]``, ``eps`` or ``weight_decay`` when
            out of range.
    """
    return _torch_adam_family(lr, betas, eps, weight_decay, amsgrad, decoupled=True)


def _torch_adam_family(
    lr: Any, betas: Any, eps: Any, weight_decay: Any, amsgrad: Any, *, decoupled: bool
) -> GradientTransformation:
    """``torch.optim.Adam`` (coupled L2 before the moments) or ``AdamW`` (decoupled decay after
    ``normalize``), with AMSGrad's maximum of the raw second moment, on real views of complex
    params. The arguments are checked under torch's names before the chain is built."""
    lr, b1, b2, eps, weight_decay = torch_arguments(lr, betas, eps, weight_decay)
    maximum = [max_second_moment()] if check_bool("amsgrad", amsgrad) else []
    steps = [moments(b1, b2), *maximum, bias_correction(), normalize(eps)]
    return torch_chain(steps, lr, weight_decay, decoupled=decoupled)


def keras_adam(
    learning_rate: PerLeafOrSchedule = 1e-3,
    beta_1: PerLeaf = 0.9,
    beta_2: PerLeaf = 0.999,
    epsilon: PerLeaf = 1e-7,
    amsgrad: bool = False,
) -> GradientTransformation:
    r"""``keras.optimizers.Adam`` with its arguments and defaults (``epsilon=1e-7``).

    .. math::
        \alpha_t = \alpha \frac{\sqrt{1 - b_2^t}}{1 - b_1^t}, \qquad
        \theta_t = \theta_{t-1} - \alpha_t \frac{m_t}{\sqrt{v_t} + \epsilon}

    which is Adam with :math:`\epsilon` replaced by :math:`\epsilon \sqrt{1 - b_2^t}`.
    ``chain(moments(beta_1, beta_2), [max_second_moment()],
    folded_correction_step(learning_rate, epsilon))``: no ``bias_correction()``; the correction
    lives in the step size (the same block :func:`adamjax.lazy_adam` takes its steps with).
    ``learning_rate``, ``beta_1`` and ``beta_2`` may be per-leaf trees; a schedule is called
    with the number of steps already taken. A complex parameter keeps one second moment of
    :math:`|g|^2` per entry, as :func:`adamjax.adam` does.

    Args:
        learning_rate: :math:`\alpha \ge 0`, or a schedule ``count -> lr``.
        beta_1: decay of the first moment, in ``[0, 1)``.
        beta_2: decay of the second moment, in ``[0, 1)``.
        epsilon: added to :math:`\sqrt{v_t}`, :math:`\ge 0`.
        amsgrad: use the running maximum of the raw second moment.

    Returns:
        A :class:`adamjax.GradientTransformation` (its state is the chain's tuple of states).

    Raises:
        TypeError: naming ``amsgrad`` when it is not a bool, or the argument that is not a number.
        ValueError: naming ``learning_rate``, ``beta_1``, ``beta_2`` or ``epsilon`` when out of
            range.
    """
    learning_rate = hyperparameter("learning_rate", learning_rate, schedule=True)
    beta_1 = hyperparameter("beta_1", beta_1, upper=1.0)
    beta_2 = hyperparameter("beta_2", beta_2, upper=1.0)
    epsilon = hyperparameter("epsilon", epsilon)
    maximum = [max_second_moment()] if check_bool("amsgrad", amsgrad) else []
    return chain(moments(beta_1, beta_2), *maximum, folded_correction_step(learning_rate, epsilon))


class DozatMomentumState(NamedTuple):
    """State of :func:`dozat_momentum`."""

    mu_product: jax.Array  # shape (): the product of the momentum schedule so far


def dozat_momentum(momentum_decay: Any = 4e-3) -> GradientTransformation:
    r"""torch's NAdam first moment, with Dozat's momentum schedule (Moments -> Moments).

    .. math::
        \mu_t = b_1 (1 - \tfrac12 0.96^{t\psi}), \quad \Pi_t = \prod_{i \le t} \mu_i, \quad
        \hat m_t = \frac{1 - \mu_t}{1 - \Pi_t} g_t + \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}} m_t

    and :math:`\hat v_t` as :func:`adamjax.bias_correction` corrects it. Place it right after
    ``moments(b1, b2)`` in place of ``bias_correction()``; it corrects both moments itself.

    Args:
        momentum_decay: :math:`\psi \ge 0`.

    Returns:
        A transform taking and returning :class:`adamjax.Moments` (corrected), with state
        :class:`DozatMomentumState`.

    Raises:
        ValueError: naming ``momentum_decay`` when it is negative.
        TypeError: at ``update``, for moments that are not the uncorrected output of
            ``moments(b1, b2)``.
    """
    momentum_decay = hyperparameter("momentum_decay", momentum_decay)

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
        if estimates.corrected or not estimates.is_moving_average or estimates.b1 is None:
            raise TypeError(
                "dozat_momentum() takes the uncorrected output of moments(b1, b2) and replaces "
                "bias_correction()"
            )
        dtype = state.mu_product.dtype
        t = estimates.count.astype(dtype)
        psi = cast_hyperparameter(momentum_decay, dtype)
        b1 = jnp.asarray(estimates.b1).astype(dtype)
        mu_now, mu_next = _dozat_momentum(b1, t, psi), _dozat_momentum(b1, t + 1.0, psi)
        product = state.mu_product * mu_now
        weights = ((1.0 - mu_now) / (1.0 - product), mu_next / (1.0 - product * mu_next))
        mu = map_leaves(lambda m, g: _weighted_sum(g, m, weights), estimates.mu, estimates.grad)
        # the second moment is corrected as bias_correction() corrects it
        corrected = bias_correction().update(estimates.replace(b1=None), EmptyState())[0]
        return corrected.replace(mu=mu, b1=estimates.b1), DozatMomentumState(product)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=MOMENTS, emits=MOMENTS)


def _dozat_momentum(b1: jax.Array, t: jax.Array, psi: Any) -> jax.Array:
    r"""Dozat's momentum :math:`\mu_t` at step ``t`` (:func:`dozat_momentum`)."""
    return b1 * (1.0 - 0.5 * jnp.power(0.96, t * psi))


def _weighted_sum(g: jax.Array, m: jax.Array, weights: tuple[jax.Array, jax.Array]) -> jax.Array:
    """``weights[0] * g + weights[1] * m``, in float32 or wider (and the weights' dtype)."""
    grad_weight, moment_weight = weights
    work = compute_dtype(m.dtype, g.dtype, grad_weight.dtype)
    return grad_weight.astype(work) * g.astype(work) + moment_weight.astype(work) * m.astype(work)


def torch_nadam(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    momentum_decay: Any = 4e-3,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    r"""``torch.optim.NAdam`` with its arguments and defaults (Dozat's momentum schedule).

    ``real_view(chain(add_decayed_weights(weight_decay), moments(*betas),
    dozat_momentum(momentum_decay), normalize(eps), scale_by_learning_rate(lr)))``; see
    :func:`dozat_momentum` for the rule. The coupled decay stage is there for every
    ``weight_decay``, as in :func:`torch_adam`, and a complex parameter is optimized as its real
    and imaginary parts. :func:`adamjax.nadam` is optax's NAdam, with a constant :math:`b_1`.

    With ``decoupled_weight_decay=True`` (torch's NAdamW) the decay moves after ``normalize``:
    torch scales the params by :math:`1 - \alpha\lambda` before the step, which is
    :math:`\theta_t = \theta_{t-1} - \alpha(\hat u_t + \lambda\theta_{t-1})`, as in
    :func:`torch_adamw`; the gradient that feeds the moments is then the plain one.

    Args:
        lr: learning rate :math:`\ge 0`, or a schedule ``count -> lr``.
        betas: the pair ``(b1, b2)`` of decay rates, each in ``[0, 1)``.
        eps: added to the root of the second moment, :math:`\ge 0`.
        weight_decay: L2 coefficient :math:`\lambda \ge 0`, coupled unless
            ``decoupled_weight_decay``.
        momentum_decay: :math:`\psi \ge 0` of the momentum schedule.
        decoupled_weight_decay: decay the params by :math:`\alpha\lambda\theta` instead of
            adding :math:`\lambda\theta` to the gradient.

    Returns:
        A :class:`adamjax.GradientTransformation` (its state is the chain's tuple of states).

    Raises:
        TypeError: naming ``betas`` when it is not a pair, ``decoupled_weight_decay`` when it is
            not a bool, or the argument that is not a number.
        ValueError: naming ``lr``, ``betas[0]``, ``betas[1]``, ``eps``, ``weight_decay`` or
            ``momentum_decay`` when out of range.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop.
    """
    lr, b1, b2, eps, weight_decay = torch_arguments(lr, betas, eps, weight_decay)
    momentum_decay = hyperparameter("momentum_decay", momentum_decay)
    decoupled = check_bool("decoupled_weight_decay", decoupled_weight_decay)
    steps = [moments(b1, b2), dozat_momentum(momentum_decay), normalize(eps)]
    return torch_chain(steps, lr, weight_decay, decoupled=decoupled)
