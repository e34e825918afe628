r"""``torch.optim.Adafactor``: factored second moments, clamped by :math:`\epsilon_1`.

torch's Adafactor differs from optax's (:func:`adamjax.adafactor`) in its second moment: every
leaf with two axes or more is factored over its *last two* axes (whatever their lengths), the
squared gradient is averaged without an added :math:`\epsilon_1`, and :math:`\epsilon_1` clamps
the estimate instead (:func:`clamped_factored_second_moment`). Its step size is relative to the
param's scale, and its weight decay is decoupled and multiplied by ``lr``::

    clamped_factored_second_moment(beta2_decay, eps[0]) -> clip_by_block_rms(d)
        -> scale_by_param_block_rms(eps[1]) -> scale_by_learning_rate(min(lr, 1 / sqrt(t)))
        -> add_decayed_weights(lr * weight_decay) -> scale(-1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from adamjax._base import GradientTransformation, Params, ScalarOrSchedule, Updates
from adamjax._block_rms import clip_by_block_rms, scale_by_param_block_rms
from adamjax._combine import chain
from adamjax._decay import add_decayed_weights
from adamjax._estimates import expect_gradients
from adamjax._placement import zero_count
from adamjax._scale import scale, scale_by_learning_rate
from adamjax._torch_arguments import split_pair
from adamjax._tree import (
    cast_hyperparameter,
    check_gradient_dtypes,
    check_matching,
    compute_dtype,
    map_leaves,
    saturating_increment,
    second_moment_dtype,
)
from adamjax._validate import hyperparameter, is_concrete, is_function

__all__ = ["ClampedFactoredState", "clamped_factored_second_moment", "torch_adafactor"]


class ClampedFactoredState(NamedTuple):
    """State of :func:`clamped_factored_second_moment` (torch's ``row_var``, ``col_var`` and
    ``variance``, with their shapes)."""

    # shape (), int32: updates taken so far, saturating at the int32 maximum
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    row: Updates  # R, shape (..., n, 1) for a leaf of shape (..., n, m); (1,) for other leaves
    col: Updates  # C, shape (..., 1, m) for a leaf of shape (..., n, m); (1,) for other leaves
    v: Updates  # the full moving average for leaves with fewer than two axes; (1,) otherwise


def _is_factored(leaf: Any) -> bool:
    return jnp.ndim(leaf) >= 2


def _lerp(old: jax.Array, new: jax.Array, weight: jax.Array) -> jax.Array:
    """``old + weight * (new - old)``: torch's ``lerp``, the moving average with decay
    ``1 - weight``."""
    return old + weight * (new - old)


def _factored_estimate(
    square: jax.Array, row: jax.Array, col: jax.Array, weight: jax.Array, eps1: Any
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(R C / max(mean(R), eps1), new R, new C)``, the estimate over the last two axes."""
    row = _lerp(row, jnp.mean(square, axis=-1, keepdims=True), weight)
    col = _lerp(col, jnp.mean(square, axis=-2, keepdims=True), weight)
    row_mean = jnp.maximum(jnp.mean(row, axis=-2, keepdims=True), eps1)
    return row * col / row_mean, row, col


