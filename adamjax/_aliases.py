r"""The Adam family and its neighbours, each a short chain of building blocks.

Every alias returns :func:`adamjax.chain` of public transforms, so each step of its rule can be
used, replaced or inspected on its own. Every numeric argument may be a Python number, an array,
a tracer (build the optimizer inside ``jit``/``vmap``) or a per-leaf tree matching the params;
``learning_rate`` may also be a schedule ``count -> lr``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adamjax import _correction as correction
from adamjax._base import GradientTransformation, Params, ScalarOrSchedule
from adamjax._combine import chain
from adamjax._decay import Mask, add_decayed_weights
from adamjax._moments import infinity_moments, max_second_moment, moments, sum_of_squares
from adamjax._normalize import normalize
from adamjax._scale import scale_by_learning_rate, trace
from adamjax._tree import leafwise
from adamjax._validate import hyperparameter, is_concrete

__all__ = [
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "nadam",
    "normalized_gradient",
    "rmsprop",
    "sgd",
]


def _checked_per_leaf(optimizer: GradientTransformation, **values: Any) -> GradientTransformation:
    """``optimizer`` whose ``init`` checks per-leaf ``values`` against the params by the alias's
    own names (the blocks inside know them by theirs: ``eps`` is ``normalize``'s ``eps_root``)."""

    def init_fn(params: Params) -> Any:
        for name, value in values.items():
            leafwise(value, params, name)
        return optimizer.init(params)

    return GradientTransformation(init_fn, optimizer.update)


def _first_moment_decay(b1: Any) -> Any:
    """``b1`` for an alias that keeps a first moment: ``None`` is refused, not read as RMSProp."""
    return hyperparameter("b1", b1, upper=1.0)


def adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adam (Kingma & Ba, 2015, Algorithm 1).

    .. math::
        m_t &= b_1 m_{t-1} + (1 - b_1) g_t \\
        v_t &= b_2 v_{t-1} + (1 - b_2) |g_t|^2 \\
        \hat m_t &= m_t / (1 - b_1^t), \quad \hat v_t = v_t / (1 - b_2^t) \\
        \theta_t &= \theta_{t-1}
            - \alpha\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)

    ``chain(moments(b1, b2), bias_correction(), normalize(eps, eps_root),
    scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to :math:`\sqrt{\hat v}`, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m` (e.g. ``jnp.bfloat16``).
        nesterov: use Nesterov's look-ahead first moment (this is :func:`nadam`).
        nu_dtype: storage dtype of :math:`v`.

    The arguments up to ``mu_dtype`` are optax's, in optax's order; the rest are keyword-only.

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
        moments(
            _first_moment_decay(b1), b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype, nesterov=nesterov
        ),
        correction.bias_correction(),
        normalize(eps, eps_root),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    .. math::
        \theta_t = \theta_{t-1} - \alpha \left( \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}}
        + \epsilon) + \lambda\, \theta_{t-1} \right)

    with :math:`\hat m_t, \hat v_t` as in :func:`adam`. The decay is multiplied by the learning
    rate, as in optax, torch and Keras. ``chain(moments, bias_correction, normalize,
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate)``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m`.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        nesterov: use Nesterov's look-ahead first moment (NAdamW).
        nu_dtype: storage dtype of :math:`v`.

    The arguments up to ``mask`` are optax's, in optax's order (``weight_decay`` is the seventh:
    ``adamw(1e-3, 0.9, 0.999, 1e-8, 1e-2)`` sets ``eps_root``, as in optax; pass
    ``weight_decay=`` by name).

    References:
        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019,
        https://arxiv.org/abs/1711.05101
    """
    return chain(
        moments(
            _first_moment_decay(b1), b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype, nesterov=nesterov
        ),
        correction.bias_correction(),
        normalize(eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def amsgrad(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AMSGrad (Reddi et al., 2018): Adam with a non-decreasing second moment.

    .. math::
        \bar v_t = \max(\bar v_{t-1}, \hat v_t), \qquad
        \theta_t = \theta_{t-1} - \alpha\, \hat m_t / (\sqrt{\bar v_t + \epsilon_{root}} +
        \epsilon)

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
        mu_dtype: storage dtype of :math:`m`.
        bias_correction_mu: only ``True`` (optax's default) is available.
        bias_correction_nu: only ``True`` (optax's default) is available.
        nu_dtype: storage dtype of :math:`v` and of its running maximum.

    References:
        Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018,
        https://arxiv.org/abs/1904.09237
    """
    if not (bias_correction_mu and bias_correction_nu):
        raise ValueError(
            "amsgrad() always bias-corrects both moments here; optax's bias_correction_mu=False "
            "or bias_correction_nu=False is not available (build the chain without "
            "bias_correction() instead)"
        )
    return chain(
        moments(_first_moment_decay(b1), b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        correction.bias_correction(),
        max_second_moment(nu_max_dtype=nu_dtype),
        normalize(eps, eps_root),
        scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule = 2e-3,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
) -> GradientTransformation:
    r"""Adamax: Adam with the infinity norm (Kingma & Ba, 2015, section 7.1).

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) g_t, \quad u_t = \max(b_2 u_{t-1}, |g_t| + \epsilon),
        \quad \theta_t = \theta_{t-1} - \frac{\alpha}{1 - b_1^t} \frac{m_t}{u_t}

    ``eps`` inside the max follows torch and optax. ``chain(infinity_moments(b1, b2, eps),
    bias_correction(), normalize(eps=0.0), scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: decay of the infinity norm, in ``[0, 1)``.
        eps: added to :math:`|g_t|` inside the max, ``>= 0``.

    References:
        Kingma & Ba, *Adam: A Method for Stochastic Optimization*, section 7.1,
        https://arxiv.org/abs/1412.6980
    """
    return chain(
        infinity_moments(b1, b2, eps),
        correction.bias_correction(),
        normalize(eps=0.0),
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""NAdam: Adam with Nesterov momentum (Dozat, 2016), with a constant :math:`b_1` as in optax.

    .. math::
        \hat m_t = \frac{b_1 m_t}{1 - b_1^{t+1}} + \frac{(1 - b_1) g_t}{1 - b_1^t}, \qquad
        \theta_t = \theta_{t-1} - \alpha\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} +
        \epsilon)

    ``chain(moments(b1, b2, nesterov=True), bias_correction(), normalize(eps, eps_root),
    scale_by_learning_rate(learning_rate))``. torch's NAdam adds a momentum schedule; see the
    conventions page.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        mu_dtype: storage dtype of :math:`m`.
        nesterov: only ``True`` (``nesterov=False`` is :func:`adam`).
        nu_dtype: storage dtype of :math:`v`.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop,
        https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ
    """
    if nesterov is not True:
        raise ValueError("nadam(nesterov=False) is Adam: use adamjax.adam (optax allows it)")
    return chain(
        moments(_first_moment_decay(b1), b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype, nesterov=True),
        correction.bias_correction(),
        normalize(eps, eps_root),
        scale_by_learning_rate(learning_rate),
    )


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: Any = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Stochastic gradient descent, with optional heavy-ball or Nesterov momentum.

    .. math::
        b_t = g_t + \mu\, b_{t-1}, \qquad \theta_t = \theta_{t-1} - \alpha \begin{cases}
        g_t + \mu\, b_t & \text{Nesterov} \\ b_t & \text{otherwise} \end{cases}

    ``chain(trace(momentum, nesterov, accumulator_dtype), scale_by_learning_rate(lr))``; with
    ``momentum=None`` no buffer is kept, :math:`\theta \leftarrow \theta - \alpha g`, and the
    chain is ``chain(scale_by_learning_rate(lr))``. Any number, ``0.0`` included, keeps a
    buffer, so the state's structure does not depend on the momentum's value. Arguments,
    order and defaults are optax's.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        momentum: :math:`\mu \ge 0`, or ``None`` for plain SGD.
        nesterov: use Nesterov's look-ahead (needs a momentum).
        accumulator_dtype: storage dtype of the momentum buffer (default: the param's).

    Raises:
        ValueError: if ``nesterov`` is set without a momentum (optax ignores ``nesterov`` there;
            adamjax refuses the call rather than run plain SGD unasked).

    References:
        Sutskever et al., *On the importance of initialization and momentum in deep learning*,
        ICML 2013.
    """
    momentum = hyperparameter("momentum", momentum, optional=True)
    if momentum is None:
        if nesterov:
            raise ValueError(
                "sgd(nesterov=True) needs a momentum: with momentum=None there is no buffer to "
                "look ahead with (optax ignores nesterov there)"
            )
        return chain(scale_by_learning_rate(learning_rate))
    optimizer = chain(
        trace(momentum, nesterov, accumulator_dtype), scale_by_learning_rate(learning_rate)
    )
    return _checked_per_leaf(optimizer, momentum=momentum)


def _second_moment_only_options(initial_scale: Any, centered: bool) -> None:
    """Refuse optax's RMSProp options that adamjax's blocks do not provide, saying so."""
    if centered:
        raise ValueError(
            "rmsprop(centered=True) is not available in adamjax: its second moment is not "
            "centred by a running mean of the gradient (optax's centered=True is)"
        )
    if not (is_concrete(initial_scale) and np.all(np.asarray(initial_scale) == 0)):
        raise ValueError(
            f"rmsprop(initial_scale={initial_scale!r}) is not available in adamjax: its second "
            "moment starts at zero (optax's initial_scale=0.0)"
        )


def rmsprop(
    learning_rate: ScalarOrSchedule = 1e-2,
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: Any = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: Any = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""RMSProp (Tieleman & Hinton, 2012): Adam's second moment alone.

    .. math::
        v_t = \rho\, v_{t-1} + (1 - \rho) |g_t|^2, \qquad
        \theta_t = \theta_{t-1} - \alpha\, g_t / \sqrt{v_t + \epsilon}

    with ``eps_in_sqrt=True`` (optax's rule, the default), or :math:`g_t / (\sqrt{v_t} +
    \epsilon)` with ``eps_in_sqrt=False`` (torch's rule). With
    ``bias_correction=True``, :math:`v_t` is divided by :math:`1 - \rho^t` first; with a
    ``momentum``, a :func:`trace` follows the learning rate, as in optax.
    ``chain(moments(b1=None, b2=decay), [bias_correction()], normalize(...),
    scale_by_learning_rate(learning_rate), [trace(momentum, nesterov)])``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        decay: :math:`\rho`, in ``[0, 1)``.
        eps: :math:`\epsilon \ge 0`.
        initial_scale: the start of :math:`v`; only ``0.0`` is available.
        eps_in_sqrt: add ``eps`` under the root (optax) or to it (torch).
        centered: only ``False`` is available.
        momentum: momentum of a :func:`trace` after the learning rate, or ``None``.
        nesterov: Nesterov's look-ahead for that trace.
        bias_correction: divide :math:`v_t` by :math:`1 - \rho^t`.

    Arguments, order, defaults and meaning are optax's (the learning rate has a default here).

    Raises:
        ValueError: for ``centered=True`` or a non-zero ``initial_scale``, saying how optax
            differs; for ``nesterov`` without a momentum.
    """
    decay = hyperparameter("decay", decay, upper=1.0)
    eps = hyperparameter("eps", eps)
    initial_scale = hyperparameter("initial_scale", initial_scale)
    momentum = hyperparameter("momentum", momentum, optional=True)
    _second_moment_only_options(initial_scale, centered)
    if nesterov and momentum is None:
        raise ValueError("rmsprop(nesterov=True) needs a momentum (optax ignores nesterov there)")
    correct = [correction.bias_correction()] if bias_correction else []
    looks = [] if momentum is None else [trace(momentum, nesterov)]
    optimizer = chain(
        moments(None, decay),
        *correct,
        _normalize_eps(eps, eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
        *looks,
    )
    return _checked_per_leaf(optimizer, decay=decay, eps=eps, momentum=momentum)


def _normalize_eps(eps: Any, eps_in_sqrt: bool) -> GradientTransformation:
    """``normalize`` with ``eps`` under the root (optax's RMSProp and Adagrad) or added to it."""
    return normalize(0.0, eps) if eps_in_sqrt else normalize(eps)


def adagrad(
    learning_rate: ScalarOrSchedule = 1e-2,
    initial_accumulator_value: Any = 0.1,
    eps: Any = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    r"""Adagrad (Duchi, Hazan & Singer, 2011).

    .. math::
        s_t = s_{t-1} + |g_t|^2, \qquad
        \theta_t = \theta_{t-1} - \alpha\, g_t / \sqrt{s_t + \epsilon}

    with ``eps_in_sqrt=True`` (optax's rule and defaults), or :math:`g_t / (\sqrt{s_t} +
    \epsilon)` with ``eps_in_sqrt=False``: torch's ``Adagrad`` is
    ``adagrad(lr, initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False)``.
    ``chain(sum_of_squares(initial_accumulator_value), normalize(...),
    scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        initial_accumulator_value: :math:`s_0 \ge 0`.
        eps: :math:`\epsilon \ge 0`.
        eps_in_sqrt: add ``eps`` under the root (optax) or to it (torch).

    References:
        Duchi, Hazan & Singer, *Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization*, JMLR 2011.
    """
    eps = hyperparameter("eps", eps)
    optimizer = chain(
        sum_of_squares(initial_accumulator_value),
        _normalize_eps(eps, eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    )
    return _checked_per_leaf(optimizer, eps=eps)


def normalized_gradient(learning_rate: ScalarOrSchedule, eps: Any = 1e-8) -> GradientTransformation:
    r"""Normalized gradient descent, coordinate by coordinate (sign descent).

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, g_t / (|g_t| + \epsilon)

    Adam with no averaging (:math:`m_t = g_t, v_t = |g_t|^2`, no bias correction): every
    coordinate moves by :math:`\alpha` downhill, which makes fast progress along shallow
    directions but never settles at a minimum. ``chain(moments(b1=None, b2=0.0),
    normalize(eps), scale_by_learning_rate(learning_rate))``.
    """
    return chain(moments(None, 0.0), normalize(eps), scale_by_learning_rate(learning_rate))
