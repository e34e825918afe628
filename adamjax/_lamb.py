r"""LAMB (You et al., 2020): Adam's update rescaled layer by layer by a trust ratio.

LAMB adds one block to AdamW's chain, between the weight decay and the learning rate::

    moments(b1, b2) -> bias_correction() -> normalize(eps, eps_root)
        -> add_decayed_weights(weight_decay, mask) -> trust_ratio() -> scale_by_learning_rate(lr)

.. math::
    r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon} + \lambda\,\theta_{t-1},
    \qquad
    \theta_t = \theta_{t-1} - \alpha_t\, \frac{\|\theta_{t-1}\|}{\|r_t\|}\, r_t

where the norms are taken over each leaf (each layer) separately. :func:`trust_ratio` is a block
of its own and may follow any chain that emits updates (LARS-style rescaling of SGD, say).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from adamjax._adam_aliases import adam_stages
from adamjax._arraymath import abs_square
from adamjax._base import (
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
    init_empty_state,
)
from adamjax._blockwise import BlockwiseInt8
from adamjax._combine import chain
from adamjax._decay import Mask, add_decayed_weights
from adamjax._estimates import expect_gradients
from adamjax._scale import scale_by_learning_rate
from adamjax._tree import (
    cast_hyperparameter,
    check_matching,
    compute_dtype,
    leafwise,
    map_leaves,
    real_dtype,
)
from adamjax._validate import hyperparameter
from adamjax.flat import FlatParams, Layout

__all__ = ["lamb", "trust_ratio"]


def _root(total: jax.Array) -> jax.Array:
    """``sqrt(total)`` with a zero (not NaN) derivative where ``total`` is 0, so that the
    optimizer can be differentiated through a zero leaf."""
    positive = total > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, total, 1)), 0)


def _leaf_norm(x: jax.Array) -> jax.Array:
    r"""``||x||``, the root of :math:`\sum |x_i|^2` over the whole leaf, in float32 or wider."""
    return _root(jnp.sum(abs_square(x)))


def _buffer_norms(buffer: jax.Array, index: int, layout: Layout) -> jax.Array:
    """For each element of a :class:`~adamjax.flat.FlatParams` buffer, the norm of the leaf of
    the original tree that it belongs to (the layer norm LAMB needs, not the buffer's)."""
    sizes = [math.prod(slot.shape) for slot in layout.slots if slot.buffer == index]
    if len(sizes) <= 1:
        return _leaf_norm(buffer)
    owners = np.repeat(np.arange(len(sizes)), sizes)
    sums = jax.ops.segment_sum(abs_square(buffer), owners, num_segments=len(sizes))
    return _root(sums)[owners]


def _norms(tree: Any) -> Any:
    """A tree with ``tree``'s structure holding each leaf's norm (per element inside a
    :class:`~adamjax.flat.FlatParams`, where a buffer holds several leaves)."""

    def norm(x: Any) -> Any:
        if isinstance(x, FlatParams):
            buffers = tuple(_buffer_norms(b, i, x.layout) for i, b in enumerate(x.buffers))
            return FlatParams(buffers, x.layout)
        return _leaf_norm(x)

    return jax.tree.map(norm, tree, is_leaf=lambda x: isinstance(x, FlatParams))


def _rescale(
    u: jax.Array,
    p_norm: jax.Array,
    u_norm: jax.Array,
    min_norm: Any,
    coefficient: Any,
    eps: Any,
) -> jax.Array:
    """``u`` times its trust ratio (1 where either clamped norm is 0), in ``u``'s dtype."""
    dtype = compute_dtype(u.dtype, p_norm.dtype, u_norm.dtype)
    real = real_dtype(dtype)
    low = cast_hyperparameter(min_norm, real)
    p_norm = jnp.maximum(p_norm.astype(real), low)
    u_norm = jnp.maximum(u_norm.astype(real), low)
    denominator = u_norm + cast_hyperparameter(eps, real)
    ratio = cast_hyperparameter(coefficient, real) * p_norm / denominator
    ratio = jnp.where((p_norm == 0) | (u_norm == 0), jnp.ones_like(ratio), ratio)
    return (u.astype(dtype) * ratio.astype(dtype)).astype(u.dtype)


def trust_ratio(
    min_norm: PerLeaf = 0.0, trust_coefficient: PerLeaf = 1.0, eps: PerLeaf = 0.0
) -> GradientTransformation:
    r"""Rescale each leaf's update by the ratio of the param's norm to the update's (LAMB, LARS).

    .. math::
        u \leftarrow \phi\, u, \qquad \phi = \begin{cases}
            1 & \text{if } \|\theta\|_c = 0 \text{ or } \|u\|_c = 0 \\
            c\, \|\theta\|_c / (\|u\|_c + \epsilon) & \text{otherwise}
        \end{cases}

    with :math:`\|x\|_c = \max(\|x\|, \text{min\_norm})`, the Frobenius norm over the whole leaf
    (:math:`\sqrt{\sum |x_i|^2}`, also for complex leaves) clamped from below, and
    :math:`c` = ``trust_coefficient``. A leaf whose param or update is zero is left unscaled, as
    in optax's ``scale_by_trust_ratio``, whose arguments, defaults and meaning these are. For
    :class:`adamjax.flat.FlatParams`, the norms are those of the original leaves, not of the
    buffers, so the result is the tree's. Takes updates and the params; place it after
    :func:`adamjax.normalize` (and any weight decay), before the learning rate.

    Args:
        min_norm: lower bound of both norms, ``>= 0``.
        trust_coefficient: :math:`c`, a multiplier of the ratio.
        eps: added to the update's norm in the denominator, ``>= 0``.

    Returns:
        A :class:`adamjax.GradientTransformation` with no state.

    Raises:
        ValueError: naming the argument, for a value out of range; at ``update``, when the
            params are not given or do not match the updates.

    References:
        You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*,
        ICLR 2020, https://arxiv.org/abs/1904.00962
    """
    min_norm = hyperparameter("min_norm", min_norm)
    trust_coefficient = hyperparameter("trust_coefficient", trust_coefficient, lower=None)
    eps = hyperparameter("eps", eps)

    def update_fn(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        expect_gradients(updates, "trust_ratio")
        if params is None:
            raise ValueError("trust_ratio() needs the params: call update(grads, state, params)")
        check_matching(params, updates, other_name="updates")
        rescaled = map_leaves(
            _rescale,
            updates,
            _norms(params),
            _norms(updates),
            leafwise(min_norm, updates, "min_norm"),
            leafwise(trust_coefficient, updates, "trust_coefficient"),
            leafwise(eps, updates, "eps"),
        )
        return rescaled, state

    return GradientTransformation(init_empty_state, update_fn)


def lamb(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-6,
    eps_root: PerLeaf = 0.0,
    weight_decay: PerLeafOrSchedule = 0.0,
    mask: Mask = None,
    *,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> GradientTransformation:
    r"""LAMB: layer-wise adaptive moments for large batches (You et al., 2020).

    .. math::
        r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
            + \lambda\, \theta_{t-1}, \qquad
        \theta_t = \theta_{t-1} - \alpha_t\, \phi(\theta_{t-1}, r_t)\, r_t

    with Adam's bias-corrected moments :math:`\hat m_t, \hat v_t` (:func:`adamjax.adam`) and the
    trust ratio :math:`\phi(\theta, r) = \|\theta\| / \|r\|` of :func:`trust_ratio`, per leaf,
    taken as 1 where either norm is 0.
    ``chain(moments(b1, b2), bias_correction(), normalize(eps, eps_root),
    add_decayed_weights(weight_decay, mask), trust_ratio(),
    scale_by_learning_rate(learning_rate))``.

    As in optax, ``mask`` chooses the leaves that decay only; every leaf's update is rescaled
    by its trust ratio (the paper excludes biases and norm scales from both: wrap the chain in
    :func:`adamjax.partition` for that).

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to :math:`\sqrt{\hat v_t}`, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        mu_dtype: storage dtype of :math:`m` (keyword only; not in optax's ``lamb``), or
            :func:`adamjax.blockwise_int8` for 8-bit blocks.
        nu_dtype: storage dtype of :math:`v` (keyword only; not in optax's ``lamb``), or
            :func:`adamjax.blockwise_int8` for 8-bit blocks.

    The arguments up to ``mask`` are optax's, in optax's order, with its defaults.

    Returns:
        The chain above.

    Raises:
        ValueError: naming the argument, for a value out of range.

    References:
        You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*,
        ICLR 2020, https://arxiv.org/abs/1904.00962
    """
    return chain(
        *adam_stages(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov=False),
        add_decayed_weights(weight_decay, mask),
        trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )
