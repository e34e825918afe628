r"""Moment estimates: what flows between a moment estimator and :func:`adamjax.normalize`.

A chain of the Adam family passes two kinds of value. Outside the moments stages it passes
gradient trees (updates); from a moment estimator (:func:`adamjax.moments`, ...) to
:func:`adamjax.normalize` it passes :class:`Moments`: the estimates together with what the
stages after the estimator need to use them (decay rates, step count, the gradient), so that no
hyperparameter is given twice::

    moments(b1, b2) -> [max_second_moment()] -> bias_correction() -> normalize(eps) -> updates

Each transform checks what it receives: a moments stage calls :func:`expect_moments`, a gradient
transform :func:`expect_gradients` (or, if its state holds a tree like the params,
:func:`expect_gradients_like`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax
import jax.numpy as jnp

from adamjax._arraymath import nesterov_look_ahead
from adamjax._base import PerLeaf, Updates
from adamjax._tree import check_gradient_dtypes, check_matching, leafwise, map_leaves

__all__ = ["MomentKind", "Moments", "expect_gradients", "expect_gradients_like", "expect_moments"]

MomentKind = Literal["mean_square", "sum_of_squares", "infinity_norm"]
"""Which statistic of the gradient a second moment holds."""


@dataclasses.dataclass(frozen=True)
class Moments:
    """Moment estimates on their way from a moment estimator to :func:`adamjax.normalize`.

    This is what :func:`adamjax.moments` (and the other estimators) pass downstream in place of
    updates. It is a pytree, so it can cross ``jit`` and ``vmap`` boundaries.

    Attributes:
        mu: first-moment estimate per leaf (the gradient itself when there is no first moment).
        nu: second-moment estimate per leaf: a moving average of ``|g|^2`` (``mean_square``),
            a running sum of ``|g|^2`` (``sum_of_squares``) or an infinity norm
            (``infinity_norm``).
        grad: the gradient of this step; the updates take its dtype.
        b1: decay rate of ``mu`` (number, array or per-leaf tree), ``None`` if ``mu`` is the
            gradient.
        b2: decay rate of ``nu``, ``None`` for a running sum.
        count: ``t``, the number of updates including this one (int32, saturating).
        kind: which second moment ``nu`` holds (static).
        corrected: whether :func:`adamjax.bias_correction` has been applied (static).
        nesterov: whether ``mu`` still has to be turned into Nesterov's look-ahead estimate
            (:func:`~adamjax._arraymath.nesterov_look_ahead`; static).
    """

    mu: Updates
    nu: Updates
    grad: Updates
    b1: PerLeaf | None
    b2: PerLeaf | None
    count: jax.Array
    kind: MomentKind = "mean_square"
    corrected: bool = False
    nesterov: bool = False

    def first_moment(self) -> Updates:
        """The first-moment estimate to normalize (with Nesterov's look-ahead if pending)."""
        if not self.nesterov:
            return self.mu
        b1 = leafwise(self.b1, self.mu, "b1")
        return map_leaves(nesterov_look_ahead, self.mu, self.grad, b1)

    @property
    def takes_root(self) -> bool:
        """Whether ``nu`` is a statistic of ``|g|^2`` whose square root normalizes (not an
        infinity norm)."""
        return self.kind != "infinity_norm"

    @property
    def is_moving_average(self) -> bool:
        """Whether ``nu`` is a moving average of ``|g|^2`` (bias-correctable, bounded by its
        running maximum), not a running sum or an infinity norm."""
        return self.kind == "mean_square"

    def replace(self, **changes: Any) -> Moments:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    Moments,
    data_fields=["mu", "nu", "grad", "b1", "b2", "count"],
    meta_fields=["kind", "corrected", "nesterov"],
)


def expect_moments(value: Any, consumer: str) -> Moments:
    """Raise ``TypeError`` unless ``value`` is :class:`Moments` (for a moments consumer)."""
    if not isinstance(value, Moments):
        raise TypeError(
            f"{consumer}() takes moment estimates but received a gradient tree: a moment "
            f"estimator such as moments() must come before {consumer}() in the chain"
        )
    count = value.count
    if not (hasattr(count, "dtype") and jnp.issubdtype(count.dtype, jnp.integer)):
        raise TypeError(
            f"{consumer}() received moment estimates whose step count is not an integer: a "
            "transform that takes gradients (an optax transform, say) was applied to them. "
            "Place it before the moment estimator or after normalize(); adamjax.chain() checks "
            "the order when it is built."
        )
    return value


def expect_gradients(value: Any, consumer: str) -> None:
    """Raise ``TypeError`` if ``value`` is :class:`Moments` (for a gradient consumer)."""
    if isinstance(value, Moments):
        raise TypeError(
            f"{consumer}() takes a gradient tree but received moment estimates: normalize() "
            f"must come between the moment estimator and {consumer}() in the chain"
        )


def expect_gradients_like(
    value: Any, state_tree: Any, consumer: str, state_name: str, *, check_complex: bool = True
) -> None:
    """Check that ``value`` is a gradient tree that can update ``state_tree``, a tree of the
    transform's state with the params' structure and shapes (``state.mu``, say).

    Raises:
        TypeError: for moment estimates (:func:`expect_gradients`); naming the path, for a
            gradient that is not floating-point, or complex where ``state_tree`` is real (with
            ``check_complex``).
        ValueError: naming the path where ``value`` does not match the params.
    """
    expect_gradients(value, consumer)
    check_matching(state_tree, value, reference_name="params", other_name="grads")
    check_gradient_dtypes(state_tree, value, reference_name=state_name, check_complex=check_complex)
