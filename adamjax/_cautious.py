r"""Cautious optimizers (Liang et al., 2024): drop the update coordinates that point uphill.

:func:`cautious` wraps a whole optimizer. Where a coordinate of the update it returns does not
point along the descent direction :math:`-g` of this step's gradient, that coordinate is set to
zero; the others are scaled up so that the update keeps about its size::

    cautious(adamw(lr, ...))      cautious(lion(lr, ...))      skip_nonfinite(cautious(...))

.. math::
    \phi_i = \mathbb{1}[u_i\, g_i < 0], \qquad
    u_i \leftarrow u_i\, \phi_i\, \frac{d}{1 + \sum_j \phi_j}

per leaf, with :math:`d` the leaf's number of elements (the rescaling of the authors' reference
implementation, C-Optim's ``mask * (mask.numel() / (mask.sum() + 1))``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamjax._arraymath import real_product
from adamjax._base import (
    GradientTransformation,
    Params,
    Transform,
    Updates,
    call_update,
    check_transform,
)
from adamjax._estimates import expect_gradients
from adamjax._tree import check_matching, compute_dtype, map_leaves, real_dtype

__all__ = ["cautious", "cautious_mask"]


def cautious_mask(u: jax.Array, g: jax.Array, *, ascent: bool = False) -> jax.Array:
    r"""The rescaled cautious mask of one leaf, in the real compute dtype of ``u`` and ``g``.

    .. math::
        \phi_i = \mathbb{1}[\operatorname{Re}(u_i \bar g_i) < 0], \qquad
        \text{mask}_i = \phi_i\, \frac{d}{1 + \sum_j \phi_j}

    (:math:`> 0` in place of :math:`< 0` with ``ascent``), :math:`d` = ``u.size``. A
    coordinate whose gradient is 0 (or NaN) is dropped.

    Args:
        u: the update of one leaf.
        g: the gradient of the same leaf.
        ascent: whether ``u`` is subtracted from the params (a direction) rather than added.

    Returns:
        An array of ``u``'s shape: 0 where dropped, :math:`d / (1 + \sum_j \phi_j)` elsewhere.
    """
    real = real_dtype(compute_dtype(u.dtype, g.dtype))
    alignment = real_product(u, g, compute_dtype(u.dtype, g.dtype))
    keep = alignment > 0 if ascent else alignment < 0
    kept = jnp.sum(keep, dtype=real)
    scale = jnp.asarray(np.prod(u.shape, dtype=np.float64), real) / (kept + jnp.ones([], real))
    return jnp.where(keep, scale, jnp.zeros([], real))


def _masked(u: jax.Array, g: jax.Array, ascent: bool) -> jax.Array:
    """``u`` times its cautious mask, computed in float32 or wider, in ``u``'s dtype."""
    dtype = compute_dtype(u.dtype, g.dtype)
    mask = cautious_mask(u, g, ascent=ascent)
    return (u.astype(dtype) * mask.astype(dtype)).astype(u.dtype)


def cautious(inner: Transform, *, ascent: bool = False) -> GradientTransformation:
    r"""Cautious version of ``inner``: keep only the update coordinates that descend.

    .. math::
        u = \text{inner}(g), \qquad
        u_i \leftarrow u_i\, \phi_i\, \frac{d}{1 + \sum_j \phi_j}, \qquad
        \phi_i = \mathbb{1}[\operatorname{Re}(u_i\, \bar g_i) < 0]

    per leaf (:func:`cautious_mask`), :math:`d` the leaf's size, :math:`g` the gradients this
    wrapper receives. ``inner`` returns updates added to the params (a whole optimizer such as
    ``adamw(...)``, ending with its learning rate), so a descending coordinate has
    :math:`u_i g_i < 0`. With ``ascent=True`` ``inner`` returns a direction that is subtracted
    later (``chain(moments(), bias_correction(), normalize())`` before
    :func:`adamjax.scale_by_learning_rate`), and :math:`u_i g_i > 0` is kept.

    What the mask sees decides what it drops. ``cautious(adamw(...))`` masks the whole AdamW
    step, weight decay included. The authors' C-AdamW masks the Adam direction and decays
    every coordinate:
    ``chain(cautious(chain(moments(b1, b2), bias_correction(), normalize(eps)), ascent=True),
    add_decayed_weights(weight_decay), scale_by_learning_rate(lr))``.

    The state is ``inner``'s own state, unchanged in type; extra keyword arguments of
    ``update`` are handed to ``inner``. It composes with :func:`adamjax.skip_nonfinite` either
    way round (inside it, a skipped step's zero update stays zero).

    Args:
        inner: the optimizer, any transform with ``init`` and ``update`` that takes gradients
            and emits updates.
        ascent: whether ``inner``'s output is subtracted from the params (a direction).

    Returns:
        A :class:`adamjax.GradientTransformation` whose state is ``inner``'s.

    Raises:
        TypeError: if ``inner`` is not a gradients-to-updates transform, or ``ascent`` is not
            a bool; at ``update``, for moment estimates in place of gradients.
        ValueError: at ``update``, naming the path where ``inner``'s updates do not match the
            gradients.

    References:
        Liang, Chen, Liu & Liu, *Cautious Optimizers: Improving Training with One Line of
        Code*, 2024, https://arxiv.org/abs/2411.16085 (reference code:
        https://github.com/kyleliang919/C-Optim)
    """
    check_transform(inner, "cautious() inner")
    if not isinstance(ascent, (bool, np.bool_)):
        raise TypeError(f"ascent must be a bool, got {ascent!r}")
    ascent = bool(ascent)

    def update_fn(
        grads: Updates, state: Any, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, Any]:
        expect_gradients(grads, "cautious")
        updates, state = call_update(inner, grads, state, params, extra_args)
        check_matching(grads, updates, reference_name="grads", other_name="updates")
        return map_leaves(lambda u, g: _masked(u, g, ascent), updates, grads), state

    return GradientTransformation(inner.init, update_fn)
