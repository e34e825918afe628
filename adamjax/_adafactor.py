r"""Adafactor (Shazeer & Stern, 2018): a second moment kept in O(rows + cols) per matrix.

For a matrix gradient :math:`G \in \mathbb{R}^{n \times m}`, Adafactor keeps moving averages of
the row means :math:`R` and column means :math:`C` of :math:`G^2 + \epsilon_1` instead of the
full second moment, and divides the gradient by the root of their rank-one product. Its chain,
as in optax::

    factored_second_moment(...) -> [clip_by_block_rms(threshold)] -> [scale_by_learning_rate(lr)]
        -> [scale_by_param_block_rms()] -> [ema_momentum(momentum)]
        -> [add_decayed_weights(weight_decay_rate, mask)] -> scale(-1)

.. math::
    \hat V_t = \frac{R_t C_t^\top}{\operatorname{mean}(R_t)}, \qquad
    u_t = \frac{G_t}{\sqrt{\hat V_t}}, \qquad
    \beta_{2,t} = 1 - (t - \text{offset})^{-\gamma}
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from adamjax._adopt import ema_momentum_named
from adamjax._arraymath import abs_square
from adamjax._base import (
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
)
from adamjax._block_rms import clip_by_block_rms_named, scale_by_param_block_rms
from adamjax._combine import chain
from adamjax._decay import Mask, add_decayed_weights_named
from adamjax._estimates import expect_gradients
from adamjax._placement import replicated_like, zero_count
from adamjax._scale import scale, scale_by_learning_rate
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
from adamjax._validate import check_dtype, check_int, hyperparameter

__all__ = [
    "FactoredSecondMomentState",
    "adafactor",
    "factored_dims",
    "factored_second_moment",
]


class FactoredSecondMomentState(NamedTuple):
    """State of :func:`factored_second_moment` (optax's ``FactoredState`` fields)."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    v_row: Updates  # R: mean of g^2 + eps over the largest axis; shape (1,) if not factored
    v_col: Updates  # C: mean of g^2 + eps over the second largest axis; (1,) if not factored
    v: Updates  # full moving average of g^2 + eps where a leaf is not factored, else (1,)


def factored_dims(
    shape: tuple[int, ...], factored: bool, min_dim_size_to_factor: int
) -> tuple[int, int] | None:
    """``(second largest axis, largest axis)`` of ``shape`` if the leaf's second moment is
    factored (two axes of at least ``min_dim_size_to_factor``), else ``None``."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)  # the same tie-break as optax
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _decay_at(count: jax.Array, decay_rate: Any, decay_offset: Any) -> jax.Array:
    r""":math:`1 - (k - \text{offset} + 1)^{-\gamma}` after ``k`` steps, in float32 (optax
    computes this schedule in float32 whatever the params' dtype)."""
    if isinstance(decay_offset, int) and not isinstance(decay_offset, bool):
        t = (jnp.asarray(count) - decay_offset + 1).astype(jnp.float32)
    else:  # an array offset (a per-leaf one, say) of any dtype: exact in float32 below 2**24
        offset = jnp.asarray(decay_offset).astype(jnp.float32)
        t = jnp.asarray(count).astype(jnp.float32) - offset + 1.0
    return 1.0 - t ** (-cast_hyperparameter(decay_rate, jnp.float32))


def _check_factored_decay(name: str, value: Any, path: str, dims: Any) -> None:
    """Refuse a per-leaf decay argument with more than one element for a factored leaf."""
    if dims is not None and np.size(value) != 1:
        raise ValueError(
            f"{name}{path} has shape {jnp.shape(value)}, but the second moment of "
            f"params{path} is factored (kept as row and column means), so its {name} must be "
            "one number"
        )


def _placeholder(p: Any) -> jax.Array:
    """A one-element zero for the state a leaf does not use, replicated where the leaf is."""
    return jnp.zeros((1,), second_moment_dtype(p.dtype), device=replicated_like(p))


def _average(old: jax.Array, new: jax.Array, decay: jax.Array) -> jax.Array:
    """``decay * old + (1 - decay) * new`` in ``new``'s dtype."""
    decay = decay.astype(new.dtype)
    return decay * old.astype(new.dtype) + (1 - decay) * new


def _factored_leaf(
    g: jax.Array, r: jax.Array, c: jax.Array, decay: jax.Array, eps: Any, dims: tuple[int, int]
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(g / sqrt(R C^T / mean(R)), new R, new C)`` for a factored leaf."""
    d1, d0 = dims
    dtype = compute_dtype(g.dtype, r.dtype)
    square = abs_square(g).astype(real_dtype(dtype)) + cast_hyperparameter(eps, real_dtype(dtype))
    row = _average(r, jnp.mean(square, axis=d0), decay).astype(r.dtype)
    col = _average(c, jnp.mean(square, axis=d1), decay).astype(c.dtype)
    reduced = d1 - 1 if d1 > d0 else d1
    row_c, col_c = row.astype(real_dtype(dtype)), col.astype(real_dtype(dtype))
    row_factor = (row_c / jnp.mean(row_c, axis=reduced, keepdims=True)) ** -0.5
    col_factor = col_c**-0.5
    scaled = g.astype(dtype) * jnp.expand_dims(row_factor, d0) * jnp.expand_dims(col_factor, d1)
    return scaled.astype(g.dtype), row, col


def _full_leaf(
    g: jax.Array, v: jax.Array, decay: jax.Array, eps: Any
) -> tuple[jax.Array, jax.Array]:
    """``(g / sqrt(v), new v)`` for a leaf whose second moment is not factored."""
    dtype = compute_dtype(g.dtype, v.dtype)
    square = abs_square(g).astype(real_dtype(dtype)) + cast_hyperparameter(eps, real_dtype(dtype))
    new = _average(v, square, decay)
    scaled = g.astype(dtype) * new**-0.5
    return scaled.astype(g.dtype), new.astype(v.dtype)


def _per_leaf_values(
    named: tuple[tuple[str, Any], ...], tree: Any, dims_of: Any
) -> tuple[Any, ...]:
    """``(decay_rate, decay_offset, eps)`` leaf by leaf, checked against ``tree``: a factored
    leaf takes one decay (:func:`_check_factored_decay`)."""
    values = tuple(leafwise(v, tree, n) for n, v in named)
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    for (name, _), per_leaf_value in zip(named[:2], values[:2], strict=True):
        for (path, leaf), value in zip(leaves, jax.tree.leaves(per_leaf_value), strict=True):
            _check_factored_decay(name, value, jax.tree_util.keystr(path), dims_of(leaf))
    return values


def _update_leaf(
    g: Any, r: Any, c: Any, v: Any, decay_args: tuple[Any, Any, Any], eps: Any, dims: Any
) -> tuple[Any, Any, Any, Any]:
    """``(scaled g, new R, new C, new v)`` of one leaf; ``decay_args`` = (count, rate, offset)."""
    count, rate, offset = decay_args
    decay = _decay_at(count, jnp.reshape(rate, ()) if dims else rate, offset)
    if dims is None:
        scaled, new_v = _full_leaf(g, v, decay, eps)
        return scaled, r, c, new_v
    scaled, row, col = _factored_leaf(g, r, c, decay, eps, dims)
    return scaled, row, col, v


def factored_second_moment(
    factored: bool = True,
    decay_rate: PerLeaf = 0.8,
    decay_offset: PerLeaf = 0,
    min_dim_size_to_factor: int = 128,
    eps: PerLeaf = 1e-30,
) -> GradientTransformation:
    r"""Divide each gradient by the root of a factored estimate of its second moment.

    For a leaf with two axes of at least ``min_dim_size_to_factor`` (the two largest, say rows
    :math:`i` and columns :math:`j`, any other axes batched):

    .. math::
        R_t = \beta_t R_{t-1} + (1 - \beta_t)\,\operatorname{mean}_j(|G_t|^2 + \epsilon), \quad
        C_t = \beta_t C_{t-1} + (1 - \beta_t)\,\operatorname{mean}_i(|G_t|^2 + \epsilon), \quad
        u_t = G_t \Big/ \sqrt{\frac{R_t C_t^\top}{\operatorname{mean}_i R_t}}

    and for any other leaf :math:`v_t = \beta_t v_{t-1} + (1 - \beta_t)(|g_t|^2 + \epsilon)`,
    :math:`u_t = g_t / \sqrt{v_t}`, with the decay :math:`\beta_t = 1 - (t - o)^{-\gamma}`
    (:math:`t` counts this update, :math:`o` = ``decay_offset``, :math:`\gamma` =
    ``decay_rate``; computed in float32, as optax does). A factored (n, m) leaf keeps
    n + m numbers. Optax's ``scale_by_factored_rms``; takes gradients and emits updates.

    ``decay_rate``, ``decay_offset`` and ``eps`` are each one value, or a tree with the params'
    structure giving each leaf its own (broadcasting to its shape; for a factored leaf, the
    decay arguments are one number, since its rows and columns share one decay).

    Args:
        factored: factor the second moment of leaves that qualify.
        decay_rate: :math:`\gamma \ge 0`, the exponent of the decay schedule.
        decay_offset: :math:`o`, the step at which the schedule restarts (fine-tuning).
        min_dim_size_to_factor: factor a leaf only if two of its axes are at least this long.
        eps: :math:`\epsilon \ge 0`, added to :math:`|g|^2`.

    Returns:
        A :class:`adamjax.GradientTransformation` with a :class:`FactoredSecondMomentState`.

    Raises:
        ValueError: naming the argument, for a value out of range; at ``init``/``update``,
            naming the argument and path, for a per-leaf tree that does not fit the params.
        TypeError: for a ``min_dim_size_to_factor`` that is not an int.

    References:
        Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*,
        ICML 2018, https://arxiv.org/abs/1804.04235
    """
    decay_rate = hyperparameter("decay_rate", decay_rate)
    decay_offset = hyperparameter("decay_offset", decay_offset, lower=None)
    minimum = check_int("min_dim_size_to_factor", min_dim_size_to_factor)
    eps = hyperparameter("eps", eps)
    named = (("decay_rate", decay_rate), ("decay_offset", decay_offset), ("eps", eps))

    def dims_of(p: Any) -> tuple[int, int] | None:
        return factored_dims(jnp.shape(p), factored, minimum)

    def init_leaf(p: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        dims = dims_of(p)
        if dims is None:
            return _placeholder(p), _placeholder(p), jnp.zeros_like(p, second_moment_dtype(p.dtype))
        dtype = second_moment_dtype(p.dtype)
        row = jnp.zeros(np.delete(p.shape, dims[1]).tolist(), dtype)
        col = jnp.zeros(np.delete(p.shape, dims[0]).tolist(), dtype)
        return row, col, _placeholder(p)

    def init_fn(params: Params) -> FactoredSecondMomentState:
        check_float_leaves(params)
        per_leaf(params)
        triples = map_leaves(init_leaf, params)
        rows, cols, full = _split(triples, params, 3)
        return FactoredSecondMomentState(zero_count(params), rows, cols, full)

    def per_leaf(tree: Any) -> tuple[Any, ...]:
        return _per_leaf_values(named, tree, dims_of)

    def update_leaf(g: Any, r: Any, c: Any, v: Any, count: Any, rate: Any, offset: Any, e: Any):
        decay_args = (count, rate, offset)
        return _update_leaf(g, r, c, v, decay_args, e, dims_of(g))

    def update_fn(
        grads: Updates,
        state: FactoredSecondMomentState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, FactoredSecondMomentState]:
        del params
        expect_gradients(grads, "factored_second_moment")
        check_matching(state.v_row, grads, other_name="grads", check_shapes=False)
        check_gradient_dtypes(state.v_row, grads, reference_name="state.v_row", check_complex=False)
        out = map_leaves(
            lambda g, r, c, v, *values: update_leaf(g, r, c, v, state.count, *values),
            grads,
            state.v_row,
            state.v_col,
            state.v,
            *per_leaf(grads),
        )
        scaled, rows, cols, full = _split(out, grads, 4)
        count = saturating_increment(state.count)
        return scaled, FactoredSecondMomentState(count, rows, cols, full)

    return GradientTransformation(init_fn, update_fn)


def _split(tree: Any, like: Any, parts: int) -> tuple[Any, ...]:
    """Split a tree of ``parts``-tuples (with ``like``'s structure) into ``parts`` trees."""
    inner = jax.tree.structure(tuple(range(parts)))
    return tuple(jax.tree.transpose(jax.tree.structure(like), inner, tree))


def adafactor(
    learning_rate: PerLeafOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: PerLeaf = 0.8,
    decay_offset: PerLeaf = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: PerLeaf | None = 1.0,
    momentum: PerLeaf | None = None,
    dtype_momentum: DTypeLike = jnp.float32,
    weight_decay_rate: PerLeafOrSchedule | None = None,
    eps: PerLeaf = 1e-30,
    factored: bool = True,
    weight_decay_mask: Mask = None,
) -> GradientTransformation:
    r"""Adafactor: adaptive steps with a factored second moment (Shazeer & Stern, 2018).

    .. math::
        u_t = \operatorname{clip}_d\!\left(G_t \Big/ \sqrt{\hat V_t}\right), \qquad
        m_t = b\, m_{t-1} + (1 - b)\, \alpha_k \max(\operatorname{rms}(\theta), 10^{-3})\, u_t,
        \qquad \theta_t = \theta_{t-1} - m_t - \lambda \theta_{t-1}

    with the factored second moment :math:`\hat V_t` of :func:`factored_second_moment`, the
    block clipping :math:`\operatorname{clip}_d` of :func:`clip_by_block_rms` (``d`` =
    ``clipping_threshold``), the param-scale factor of :func:`scale_by_param_block_rms` (with
    ``multiply_by_parameter_scale``) and, with a ``momentum`` :math:`b`, a moving average that
    is not bias-corrected (:func:`adamjax.ema_momentum`; else :math:`m_t` is its input).
    As in optax, the weight decay :math:`\lambda` is added after the learning rate, so it is
    not multiplied by it.
    ``chain(factored_second_moment(factored, decay_rate, decay_offset, min_dim_size_to_factor,
    eps), [clip_by_block_rms(clipping_threshold)], [scale_by_learning_rate(learning_rate,
    flip_sign=False)], [scale_by_param_block_rms()], [ema_momentum(momentum, dtype_momentum)],
    [add_decayed_weights(weight_decay_rate, weight_decay_mask)], scale(-1))``, each bracketed
    block present when its argument is set.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken; ``None`` for
            a step size of 1.
        min_dim_size_to_factor: factor a leaf only if two of its axes are at least this long.
        decay_rate: :math:`\gamma \ge 0` of the second-moment decay
            :math:`1 - (t - o)^{-\gamma}`.
        decay_offset: :math:`o`, the step at which that schedule restarts (fine-tuning).
        multiply_by_parameter_scale: scale each update by the param's root mean square.
        clipping_threshold: :math:`d`, the largest root mean square of a leaf's update, or
            ``None`` for no clipping.
        momentum: :math:`b \in [0, 1)`, or ``None`` for no momentum (and no momentum state).
        dtype_momentum: storage dtype of the momentum (float32 by default, as in optax).
        weight_decay_rate: :math:`\lambda \ge 0`, or a schedule, or ``None``.
        eps: :math:`\epsilon_1 \ge 0`, added to :math:`|g|^2`.
        factored: factor the second moment of leaves that qualify.
        weight_decay_mask: pytree of bools, or ``params -> pytree of bools``: which leaves
            decay.

    Arguments, order, defaults and meaning are optax's. Every numeric argument may also be a
    tree with the params' structure giving each leaf its own value (see
    :func:`factored_second_moment` for the decay of a factored leaf).

    Returns:
        The chain above.

    Raises:
        ValueError: naming the argument, for a value out of range; at ``init``/``update``,
            naming the argument and path, for a per-leaf tree that does not fit the params.
        TypeError: naming the argument, for a ``min_dim_size_to_factor`` that is not an int
            or a ``dtype_momentum`` that is not floating-point.

    References:
        Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*,
        ICML 2018, https://arxiv.org/abs/1804.04235
    """
    momentum = hyperparameter("momentum", momentum, upper=1.0, optional=True)
    check_dtype("dtype_momentum", dtype_momentum, complex_ok=False)
    blocks: list[GradientTransformation] = [
        factored_second_moment(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)
    ]
    if clipping_threshold is not None:
        blocks.append(clip_by_block_rms_named(clipping_threshold, "clipping_threshold"))
    if learning_rate is not None:
        blocks.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        blocks.append(scale_by_param_block_rms())
    if momentum is not None:
        blocks.append(ema_momentum_named(momentum, dtype_momentum, nesterov=False, name="momentum"))
    if weight_decay_rate is not None:
        blocks.append(
            add_decayed_weights_named(weight_decay_rate, weight_decay_mask, "weight_decay_rate")
        )
    return chain(*blocks, scale(-1.0))
