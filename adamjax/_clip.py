r"""Clipping gradients: element by element, or by the norm of the whole tree.

.. math::
    \operatorname{clip}(g) = \min(\max(g, -\delta), \delta), \qquad
    \operatorname{clip\_by\_global\_norm}(g) = \begin{cases} g & \|g\| < c \\
    g\, c / \|g\| & \text{otherwise} \end{cases}

with :math:`\|g\| = \sqrt{\sum_{\text{leaves}} \sum_i |g_i|^2}` over every leaf of the tree.
Both take gradients (or updates) and go before a moment estimator or after
:func:`adamjax.normalize`; ``chain(clip_by_global_norm(1.0), adamw(...))`` is the usual
transformer setup. They match optax's transforms of the same names.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from adamjax._arraymath import abs_square
from adamjax._base import (
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    Updates,
    init_empty_state,
)
from adamjax._estimates import expect_gradients
from adamjax._tree import cast_hyperparameter, compute_dtype, leafwise, map_leaves, real_dtype
from adamjax._validate import hyperparameter

__all__ = ["clip", "clip_by_global_norm", "global_norm"]


def global_norm(tree: Updates) -> jax.Array:
    r"""The L2 norm of all the leaves of ``tree`` together: :math:`\sqrt{\sum |x_i|^2}`.

    The per-leaf sums are added pairwise in a balanced tree (as optax does), in float32 or wider
    (the widest of the leaves' real dtypes).

    Args:
        tree: a pytree of real or complex arrays.

    Returns:
        The norm, a real scalar array.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> adamjax.global_norm({"a": jnp.array([3.0]), "b": jnp.array([4.0])})
        Array(5., dtype=float32)
    """
    sums = [jnp.sum(abs_square(leaf)) for leaf in jax.tree.leaves(tree)]
    if not sums:
        return jnp.zeros([], jnp.float32)
    dtype = compute_dtype(*(s.dtype for s in sums))
    total = jax.tree.reduce_associative(jnp.add, [s.astype(dtype) for s in sums])
    return jnp.sqrt(total)


def clip(max_delta: PerLeaf) -> GradientTransformation:
    r"""Clip every element to :math:`[-\delta, \delta]`.

    Args:
        max_delta: :math:`\delta \ge 0`: a number, array or tracer, or a per-leaf tree of them.

    Returns:
        A transform with no state (optax's ``clip``).
    """
    max_delta = hyperparameter("max_delta", max_delta)

    def update_fn(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_gradients(updates, "clip")

        def clip_leaf(u: jax.Array, delta: Any) -> jax.Array:
            bound = cast_hyperparameter(delta, real_dtype(u.dtype))
            return jnp.clip(u, -bound, bound)

        return map_leaves(clip_leaf, updates, leafwise(max_delta, updates, "max_delta")), state

    return GradientTransformation(init_empty_state, update_fn)


def clip_by_global_norm(max_norm: ArrayLike) -> GradientTransformation:
    r"""Scale the whole tree down to norm ``max_norm`` when its :func:`global_norm` exceeds it.

    .. math::
        g \leftarrow \begin{cases} g & \|g\| < c \\ (g / \|g\|)\, c & \text{otherwise}
        \end{cases}

    Args:
        max_norm: :math:`c > 0`: a number, or a scalar array or tracer.

    Returns:
        A transform with no state (optax's ``clip_by_global_norm``). A non-finite norm makes
        every update non-finite, as in optax: wrap the optimizer in
        :func:`adamjax.skip_nonfinite` to skip such steps.

    Raises:
        ValueError: if ``max_norm`` is not positive, or is not a scalar.
    """
    max_norm = hyperparameter("max_norm", max_norm)
    if isinstance(max_norm, (int, float)) and max_norm == 0:
        raise ValueError("max_norm must be > 0, got 0 (every update would be 0 / 0)")
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(max_norm)) is False:
        raise ValueError("max_norm must be one number for the whole tree, not a per-leaf tree")

    def update_fn(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_gradients(updates, "clip_by_global_norm")
        norm = global_norm(updates)
        limit = cast_hyperparameter(max_norm, norm.dtype)
        keep = norm < limit

        def clip_leaf(u: jax.Array) -> jax.Array:
            dtype = compute_dtype(u.dtype)
            scaled = (u.astype(dtype) / norm.astype(dtype)) * cast_hyperparameter(
                max_norm, real_dtype(dtype)
            )
            return jnp.where(keep, u, scaled.astype(u.dtype))

        return map_leaves(clip_leaf, updates), state

    return GradientTransformation(init_empty_state, update_fn)
