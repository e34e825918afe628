r"""Adam-mini (Zhang et al., 2024): one second moment per block of parameters.

Adam keeps a second moment for every parameter; Adam-mini keeps one per block (a whole tensor,
or a row, or an attention head), the moving average of the block's mean squared gradient. That
halves the optimizer's memory at little cost. Only the estimator changes::

    mini_moments(b1, b2, block_axes) -> bias_correction() -> normalize(eps)
        -> add_decayed_weights(weight_decay, mask) -> scale_by_learning_rate(lr)

.. math::
    m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad
    v_{t,B} = b_2 v_{t-1,B} + (1 - b_2) \operatorname{mean}_{i \in B} |g_{t,i}|^2

The block statistic :math:`v` is stored with the reduced axes kept at length 1, so it
broadcasts against :math:`m` in :func:`adamjax.bias_correction` and :func:`adamjax.normalize`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from adamjax._arraymath import abs_square, moving_average, zeros_like_params
from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    Updates,
    declare_stage,
)
from adamjax._blockwise import BlockwiseInt8
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._decay import Mask, add_decayed_weights
from adamjax._estimates import Moments, expect_gradients_like
from adamjax._normalize import normalize
from adamjax._placement import replicated_like, zero_count
from adamjax._scale import scale_by_learning_rate
from adamjax._tree import (
    cast_hyperparameter,
    check_float_leaves,
    compute_dtype,
    leafwise,
    map_leaves,
    one_minus,
    real_dtype,
    saturating_increment,
    second_moment_dtype,
)
from adamjax._validate import check_dtype, hyperparameter, is_function

__all__ = ["BlockAxes", "MiniMomentsState", "adam_mini", "mini_moments", "per_row"]

BlockAxes: TypeAlias = Callable[[str, tuple[int, ...]], Sequence[int] | None]
"""``(path, shape) -> axes``: for the leaf at ``path`` (as ``jax.tree_util.keystr`` writes it,
e.g. ``"['attn']['q']"``) of ``shape``, the axes a block spans; ``None`` for the whole leaf."""


class MiniMomentsState(NamedTuple):
    """State of :func:`mini_moments`."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    mu: Updates  # first moment, one per parameter
    nu: Updates  # one mean square |g|^2 per block: the param's shape, block axes of length 1


def per_row(path: str, shape: tuple[int, ...]) -> Sequence[int] | None:
    """:data:`BlockAxes` with one block per slice along the first axis (a row of a matrix, an
    output neuron), and one block per leaf of rank 0 or 1.

    Args:
        path: the leaf's path in the params, as :func:`jax.tree_util.keystr` writes it.
        shape: the leaf's shape.

    Returns:
        The axes each block reduces over: every axis but the first, or ``None`` (the whole leaf)
        for a leaf of rank 0 or 1.
    """
    del path
    return tuple(range(1, len(shape))) if len(shape) >= 2 else None