def _clamped_leaf(
    g: jax.Array, row: jax.Array, col: jax.Array, v: jax.Array, t: jax.Array, hyper: tuple
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """One leaf of :func:`clamped_factored_second_moment`: ``(update, R, C, v)``, computed in
    float32 or wider; the update takes ``g``'s dtype, the statistics their own.
    ``hyper`` is ``(beta2_decay, eps1)``, ``eps1`` ``None`` for ``g``'s machine epsilon."""
    beta2_decay, eps1 = hyper
    dtype = compute_dtype(g.dtype, row.dtype, v.dtype)
    eps1 = jnp.finfo(g.dtype).eps.item() if eps1 is None else cast_hyperparameter(eps1, dtype)
    weight = t.astype(dtype) ** cast_hyperparameter(beta2_decay, dtype)  # 1 - beta2_t
    work = g.astype(dtype)
    square = work * work
    if _is_factored(g):
        estimate, new_row, new_col = _factored_estimate(
            square, row.astype(dtype), col.astype(dtype), weight, eps1
        )
        new_v = v
    else:
        estimate = _lerp(v.astype(dtype), square, weight)
        new_row, new_col, new_v = row, col, estimate
    update = work * jax.lax.rsqrt(jnp.maximum(estimate, eps1 * eps1))
    return (
        update.astype(g.dtype),
        new_row.astype(row.dtype),
        new_col.astype(col.dtype),
        new_v.astype(v.dtype),
    )


def _init_leaf(p: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(R, C, v)`` zeros for one param, with torch's shapes and placeholders of shape (1,)."""
    dtype = second_moment_dtype(jnp.result_type(p))
    shape = jnp.shape(p)
    placeholder = jnp.zeros((1,), dtype)
    if not _is_factored(p):
        return placeholder, placeholder, jnp.zeros(shape, dtype)
    row = jnp.zeros((*shape[:-1], 1), dtype)
    col = jnp.zeros((*shape[:-2], 1, shape[-1]), dtype)
    return row, col, placeholder


def _per_part(tree: Any, like: Any, parts: int) -> tuple[Any, ...]:
    """A tree of ``parts``-tuples with ``like``'s structure as ``parts`` trees."""
    inner = jax.tree.structure(tuple(range(parts)))
    return tuple(jax.tree.transpose(jax.tree.structure(like), inner, tree))


def _check_real(tree: Any, name: str) -> None:
    """Reject complex and non-floating leaves, naming the path: torch's Adafactor defines no rule
    for complex parameters."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{name}{jax.tree_util.keystr(path)} has dtype {dtype}; torch's Adafactor "
                "takes real floating-point leaves only"
            )


def clamped_factored_second_moment(
    beta2_decay: ArrayLike = -0.8, eps1: ArrayLike | None = None
) -> GradientTransformation:
    r"""Divide each gradient by the root of torch's Adafactor estimate of its second moment.

    With :math:`w_t = t^{\tau}` (:math:`\tau` = ``beta2_decay`` :math:`\le 0`; :math:`t` counts
    this update, so :math:`w_1 = 1`), a leaf :math:`G` of shape ``(..., n, m)`` keeps

    .. math::
        R_t = R_{t-1} + w_t\,(\operatorname{mean}_j G_t^2 - R_{t-1}), \quad
        C_t = C_{t-1} + w_t\,(\operatorname{mean}_i G_t^2 - C_{t-1}), \quad
        \hat V_t = \frac{R_t C_t}{\max(\operatorname{mean}_i R_t, \epsilon_1)}

    over its last two axes (any others batched), and a leaf with fewer axes (a vector, a scalar)
    the full :math:`\hat V_t = \hat V_{t-1} + w_t (G_t^2 - \hat V_{t-1})`. The update is

    .. math::
        u_t = \frac{G_t}{\sqrt{\max(\hat V_t, \epsilon_1^2)}}.

    :math:`\epsilon_1` is a floor on the estimate, not added to :math:`G^2`
    (:func:`adamjax.factored_second_moment` adds it, factors the two largest axes of at least
    ``min_dim_size_to_factor`` and computes its decay in float32: optax's rule). The decay is
    computed in the leaf's precision. Takes gradients and emits updates.

    Args:
        beta2_decay: :math:`\tau \le 0`, the exponent of :math:`1 - \beta_{2,t} = t^{\tau}`.
        eps1: :math:`\epsilon_1 \ge 0`, or ``None`` for the machine epsilon of each gradient's
            dtype (torch's default).

    Returns:
        A :class:`adamjax.GradientTransformation` with a :class:`ClampedFactoredState`.

    Raises:
        ValueError: naming ``beta2_decay`` or ``eps1`` when out of range.
        TypeError: at ``init`` or ``update``, naming the path of a complex or integer leaf.
    """
    beta2_decay = _at_most_zero("beta2_decay", beta2_decay)
    eps1 = hyperparameter("eps1", eps1, optional=True)

    def init_fn(params: Params) -> ClampedFactoredState:
        _check_real(params, "params")
        rows, cols, full = _per_part(map_leaves(_init_leaf, params), params, 3)
        return ClampedFactoredState(zero_count(params), rows, cols, full)

    def update_fn(
        grads: Updates,
        state: ClampedFactoredState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ClampedFactoredState]:
        del params
        expect_gradients(grads, "clamped_factored_second_moment")
        check_matching(state.v, grads, reference_name="state.v", check_shapes=False)
        check_gradient_dtypes(state.v, grads, reference_name="state.v")
        _check_real(grads, "grads")
        t = saturating_increment(state.count)
        out = map_leaves(
            lambda g, r, c, v: _clamped_leaf(g, r, c, v, t, (beta2_decay, eps1)),
            grads,
            state.row,
            state.col,
            state.v,
        )
        updates, rows, cols, full = _per_part(out, grads, 4)
        return updates, ClampedFactoredState(t, rows, cols, full)

    return GradientTransformation(init_fn, update_fn)


def _at_most_zero(name: str, value: Any) -> Any:
    """``value`` checked to be a number (or array) ``<= 0``, the error naming ``name``."""
    value = hyperparameter(name, value, lower=None)
    for path, leaf in jax.tree_util.tree_leaves_with_path(value):
        if is_concrete(leaf) and np.any(np.asarray(leaf, np.float64) > 0):
            where = name + jax.tree_util.keystr(path)
            raise ValueError(f"{where} must be <= 0.0, got {np.asarray(leaf).tolist()}")
    return value


def _one_number(name: str, value: Any, *, lower: float | None = 0.0, schedule: bool = False) -> Any:
    """``value`` checked as one number ``>= lower`` (or a schedule, where allowed), as torch
    takes it: not a per-leaf tree, not an array of several values."""
    single = jax.tree_util.treedef_is_leaf(jax.tree.structure(value))
    if not is_function(value) and not (single and getattr(value, "size", 1) == 1):
        raise TypeError(f"{name} must be one number, got {value!r}")
    return hyperparameter(name, value, lower=lower, schedule=schedule)


def _float_dtype() -> Any:
    """float64 where JAX has it enabled, float32 otherwise."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _rate(lr: Any, count: jax.Array) -> jax.Array:
    """The learning rate after ``count`` steps, as an array of :func:`_float_dtype`."""
    return jnp.asarray(lr(count) if is_function(lr) else lr).astype(_float_dtype())


def _relative_step_size(lr: Any) -> Callable[[jax.Array], jax.Array]:
    r"""The schedule :math:`\rho_t = \min(\mathrm{lr}, 1 / \sqrt{t})` with :math:`t` = ``count
    + 1`` (torch's Adafactor; ``lr`` a number or a schedule of the steps already taken)."""

    def schedule(count: jax.Array) -> jax.Array:
        t = jnp.asarray(count).astype(_float_dtype()) + 1.0
        return jnp.minimum(_rate(lr, count), 1.0 / jnp.sqrt(t))

    return schedule


def _decay_coefficient(lr: Any, weight_decay: Any) -> Any:
    r""":math:`\mathrm{lr} \cdot \lambda`, a schedule where ``lr`` is one; a Python number where
    both are (a Python zero stays one)."""
    if is_function(lr):
        return lambda count: _rate(lr, count) * jnp.asarray(weight_decay).astype(_float_dtype())
    if isinstance(lr, (int, float)) and isinstance(weight_decay, (int, float)):
        return lr * weight_decay
    return jnp.asarray(lr).astype(_float_dtype()) * jnp.asarray(weight_decay).astype(_float_dtype())


def torch_adafactor(
    lr: ScalarOrSchedule = 1e-2,
    beta2_decay: Any = -0.8,
    eps: tuple[Any, Any] = (None, 1e-3),
    d: Any = 1.0,
    weight_decay: Any = 0.0,
) -> GradientTransformation:
    r"""``torch.optim.Adafactor`` with its arguments and defaults.

    .. math::
        \rho_t = \min\left(\mathrm{lr}, \tfrac{1}{\sqrt t}\right), \quad
        \alpha_t = \max(\epsilon_2, \operatorname{rms}(\theta_{t-1}))\, \rho_t, \quad
        \theta_t = \theta_{t-1} - \mathrm{lr}\,\lambda\,\theta_{t-1}
            - \alpha_t \frac{u_t}{\max(1, \operatorname{rms}(u_t) / d)}

    per leaf, with :math:`u_t = G_t / \sqrt{\max(\hat V_t, \epsilon_1^2)}` of
    :func:`clamped_factored_second_moment` (every leaf with two axes or more factored over its
    last two, the decay :math:`1 - \beta_{2,t} = t^{\tau}`, :math:`\epsilon_1` the machine
    epsilon of the gradient's dtype by default). ``chain(clamped_factored_second_moment(
    beta2_decay, eps[0]), clip_by_block_rms(d), scale_by_param_block_rms(eps[1]),
    scale_by_learning_rate(rho, flip_sign=False), add_decayed_weights(lr * weight_decay),
    scale(-1))``. As in torch, ``lr`` caps the relative step size and scales the (decoupled)
    weight decay; it does not multiply the step. :func:`adamjax.adafactor` is optax's rule.
    A schedule for ``lr`` is called with the number of steps already taken, as torch's
    schedulers set ``lr`` before each step. Complex parameters are refused, as torch refuses them.

    Args:
        lr: :math:`\mathrm{lr} \ge 0`, the largest relative step size and the factor of the weight
            decay; one number or a schedule ``count -> lr``.
        beta2_decay: :math:`\tau \le 0`.
        eps: the pair ``(eps1, eps2)``: :math:`\epsilon_1 \ge 0` floors the second-moment
            estimate (``None``: the machine epsilon of each gradient's dtype),
            :math:`\epsilon_2 \ge 0` the param scale.
        d: the clipping threshold :math:`d \ge 1` on the root mean square of a leaf's update.
        weight_decay: :math:`\lambda \ge 0`, decoupled and multiplied by ``lr``.

    Returns:
        A :class:`adamjax.GradientTransformation` (its state is the chain's tuple of states).

    Raises:
        TypeError: naming ``eps`` when it is not a pair, or the argument that is not one number;
            at ``init`` or ``update``, naming the path of a complex leaf.
        ValueError: naming ``lr``, ``beta2_decay``, ``eps[0]``, ``eps[1]``, ``d`` or
            ``weight_decay`` when out of range.

    References:
        Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*,
        ICML 2018, https://arxiv.org/abs/1804.04235
    """
    lr = _one_number("lr", lr, schedule=True)
    beta2_decay = _one_number("beta2_decay", _at_most_zero("beta2_decay", beta2_decay), lower=None)
    eps1, eps2 = split_pair("eps", eps, "(eps1 or None, eps2)")
    eps1 = None if eps1 is None else _one_number("eps[0]", eps1)
    eps2 = _one_number("eps[1]", eps2)
    d = _one_number("d", d, lower=1.0)
    weight_decay = _one_number("weight_decay", weight_decay)
    return chain(
        clamped_factored_second_moment(beta2_decay, eps1),
        clip_by_block_rms(d),
        scale_by_param_block_rms(eps2),
        scale_by_learning_rate(_relative_step_size(lr), flip_sign=False),
        add_decayed_weights(_decay_coefficient(lr, weight_decay)),
        scale(-1.0),
    )
