r"""SGD and the adaptive methods without Adam's first moment, under optax's names.

* :func:`sgd`: the gradient, with optional heavy-ball or Nesterov momentum (:func:`~adamjax.trace`);
* :func:`rmsprop`: the gradient divided by the root of a moving average of :math:`|g|^2`
  (Adam's second moment alone);
* :func:`adagrad`: the gradient divided by the root of a running sum of :math:`|g|^2`;
* :func:`normalized_gradient`: the gradient divided by its own magnitude (sign descent).

.. math::
    \theta_t = \theta_{t-1} - \alpha\, \frac{g_t}{\sqrt{s_t + \epsilon}}

with :math:`s_t` the second-moment statistic of each (``eps_in_sqrt=False`` adds
:math:`\epsilon` to the root instead, torch's rule). Arguments, their order, defaults and
meaning are optax's; every numeric argument may be a Python number, an array, a tracer or a
per-leaf tree matching the params, and ``learning_rate`` also a schedule ``count -> lr``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jax.typing import DTypeLike

from adamjax._base import GradientTransformation, Params, PerLeaf, PerLeafOrSchedule, State
from adamjax._combine import chain
from adamjax._correction import bias_correction as bias_correction_stage
from adamjax._moments import moments, sum_of_squares
from adamjax._normalize import normalize
from adamjax._scale import scale_by_learning_rate, trace
from adamjax._tree import leafwise
from adamjax._validate import hyperparameter, is_concrete

__all__ = ["adagrad", "normalized_gradient", "rmsprop", "sgd"]


def _checked_per_leaf(optimizer: GradientTransformation, **values: Any) -> GradientTransformation:
    """``optimizer`` whose ``init`` checks per-leaf ``values`` against the params by the alias's
    own names (the blocks inside know them by theirs: ``eps`` is ``normalize``'s ``eps_root``)."""

    def init_fn(params: Params) -> State:
        for name, value in values.items():
            leafwise(value, params, name)
        return optimizer.init(params)

    return GradientTransformation(init_fn, optimizer.update)


def sgd(
    learning_rate: PerLeafOrSchedule,
    momentum: PerLeaf | None = None,
    nesterov: bool = False,
    accumulator_dtype: DTypeLike | None = None,
) -> GradientTransformation:
    r"""Stochastic gradient descent, with optional heavy-ball or Nesterov momentum.

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, u_t

    with :math:`u_t` the heavy-ball or Nesterov update of :func:`adamjax.trace`:
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

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).

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


def _second_moment_only_options(initial_scale: PerLeaf, centered: bool) -> None:
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
    learning_rate: PerLeafOrSchedule = 1e-2,
    decay: PerLeaf = 0.9,
    eps: PerLeaf = 1e-8,
    initial_scale: PerLeaf = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: PerLeaf | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""RMSProp (Tieleman & Hinton, 2012): Adam's second moment alone.

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, g_t / \sqrt{v_t + \epsilon}

    with :math:`v_t` the moving average of :math:`|g_t|^2` with decay :math:`\rho` of
    :func:`adamjax.moments`, and ``eps_in_sqrt=True`` (optax's rule, the default), or
    :math:`g_t / (\sqrt{v_t} + \epsilon)` with ``eps_in_sqrt=False`` (torch's rule). With
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

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).

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
    correct = [bias_correction_stage()] if bias_correction else []
    looks = [] if momentum is None else [trace(momentum, nesterov)]
    optimizer = chain(
        moments(None, decay),
        *correct,
        _normalize_eps(eps, eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
        *looks,
    )
    return _checked_per_leaf(optimizer, decay=decay, eps=eps, momentum=momentum)


def _normalize_eps(eps: PerLeaf, eps_in_sqrt: bool) -> GradientTransformation:
    """``normalize`` with ``eps`` under the root (optax's RMSProp and Adagrad) or added to it."""
    return normalize(0.0, eps) if eps_in_sqrt else normalize(eps)


def adagrad(
    learning_rate: PerLeafOrSchedule = 1e-2,
    initial_accumulator_value: PerLeaf = 0.1,
    eps: PerLeaf = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    r"""Adagrad (Duchi, Hazan & Singer, 2011).

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, g_t / \sqrt{s_t + \epsilon}

    with :math:`s_t` the running sum of :math:`|g_t|^2` of :func:`adamjax.sum_of_squares`, and
    ``eps_in_sqrt=True`` (optax's rule and defaults), or :math:`g_t / (\sqrt{s_t} +
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

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).
    """
    eps = hyperparameter("eps", eps)
    optimizer = chain(
        sum_of_squares(initial_accumulator_value),
        _normalize_eps(eps, eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    )
    return _checked_per_leaf(optimizer, eps=eps)


def normalized_gradient(
    learning_rate: PerLeafOrSchedule, eps: PerLeaf = 1e-8
) -> GradientTransformation:
    r"""Normalized gradient descent, coordinate by coordinate (sign descent).

    .. math::
        \theta_t = \theta_{t-1} - \alpha\, g_t / (|g_t| + \epsilon)

    Adam with no averaging (:math:`m_t = g_t, v_t = |g_t|^2`, no bias correction): every
    coordinate moves by :math:`\alpha` downhill, which makes fast progress along shallow
    directions but never settles at a minimum. ``chain(moments(b1=None, b2=0.0),
    normalize(eps), scale_by_learning_rate(learning_rate))``.

    Args:
        learning_rate: the step :math:`\alpha` every coordinate moves by, ``> 0``; a number,
            array, per-leaf tree or a schedule of the step count.
        eps: added to :math:`|g_t|`, ``>= 0``; keeps a zero gradient from dividing by zero.

    Returns:
        A :class:`adamjax.GradientTransformation`: gradients in, updates to add to the params out
        (with :func:`adamjax.apply_updates`).
    """
    return chain(moments(None, 0.0), normalize(eps), scale_by_learning_rate(learning_rate))