def _block_axes(rule: BlockAxes | None, path: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The sorted, non-negative axes one block spans, checked."""
    axes = None if rule is None else rule(path, shape)
    if axes is None:
        return tuple(range(len(shape)))
    try:
        chosen = [operator.index(axis) for axis in axes]
    except TypeError as error:
        raise TypeError(
            f"block_axes returned {axes!r} for params{path}: it must return a sequence of ints "
            "or None"
        ) from error
    rank = len(shape)
    if any(not -rank <= axis < rank for axis in chosen):
        raise ValueError(f"block_axes returned {axes!r} for params{path} of shape {shape}")
    normalized = tuple(sorted(axis % rank for axis in chosen))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"block_axes returned a repeated axis, {axes!r}, for params{path}")
    return normalized


def _block_shapes(rule: BlockAxes | None, tree: Any) -> Any:
    """For each leaf of ``tree``, ``(axes, shape of its block statistic)``, as a list."""
    out = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = tuple(jnp.shape(leaf))
        axes = _block_axes(rule, jax.tree_util.keystr(path), shape)
        reduced = tuple(1 if i in axes else n for i, n in enumerate(shape))
        out.append((axes, reduced))
    return out


def _block_zeros(rule: BlockAxes | None, params: Params, dtype: Any) -> Any:
    leaves, treedef = jax.tree.flatten(params)
    zeros = [
        jnp.zeros(
            reduced, dtype or second_moment_dtype(jnp.result_type(p)), device=replicated_like(p)
        )
        for p, (_, reduced) in zip(leaves, _block_shapes(rule, params), strict=True)
    ]
    return jax.tree.unflatten(treedef, zeros)


def _block_average(g: jax.Array, old: jax.Array, decay: Any, axes: tuple[int, ...]) -> jax.Array:
    """``decay * old + (1 - decay) * mean over axes of |g|^2`` (kept dims), in ``old``'s dtype."""
    dtype = compute_dtype(real_dtype(g.dtype), old.dtype)
    square = abs_square(g).astype(dtype)
    mean = jnp.mean(square, axis=axes, keepdims=True) if g.size else jnp.zeros(old.shape, dtype)
    new = one_minus(decay, dtype) * mean + cast_hyperparameter(decay, dtype) * old.astype(dtype)
    return new.astype(old.dtype)


def _check_blocks(rule: BlockAxes | None, grads: Updates, nu: Updates) -> list[tuple[int, ...]]:
    """The block axes of each leaf, after checking that ``nu`` holds one value per block."""
    blocks = _block_shapes(rule, grads)
    paths = jax.tree_util.tree_leaves_with_path(nu)
    for (path, v), (_, reduced) in zip(paths, blocks, strict=True):
        if tuple(jnp.shape(v)) != reduced:
            raise ValueError(
                f"state.nu{jax.tree_util.keystr(path)} has shape {jnp.shape(v)}, but the blocks "
                f"of grads{jax.tree_util.keystr(path)} need {reduced}: pass the state this "
                "optimizer's init returned"
            )
    return [axes for axes, _ in blocks]


def _refuse_8_bit(**storages: Any) -> None:
    """Refuse :func:`adamjax.blockwise_int8` for Adam-mini's moments, naming the argument.

    Raises:
        TypeError: naming ``mu_dtype`` or ``nu_dtype``, for a :class:`adamjax.BlockwiseInt8`.
    """
    moment = {"mu_dtype": "m", "nu_dtype": "the per-block v"}
    for name, storage in storages.items():
        if isinstance(storage, BlockwiseInt8):
            raise TypeError(
                f"{name}={storage!r}: {moment[name]} of mini_moments() cannot be stored in 8 "
                "bits (blockwise_int8() stores the moments kept by moments()); pass a float dtype"
            )


def mini_moments(
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    block_axes: BlockAxes | None = None,
    *,
    mu_dtype: DTypeLike | None = None,
    nu_dtype: DTypeLike | None = None,
) -> GradientTransformation:
    r"""Adam's first moment per parameter, and one second moment per block (Adam-mini).

    .. math::
        m_t = b_1 m_{t-1} + (1 - b_1) g_t, \qquad
        v_{t,B} = b_2 v_{t-1,B} + (1 - b_2) \frac{1}{|B|} \sum_{i \in B} |g_{t,i}|^2

    Blocks are whole leaves by default. ``block_axes`` splits a leaf: it names the axes a
    block spans, so ``per_row`` (:func:`per_row`: all axes but the first) gives one block per
    row of a matrix, and a query matrix stored as ``(heads, d_head, d_model)`` gets one block
    per head from ``lambda path, shape: (1, 2)``. :math:`v` is stored with those axes at
    length 1 and is emitted so, broadcasting against :math:`m`.

    Args:
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        block_axes: :data:`BlockAxes`, ``(path, shape) -> axes`` (``None``: the whole leaf),
            or ``None`` for one block per leaf.
        mu_dtype: storage dtype of :math:`m` (default: the param's dtype); a float dtype, not
            :func:`adamjax.blockwise_int8`.
        nu_dtype: storage dtype of :math:`v` (default: the param's real dtype; float32 for
            float16 params); a float dtype, not :func:`adamjax.blockwise_int8`.

    Returns:
        A transform taking gradients and emitting :class:`adamjax.Moments`; its state is
        :class:`MiniMomentsState`.

    Raises:
        ValueError: naming the argument, for a decay out of range; at ``init``, naming the path,
            for block axes out of range or repeated.
        TypeError: for a ``block_axes`` that is not callable, or a non-float dtype or
            :func:`adamjax.blockwise_int8` (naming the argument).

    References:
        Zhang et al., *Adam-mini: Use Fewer Learning Rates To Gain More*, ICLR 2025,
        https://arxiv.org/abs/2406.16793
    """
    b1 = hyperparameter("b1", b1, upper=1.0)
    b2 = hyperparameter("b2", b2, upper=1.0)
    _refuse_8_bit(mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    check_dtype("mu_dtype", mu_dtype)
    check_dtype("nu_dtype", nu_dtype, complex_ok=False)
    if block_axes is not None and not is_function(block_axes):
        raise TypeError(f"block_axes must be a function (path, shape) -> axes, got {block_axes!r}")

    def init_fn(params: Params) -> MiniMomentsState:
        check_float_leaves(params)
        mu = zeros_like_params(params, mu_dtype)
        nu = _block_zeros(block_axes, params, nu_dtype)
        return MiniMomentsState(count=zero_count(params), mu=mu, nu=nu)

    def update_fn(
        grads: Updates, state: MiniMomentsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, MiniMomentsState]:
        del params
        expect_gradients_like(grads, state.mu, "mini_moments", "state.mu")
        axes = _check_blocks(block_axes, grads, state.nu)
        g_leaves, treedef = jax.tree.flatten(grads)
        decays = treedef.flatten_up_to(leafwise(b2, grads, "b2"))
        nu_leaves = [
            _block_average(g, v, decay, axis)
            for g, v, decay, axis in zip(
                g_leaves, treedef.flatten_up_to(state.nu), decays, axes, strict=True
            )
        ]
        nu = jax.tree.unflatten(treedef, nu_leaves)
        mu = map_leaves(moving_average, grads, state.mu, leafwise(b1, grads, "b1"))
        count = saturating_increment(state.count)
        estimates = Moments(mu=mu, nu=nu, grad=grads, b1=b1, b2=b2, count=count)
        return estimates, MiniMomentsState(count=count, mu=mu, nu=nu)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=GRADIENTS, emits=MOMENTS)


def adam_mini(
    learning_rate: PerLeafOrSchedule,
    b1: PerLeaf = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    weight_decay: PerLeafOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    block_axes: BlockAxes | None = None,
    mu_dtype: DTypeLike | None = None,
    nu_dtype: DTypeLike | None = None,
) -> GradientTransformation:
    r"""Adam-mini: AdamW with one second moment per block (Zhang et al., 2024).

    .. math::
        \theta_t = \theta_{t-1} - \alpha_t \left(\frac{\hat m_t}{\sqrt{\hat v_{t,B(i)}} + \epsilon}
            + \lambda\, \theta_{t-1}\right)

    with the per-parameter first moment and per-block second moment of :func:`mini_moments`,
    bias-corrected as in Adam. ``chain(mini_moments(b1, b2, block_axes), bias_correction(),
    normalize(eps), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``. With one block per leaf (the default) the state
    holds one second-moment value per leaf instead of one per parameter. The paper's
    partition for Transformers (a block per head for queries and keys, per output neuron
    elsewhere) is a ``block_axes`` function of the model's layout. ``b1``, ``b2``, ``eps`` and
    ``weight_decay`` default to :func:`adamjax.adamw`'s.

    Args:
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        b1: first-moment decay, in ``[0, 1)``.
        b2: second-moment decay, in ``[0, 1)``.
        eps: added to :math:`\sqrt{\hat v}`, ``>= 0``.
        weight_decay: :math:`\lambda \ge 0`, or a schedule of the steps already taken.
        mask: pytree of bools, or ``params -> pytree of bools``: which leaves decay.
        block_axes: ``(path, shape) -> axes`` a block spans (:data:`BlockAxes`); ``None``:
            one block per leaf.
        mu_dtype: storage dtype of :math:`m`: a float dtype, not :func:`adamjax.blockwise_int8`
            (Adam-mini's moments are not kept by ``moments()``).
        nu_dtype: storage dtype of :math:`v`: a float dtype, not :func:`adamjax.blockwise_int8`.

    Returns:
        The chain above.

    Raises:
        ValueError: naming the argument, for a value out of range.
        TypeError: naming ``mu_dtype`` or ``nu_dtype``, for :func:`adamjax.blockwise_int8`.

    References:
        Zhang et al., *Adam-mini: Use Fewer Learning Rates To Gain More*, ICLR 2025,
        https://arxiv.org/abs/2406.16793
    """
    return chain(
        mini_moments(b1, b2, block_axes, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        bias_correction(),
        normalize(eps),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
