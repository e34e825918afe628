r"""Lazy Adam for embedding tables: only rows with a gradient move.

The gradient of an embedding lookup is zero on every row that the batch did not look up.
Dense Adam still decays those rows' moments and moves their params with the momentum left
over from earlier steps. Lazy Adam (torch's ``SparseAdam``, TF Addons' ``LazyAdam``) leaves
them alone: a row's params, first and second moments change only on steps where its gradient
is nonzero.

A *row* is a slice along a leaf's first axis (an element of a vector, the whole of a scalar).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax._arraymath import moving_average, moving_average_square
from adamjax._base import GradientTransformation, Params, ScalarOrSchedule, Updates
from adamjax._correction import one_minus_power
from adamjax._decay import Mask, resolve_mask
from adamjax._moments import expect_gradients
from adamjax._placement import zero_count
from adamjax._scale import evaluate_schedule
from adamjax._tree import (
    cast_hyperparameter,
    check_float_leaves,
    check_gradient_dtypes,
    check_matching,
    compute_dtype,
    leafwise,
    map_leaves,
    real_dtype,
    saturating_increment,
    second_moment_dtype,
)
from adamjax._validate import hyperparameter, is_function

__all__ = ["LazyAdamState", "lazy_adam", "nonzero_rows"]


class LazyAdamState(NamedTuple):
    """State of :func:`lazy_adam`."""

    # shape (), int32: steps taken so far (every step, as in torch), saturating
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # first moment; a row changes only on steps where its gradient is nonzero
    nu: Updates  # second moment (real dtype); same rule


def nonzero_rows(grad: jax.Array) -> jax.Array:
    """Which rows of ``grad`` hold a nonzero entry, shaped to broadcast against ``grad``.

    For a leaf of shape ``(n, d1, d2)`` the result has shape ``(n, 1, 1)``; for a scalar, ``()``.
    """
    nonzero = grad != jnp.zeros([], grad.dtype)
    if nonzero.ndim <= 1:
        return nonzero
    return jnp.any(nonzero, axis=tuple(range(1, nonzero.ndim)), keepdims=True)


def lazy_adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    mask: Mask = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
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
    ``tfa.optimizers.LazyAdam``.

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

    def init_fn(params: Params) -> LazyAdamState:
        check_float_leaves(params)
        if mask is not None:
            resolve_mask(mask, params)

        def zeros(p: jax.Array, dtype: Any, real: bool) -> jax.Array:
            own = second_moment_dtype(p.dtype) if real else p.dtype
            return jnp.zeros_like(p, dtype=dtype or own)  # takes p's sharding

        return LazyAdamState(
            count=zero_count(params),
            mu=map_leaves(lambda p: zeros(p, mu_dtype, False), params),
            nu=map_leaves(lambda p: zeros(p, nu_dtype, True), params),
        )

    def update_fn(
        updates: Updates, state: LazyAdamState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, LazyAdamState]:
        expect_gradients(updates, "lazy_adam")
        check_matching(state.nu, updates, reference_name="params", other_name="grads")
        check_gradient_dtypes(state.mu, updates, reference_name="state.mu")
        if mask is None:
            lazy = leafwise(True, updates, "mask")
        elif is_function(mask):
            if params is None:
                raise ValueError(
                    "lazy_adam() with a callable mask needs the params: call "
                    "update(grads, state, params)"
                )
            lazy = resolve_mask(mask, params)
        else:
            lazy = resolve_mask(mask, updates)
        count = saturating_increment(state.count)
        rate = (
            evaluate_schedule(learning_rate, state.count)
            if is_function(learning_rate)
            else learning_rate
        )
        lr = leafwise(rate, updates, "learning_rate")

        def step(
            g: jax.Array,
            m: jax.Array,
            v: jax.Array,
            is_lazy: Any,
            lr: Any,
            b1: Any,
            b2: Any,
            eps: Any,
        ) -> tuple[jax.Array, jax.Array, jax.Array]:
            m_new = moving_average(g, m, b1)
            v_new = moving_average_square(g, v, b2)
            dtype = compute_dtype(g.dtype, m.dtype, v.dtype)
            real = real_dtype(dtype)
            size = (
                cast_hyperparameter(lr, real)
                * jnp.sqrt(one_minus_power(b2, count, real))
                / one_minus_power(b1, count, real)
            )
            root = jnp.sqrt(v_new.astype(real)) + cast_hyperparameter(eps, real)
            u = (-(m_new.astype(dtype) / root.astype(dtype)) * size.astype(dtype)).astype(g.dtype)
            if is_lazy is False:
                return u, m_new, v_new
            rows = nonzero_rows(g)
            if is_lazy is not True:
                rows = jnp.logical_or(rows, jnp.logical_not(is_lazy))
            return (
                jnp.where(rows, u, jnp.zeros_like(u)),
                jnp.where(rows, m_new, m),
                jnp.where(rows, v_new, v),
            )

        out = map_leaves(
            step,
            updates,
            state.mu,
            state.nu,
            lazy,
            lr,
            leafwise(b1, updates, "b1"),
            leafwise(b2, updates, "b2"),
            leafwise(eps, updates, "eps"),
        )
        treedef = jax.tree.structure(updates)
        triples = treedef.flatten_up_to(out)
        new_updates = treedef.unflatten([t[0] for t in triples])
        mu = treedef.unflatten([t[1] for t in triples])
        nu = treedef.unflatten([t[2] for t in triples])
        return new_updates, LazyAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)
