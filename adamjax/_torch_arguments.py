r"""Argument checks and the coupled-decay stage shared by the ``torch.optim`` presets.

Every torch preset checks its arguments under torch's names (``lr``, ``betas[0]``, ``eps``,
``weight_decay``) before it builds its chain, and adds torch's coupled L2 term
:math:`g \leftarrow g + wd\,\theta` with the same stage, whose state does not depend on how a zero
``weight_decay`` is written.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adamjax._base import GradientTransformation, Params, Updates, call_update
from adamjax._combine import chain
from adamjax._decay import add_decayed_weights
from adamjax._estimates import expect_gradients
from adamjax._real_view import real_view
from adamjax._scale import scale_by_learning_rate
from adamjax._validate import hyperparameter

__all__ = ["check_bool", "coupled_weight_decay", "split_pair", "torch_arguments", "torch_chain"]


def split_pair(name: str, value: Any, meaning: str) -> tuple[Any, Any]:
    """The two entries of ``value``: a tuple or list of two, or an array of shape ``(2,)``.

    Raises:
        TypeError: naming ``name`` for anything else.
    """
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return value[0], value[1]
    if not isinstance(value, (tuple, list)) and np.shape(value) == (2,):
        return value[0], value[1]
    raise TypeError(f"{name} must be a pair {meaning}, got {value!r}")


def torch_arguments(lr: Any, betas: Any, eps: Any, weight_decay: Any) -> tuple[Any, ...]:
    """``(lr, b1, b2, eps, weight_decay)`` checked under torch's names, before any chain is built.

    Raises:
        TypeError: naming ``betas`` when it is not a pair, or the argument that is not a number.
        ValueError: naming ``lr``, ``betas[0]``, ``betas[1]``, ``eps`` or ``weight_decay``.
    """
    lr = hyperparameter("lr", lr, schedule=True)
    b1, b2 = split_pair("betas", betas, "(beta1, beta2)")
    b1 = hyperparameter("betas[0]", b1, upper=1.0)
    b2 = hyperparameter("betas[1]", b2, upper=1.0)
    eps = hyperparameter("eps", eps)
    weight_decay = hyperparameter("weight_decay", weight_decay)
    return lr, b1, b2, eps, weight_decay


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool; a ``TypeError`` naming ``name`` for anything else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def coupled_weight_decay(weight_decay: Any) -> GradientTransformation:
    r"""``add_decayed_weights(weight_decay)`` before the moments: :math:`g + wd\,\theta`.

    Kept in the chain for every value, so that the state's structure does not depend on whether
    ``weight_decay`` is a Python ``0`` or an array. A Python ``0`` leaves the gradient as it is
    and, unlike other values, does not need the params.

    Args:
        weight_decay: the coupled L2 coefficient, checked already.

    Returns:
        The decay stage, taking and emitting gradients.
    """
    decay = add_decayed_weights(weight_decay)
    if not _is_zero(weight_decay):
        return decay

    def update_fn(
        updates: Updates, state: Any, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, Any]:
        if params is None:
            expect_gradients(updates, "add_decayed_weights")
            return updates, state
        return call_update(decay, updates, state, params, extra_args)

    return GradientTransformation(decay.init, update_fn)


def torch_chain(
    steps: list[GradientTransformation], lr: Any, weight_decay: Any, *, decoupled: bool
) -> GradientTransformation:
    r"""torch's order around ``steps`` (the moments and what turns them into a step): coupled
    L2, :math:`g + wd\,\theta`, before them, or with ``decoupled`` the decay :math:`wd\,\theta`
    after them; then :math:`-lr`; on real views of complex params.

    Args:
        steps: the stages from the moment estimator to the normalized step.
        lr: the learning rate or schedule, checked already.
        weight_decay: the decay coefficient, checked already.
        decoupled: whether the decay comes after ``steps`` (AdamW's rule) instead of before.

    Returns:
        ``real_view(chain([coupled], *steps, [decay], scale_by_learning_rate(lr)))``.
    """
    coupled = [] if decoupled else [coupled_weight_decay(weight_decay)]
    after = [add_decayed_weights(weight_decay)] if decoupled else []
    return real_view(chain(*coupled, *steps, *after, scale_by_learning_rate(lr)))


def _is_zero(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0
