r"""Lazy Adam for embedding tables: only rows with a gradient move.

The gradient of an embedding lookup is zero on every row that the batch did not look up.
Dense Adam still decays those rows' moments and moves their params with the momentum left
over from earlier steps. Lazy Adam (torch's ``SparseAdam``, TF Addons' ``LazyAdam``) leaves
them alone: a row's params, first and second moments change only on steps where its gradient
is nonzero.

A *row* is a slice along a leaf's first axis (an element of a vector, the whole of a scalar).
:func:`lazy_adam` is built from blocks: :func:`adamjax.moments`, the step with the bias
correction folded into the learning rate that Keras' Adam takes too
(:func:`~adamjax._folded_correction.folded_correction_step`), and
:func:`freeze_rows_without_gradient` around them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from adamjax._base import (
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
)
from adamjax._blockwise import BlockwiseInt8
from adamjax._blockwise_read import quantized_paths
from adamjax._decay import Mask, resolve_mask
from adamjax._estimates import expect_gradients
from adamjax._folded_correction import folded_correction_step
from adamjax._moments import MomentsState, moments
from adamjax._tree import check_matching, leafwise, map_leaves
from adamjax._validate import hyperparameter, is_function

__all__ = ["LazyAdamState", "freeze_rows_without_gradient", "lazy_adam", "nonzero_rows"]


class LazyAdamState(NamedTuple):
    """State of :func:`lazy_adam`."""

    # shape (), int32: steps taken so far (every step, as in torch), saturating
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # first moment; a row changes only on steps where its gradient is nonzero
    nu: Updates  # second moment (real dtype); same rule


def nonzero_rows(grad: jax.Array) -> jax.Array:
    """Which rows of ``grad`` hold a nonzero entry, shaped to broadcast against ``grad``.

    For a leaf of shape ``(n, d1, d2)`` the result has shape ``(n, 1, 1)``; for a scalar, ``()``.

    Args:
        grad: one leaf of the gradient.

    Returns:
        A bool array.
    """
    nonzero = grad != jnp.zeros([], grad.dtype)
    if nonzero.ndim <= 1:
        return nonzero
    return jnp.any(nonzero, axis=tuple(range(1, nonzero.ndim)), keepdims=True)


def _moving_rows(grads: Updates, mask: Mask, params: Params | None) -> Any:
    """Per leaf, the rows that move this step: ``True`` for a leaf that is not lazy, else
    :func:`nonzero_rows` (or'ed with a traced ``False`` in the mask).

    Raises:
        ValueError: for a callable ``mask`` without ``params``, or a mask that does not match.
    """
    if mask is None:
        lazy = leafwise(True, grads, "mask")
    elif is_function(mask):
        if params is None:
            raise ValueError(
                "lazy_adam() with a callable mask needs the params: call "
                "update(grads, state, params)"
            )
        lazy = resolve_mask(mask, params)
    else:
        lazy = resolve_mask(mask, grads)

    def rows(g: jax.Array, is_lazy: Any) -> Any:
        if is_lazy is False:
            return True
        moving = nonzero_rows(g)
        return moving if is_lazy is True else jnp.logical_or(moving, jnp.logical_not(is_lazy))

    return map_leaves(rows, grads, lazy)


def _keep_rows(new: jax.Array, old: jax.Array, rows: Any) -> jax.Array:
    """``new`` on the rows that move, ``old`` elsewhere."""
    return new if rows is True else jnp.where(rows, new, old)


def freeze_rows_without_gradient(
    estimator: GradientTransformation, step: GradientTransformation, *, mask: Mask = None
) -> GradientTransformation:
    r"""``chain(estimator, step)`` in which rows whose gradient is zero do not move.

    For the rows :math:`R_t` of a leaf where :math:`g_t` has a nonzero entry, the update and the
    estimator's moments are those of the chain; every other row gets a zero update and keeps
    its moments exactly. The step count advances on every step.

    Args:
        estimator: a moment estimator whose state is a :class:`adamjax.MomentsState`
            (:func:`adamjax.moments`).
        step: a stateless transform turning its :class:`adamjax.Moments` into updates.
        mask: which leaves are lazy: a bool tree with the params' structure or a callable
            ``params -> tree``; ``None`` makes every leaf lazy.

    Returns:
        A transform whose state is a :class:`LazyAdamState`.
    """

    def init_fn(params: Params) -> LazyAdamState:
        if mask is not None:
            resolve_mask(mask, params)
        inner = estimator.init(params)
        found = quantized_paths(inner.mu, "state.mu") + quantized_paths(inner.nu, "state.nu")
        if found:
            raise TypeError(
                f"{found[0]} is stored in 8-bit blocks (blockwise_int8), which "
                "freeze_rows_without_gradient cannot keep row by row: store the moments as "
                "arrays (a dtype such as jnp.bfloat16)"
            )
        return LazyAdamState(count=inner.count, mu=inner.mu, nu=inner.nu)

    def update_fn(
        grads: Updates, state: LazyAdamState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, LazyAdamState]:
        expect_gradients(grads, "lazy_adam")
        check_matching(state.nu, grads, reference_name="params", other_name="grads")
        moving = _moving_rows(grads, mask, params)
        inner = MomentsState(count=state.count, mu=state.mu, nu=state.nu)
        estimates, new = estimator.update(grads, inner, params)
        updates, _ = step.update(estimates, EmptyState(), params)
        updates = map_leaves(lambda u, r: _keep_rows(u, jnp.zeros_like(u), r), updates, moving)
        mu = map_leaves(_keep_rows, new.mu, state.mu, moving)
        nu = map_leaves(_keep_rows, new.nu, state.nu, moving)
        return updates, LazyAdamState(count=new.count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def _refuse_blocks(**storage: Any) -> None:
    """Refuse a :func:`adamjax.blockwise_int8` format among the storage arguments.

    Raises:
        TypeError: naming the argument that is one.
    """
    for name, value in storage.items():
        if isinstance(value, BlockwiseInt8):
            raise TypeError(
                f"lazy_adam() takes a floating-point dtype for {name}, not {value!r}: 8-bit "
                "blocks share one scale across rows, so rows without a gradient could not keep "
                "their moments; use adamjax.adam with it, or a dtype such as jnp.bfloat16"
            )


def lazy_adam(
    learning_rate: PerLeafOrSchedule = 1e-3,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    *,
    mask: Mask = None,
    mu_dtype: DTypeLike | None = None,
    nu_dtype: DTypeLike | None = None,
) -> GradientTransformation:
    r"""Adam that updates only the rows whose gradient is nonzero (torch's ``SparseAdam``).

    With :math:`R_t` the rows of a leaf where :math:`g_t` has a nonzero entry, for
    :math:`r \in R_t`

    .. math::
        m_{t,r} &= b_1 m_{t-1,r} + (1 - b_1) g_{t,r}, \qquad
        v_{t,r} = b_2 v_{t-1,r} + (1 - b_2) |g_{t,r}|^2 \\
        \theta_{t,r} &= \theta_{t-1,r} - \alpha \frac{\sqrt{1 - b_2^t}}{1 - b_1^t}
            \frac{m_{t,r}}{\sqrt{v_{t,r}} + \epsilon}

    and every other row keeps :math:`m, v, \theta` exactly. :math:`t` counts every step, as in
    torch and TF (not the row's own updates), and the bias correction is folded into the step
    size, so :math:`\epsilon` is not corrected: the rule of ``torch.optim.SparseAdam`` and
    ``tfa.optimizers.LazyAdam``. It is :func:`freeze_rows_without_gradient` around
    :func:`adamjax.moments` and the folded step Keras' Adam takes
    (:func:`adamjax.presets.keras_adam`).

    torch treats every row present in a sparse gradient as updated, even one whose values are
    zero; here a row counts when one of its entries is nonzero. The moments are dense arrays
    (JAX gradients of lookups are dense), so memory and compute are those of dense Adam.

    Args:
        learning_rate: :math:`\alpha`, a number, array, per-leaf tree, or a schedule of the
            steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to :math:`\sqrt{v}`, ``>= 0``.
        mask: which leaves are lazy: a bool tree with the params' structure or a callable
            ``params -> tree``; ``None`` makes every leaf lazy. A leaf masked ``False`` updates
            every row on every step with the same rule.
        mu_dtype: storage dtype of :math:`m` (default: the param's dtype).
        nu_dtype: storage dtype of :math:`v` (default: the param's real dtype; float32 for
            float16 params, as in :func:`adamjax.moments`).

    Returns:
        A transform whose state is :class:`LazyAdamState`.

    Raises:
        ValueError: naming ``learning_rate``, ``b1``, ``b2`` or ``eps`` when out of range; at
            ``init`` or ``update``, for a mask or gradients that do not match the params (naming
            the path), or a callable mask without the params.
        TypeError: naming the argument that is not a number, or ``mu_dtype`` or ``nu_dtype``
            when it is not a floating-point dtype (:func:`adamjax.blockwise_int8` included: a
            block's scale is shared by the rows it spans, so a row could not keep its moments).

    Example:
        >>> import jax, jax.numpy as jnp, adamjax
        >>> table = jnp.ones((4, 2))
        >>> opt = adamjax.lazy_adam(0.1)
        >>> state = opt.init(table)
        >>> grad = jax.grad(lambda t: jnp.sum(t[jnp.array([1, 3])]))(table)
        >>> updates, state = opt.update(grad, state)
        >>> updates[:, 0].round(6)  # rows 0 and 2 were not looked up
        Array([ 0. , -0.1,  0. , -0.1], dtype=float32)

    References:
        PyTorch, ``torch.optim.SparseAdam``;
        TensorFlow Addons, ``tfa.optimizers.LazyAdam``.
    """
    learning_rate = hyperparameter("learning_rate", learning_rate, schedule=True)
    b1 = hyperparameter("b1", b1, upper=1.0)
    b2 = hyperparameter("b2", b2, upper=1.0)
    eps = hyperparameter("eps", eps)
    _refuse_blocks(mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    return freeze_rows_without_gradient(
        moments(b1, b2, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        folded_correction_step(learning_rate, eps),
        mask=mask,
    )
