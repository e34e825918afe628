r"""Adam, NAdam and Adamax with decoupled weight decay: AdamW, NAdamW, AdamaxW (optax's names).

Decoupled weight decay (Loshchilov & Hutter, 2019) adds :math:`\lambda\,\theta` to the
normalized update instead of to the gradient, so the decay is not divided by the second
moment::

    ... -> normalize(eps) -> add_decayed_weights(weight_decay, mask) -> scale_by_learning_rate(lr)

.. math::
    \theta_t = \theta_{t-1} - \alpha \left( u_t + \lambda\, \theta_{t-1} \right)

where :math:`u_t` is the normalized update of :func:`adamjax.adam`, :func:`adamjax.nadam` or
:func:`adamjax.adamax`. The decay is multiplied by the learning rate, as in optax, torch and
Keras. Arguments, their order, defaults and meaning are optax's; ``learning_rate`` and
``weight_decay`` may be schedules ``count -> value`` of the steps already taken.
"""

from __future__ import annotations

from jax.typing import DTypeLike

from adamjax._adam_aliases import adam_stages, adamax_stages
from adamjax._base import GradientTransformation, PerLeaf, PerLeafOrSchedule
from adamjax._blockwise import BlockwiseInt8
from adamjax._combine import chain
from adamjax._decay import Mask, add_decayed_weights
from adamjax._scale import scale_by_learning_rate

__all__ = ["adamaxw", "adamw", "nadamw"]


def adamw(
    learning_rate: PerLeafOrSchedule = 1e-3,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    weight_decay: PerLeafOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = False,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    .. math::
        \theta_t = \theta_{t-1} - \alpha \left( \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}}
        + \epsilon) + \lambda\, \theta_{t-1} \right)

    with :math:`\hat m_t, \hat v_t` as in :func:`adamjax.adam`. ``chain(moments,
    bias_correction, normalize, add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate)``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m`, or :func:`adamjax.blockwise_int8` for 8-bit
            blocks.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        nesterov: use Nesterov's look-ahead first moment (this is :func:`adamjax.nadamw`).
        nu_dtype: storage dtype of :math:`v`, or :func:`adamjax.blockwise_int8`.

    The arguments up to ``mask`` are optax's, in optax's order (``weight_decay`` is the seventh:
    ``adamw(1e-3, 0.9, 0.999, 1e-8, 1e-2)`` sets ``eps_root``, as in optax; pass
    ``weight_decay=`` by name).

    References:
        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019,
        https://arxiv.org/abs/1711.05101

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).
    """
    return chain(
        *adam_stages(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def nadamw(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    weight_decay: PerLeafOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = True,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""NAdamW: NAdam with decoupled weight decay (Dozat, 2016; Loshchilov & Hutter, 2019).

    :func:`adamjax.adamw`'s step with the first moment of :func:`adamjax.nadam` (Nesterov's
    look-ahead, bias-corrected term by term), with a constant :math:`b_1` as in optax.
    ``chain(moments(b1, b2, nesterov=True), bias_correction(), normalize(eps, eps_root),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))``, which is
    ``adamw(..., nesterov=True)``.

    torch's ``NAdam(decoupled_weight_decay=True)`` multiplies :math:`b_1` by a warm-up
    schedule :math:`1 - \tfrac12 0.96^{t\psi}` (``momentum_decay`` :math:`\psi`, default
    ``4e-3``), so its steps differ from these; with a ``momentum_decay`` large enough that
    :math:`0.96^{t\psi}` underflows to 0 (``1e9``, say) the two rules agree.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m`, or :func:`adamjax.blockwise_int8` for 8-bit
            blocks.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        nesterov: only ``True`` (``nesterov=False`` is :func:`adamjax.adamw`).
        nu_dtype: storage dtype of :math:`v`, or :func:`adamjax.blockwise_int8`.

    The arguments up to ``mask`` are optax's, in optax's order (pass ``weight_decay=`` by
    name: the fifth positional argument is ``eps_root``).

    Returns:
        A :class:`adamjax.GradientTransformation`.

    Raises:
        ValueError: for ``nesterov=False``, which optax accepts as AdamW.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop,
        https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ;
        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019,
        https://arxiv.org/abs/1711.05101
    """
    if nesterov is not True:
        raise ValueError("nadamw(nesterov=False) is AdamW: use adamjax.adamw (optax allows it)")
    return adamw(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        weight_decay,
        mask,
        nesterov=True,
        nu_dtype=nu_dtype,
    )


def adamaxw(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    weight_decay: PerLeafOrSchedule = 1e-4,
    mask: Mask = None,
) -> GradientTransformation:
    r"""AdamaxW: Adamax (Kingma & Ba, 2015) with decoupled weight decay.

    .. math::
        \theta_t = \theta_{t-1} - \alpha \left( \frac{m_t}{(1 - b_1^t)\, u_t}
            + \lambda\, \theta_{t-1} \right)

    with :math:`m_t, u_t` of :func:`adamjax.infinity_moments` (``eps`` inside the max, as in
    optax and torch). ``chain(infinity_moments(b1, b2, eps), bias_correction(),
    normalize(eps=0.0), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: decay of the infinity norm, in ``[0, 1)``.
        eps: added to :math:`|g_t|` inside the max, ``>= 0``.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.

    Arguments, order, defaults and meaning are optax's.

    Returns:
        A :class:`adamjax.GradientTransformation`.

    References:
        Kingma & Ba, *Adam: A Method for Stochastic Optimization*, section 7.1,
        https://arxiv.org/abs/1412.6980;
        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019,
        https://arxiv.org/abs/1711.05101
    """
    return chain(
        *adamax_stages(b1, b2, eps),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
