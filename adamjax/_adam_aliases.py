r"""Adam and its direct variants under optax's names: Adam, NAdam, AMSGrad, Adamax.

Each alias is a chain of the building blocks; Adam itself is::

    moments(b1, b2) -> bias_correction() -> normalize(eps, eps_root) -> scale_by_learning_rate(lr)

.. math::
    \theta_t = \theta_{t-1} - \alpha\, \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

and each variant changes one block: NAdam the first moment (Nesterov's look-ahead), AMSGrad the
second (its running maximum), Adamax the second (an infinity norm, with no root). Every numeric
argument may be a Python number, an array, a tracer (build the optimizer inside ``jit`` or
``vmap``) or a per-leaf tree matching the params; ``learning_rate`` may also be a schedule
``count -> lr``.
"""

from __future__ import annotations

from jax.typing import DTypeLike

from adamjax._base import GradientTransformation, PerLeaf, PerLeafOrSchedule
from adamjax._blockwise import BlockwiseInt8
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._moments import infinity_moments, max_second_moment, moments
from adamjax._normalize import normalize
from adamjax._scale import scale_by_learning_rate
from adamjax._validate import hyperparameter

__all__ = ["adam", "adam_stages", "adamax", "adamax_stages", "amsgrad", "nadam"]


def adam_stages(
    b1: PerLeaf,
    b2: PerLeaf,
    eps: PerLeaf,
    eps_root: PerLeaf,
    mu_dtype: DTypeLike | BlockwiseInt8 | None,
    nu_dtype: DTypeLike | BlockwiseInt8 | None,
    nesterov: bool,
) -> tuple[GradientTransformation, GradientTransformation, GradientTransformation]:
    """Adam's stages from gradients to normalized updates, before the learning rate.

    ``(moments(b1, b2, ...), bias_correction(), normalize(eps, eps_root))``. ``b1 = None``,
    which :func:`adamjax.moments` reads as "no first moment" (RMSProp), is refused here.
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    return (
        moments(b1, b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype, nesterov=nesterov),
        bias_correction(),
        normalize(eps, eps_root),
    )


def adamax_stages(
    b1: PerLeaf, b2: PerLeaf, eps: PerLeaf
) -> tuple[GradientTransformation, GradientTransformation, GradientTransformation]:
    """Adamax's stages from gradients to normalized updates, before the learning rate.

    ``(infinity_moments(b1, b2, eps), bias_correction(), normalize(eps=0.0))``: ``eps`` is
    inside the infinity norm, so none is added when normalizing.
    """
    return infinity_moments(b1, b2, eps), bias_correction(), normalize(eps=0.0)


def adam(
    learning_rate: PerLeafOrSchedule = 1e-3,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    *,
    nesterov: bool = False,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""Adam (Kingma & Ba, 2015, Algorithm 1).

    .. math::
        \theta_t = \theta_{t-1}
            - \alpha\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)

    with the moments :math:`m_t, v_t` of :func:`adamjax.moments` and their bias-corrected
    :math:`\hat m_t, \hat v_t` (:func:`adamjax.bias_correction`).
    ``chain(moments(b1, b2), bias_correction(), normalize(eps, eps_root),
    scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to :math:`\sqrt{\hat v}`, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m` (e.g. ``jnp.bfloat16``), or
            :func:`adamjax.blockwise_int8` for 8-bit blocks.
        nesterov: use Nesterov's look-ahead first moment (this is :func:`nadam`).
        nu_dtype: storage dtype of :math:`v`, or :func:`adamjax.blockwise_int8`.

    The arguments up to ``mu_dtype`` are optax's, in optax's order; the rest are keyword-only.

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).

    Example:
        >>> import jax, jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> opt = adamjax.adam(0.1)
        >>> state = opt.init(params)
        >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
        >>> updates, state = opt.update(grads, state, params)
        >>> adamjax.apply_updates(params, updates)["w"]
        Array([ 0.9, -1.9], dtype=float32)

    References:
        Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015,
        https://arxiv.org/abs/1412.6980
    """
    return chain(
        *adam_stages(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov),
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: PerLeafOrSchedule = 1e-3,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    *,
    nesterov: bool = True,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""NAdam: Adam with Nesterov momentum (Dozat, 2016), with a constant :math:`b_1` as in optax.

    .. math::
        \theta_t = \theta_{t-1}
            - \alpha\, \tilde m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)

    Adam's step (:func:`adam`) with its first moment replaced by Nesterov's look-ahead
    :math:`\tilde m_t`, bias-corrected term by term
    (:func:`~adamjax._arraymath.nesterov_look_ahead`).
    ``chain(moments(b1, b2, nesterov=True), bias_correction(), normalize(eps, eps_root),
    scale_by_learning_rate(learning_rate))``. torch's NAdam adds a momentum schedule; see the
    conventions page.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m`, or :func:`adamjax.blockwise_int8` for 8-bit
            blocks.
        nesterov: only ``True`` (``nesterov=False`` is :func:`adam`).
        nu_dtype: storage dtype of :math:`v`, or :func:`adamjax.blockwise_int8`.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop,
        https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).
    """
    if nesterov is not True:
        raise ValueError("nadam(nesterov=False) is Adam: use adamjax.adam (optax allows it)")
    return chain(
        *adam_stages(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov=True),
        scale_by_learning_rate(learning_rate),
    )


def amsgrad(
    learning_rate: PerLeafOrSchedule = 1e-3,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""AMSGrad (Reddi et al., 2018): Adam with a non-decreasing second moment.

    .. math::
        \theta_t = \theta_{t-1}
            - \alpha\, \hat m_t / (\sqrt{\bar v_t + \epsilon_{root}} + \epsilon)

    Adam's step (:func:`adam`) with :math:`\hat v_t` replaced by its running maximum
    :math:`\bar v_t` (:func:`adamjax.max_second_moment`).

    This is the paper's and optax's convention (maximum of the bias-corrected
    :math:`\hat v_t`). torch and Keras take the maximum of the raw :math:`v_t` and correct it
    afterwards: put :func:`adamjax.max_second_moment` before :func:`adamjax.bias_correction`, or use
    ``adamjax.presets.torch_adam(amsgrad=True)``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m`, or :func:`adamjax.blockwise_int8` for 8-bit
            blocks.
        bias_correction_mu: only ``True`` (optax's default) is available.
        bias_correction_nu: only ``True`` (optax's default) is available.
        nu_dtype: storage dtype of :math:`v` and of its running maximum, or
            :func:`adamjax.blockwise_int8`.

    References:
        Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018,
        https://arxiv.org/abs/1904.09237

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).
    """
    if not (bias_correction_mu and bias_correction_nu):
        raise ValueError(
            "amsgrad() always bias-corrects both moments here; optax's bias_correction_mu=False "
            "or bias_correction_nu=False is not available (build the chain without "
            "bias_correction() instead)"
        )
    estimate, correct, divide = adam_stages(
        b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov=False
    )
    return chain(
        estimate,
        correct,
        max_second_moment(nu_max_dtype=nu_dtype),
        divide,
        scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: PerLeafOrSchedule = 2e-3,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
) -> GradientTransformation:
    r"""Adamax: Adam with the infinity norm (Kingma & Ba, 2015, section 7.1).

    .. math::
        \theta_t = \theta_{t-1} - \frac{\alpha}{1 - b_1^t} \frac{m_t}{u_t}

    with :math:`m_t` and the infinity norm :math:`u_t` of :func:`adamjax.infinity_moments`
    (``eps`` inside its max follows torch and optax). ``chain(infinity_moments(b1, b2, eps),
    bias_correction(), normalize(eps=0.0), scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: decay of the infinity norm, in ``[0, 1)``.
        eps: added to :math:`|g_t|` inside the max, ``>= 0``.

    References:
        Kingma & Ba, *Adam: A Method for Stochastic Optimization*, section 7.1,
        https://arxiv.org/abs/1412.6980

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).
    """
    return chain(*adamax_stages(b1, b2, eps), scale_by_learning_rate(learning_rate))
