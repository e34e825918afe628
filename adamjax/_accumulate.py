r"""Gradient accumulation: k micro-batches, one update.

When a batch does not fit in memory, split it into :math:`k` micro-batches of equal size, feed
each micro-batch gradient to :func:`accumulate_gradients`, and the wrapped optimizer takes one
step with their mean on every :math:`k`-th call:

.. math::
    \bar g = \frac{1}{k} \sum_{i=1}^{k} g^{(i)}

For a loss that is a mean over examples, :math:`\bar g` is the gradient of the whole batch, so
the step equals the large-batch step it replaces (up to rounding in the sum).

The wrapped optimizer only ever sees real updates: its bias-correction count :math:`t` is the
number of updates applied including this one, and a schedule inside it is called with the
number of updates already applied, :math:`\lfloor n / k \rfloor` after :math:`n` micro-steps.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from adamjax._base import (
    GradientTransformation,
    Params,
    Transform,
    Updates,
    call_update,
    check_transform,
    expect_state,
)
from adamjax._estimates import expect_gradients_like
from adamjax._placement import zero_count
from adamjax._tree import compute_dtype, map_leaves

__all__ = ["AccumulateState", "accumulate_gradients"]

_SIXTEEN_BIT = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


class AccumulateState(NamedTuple):
    """State of :func:`accumulate_gradients`."""

    inner_state: Any  # the wrapped optimizer's state, changed on every k-th micro-step only
    micro_step: jax.Array  # shape (), int32: micro-batches accumulated so far, in [0, k)
    grad_sum: Updates  # sum of the micro-batch gradients since the last update


def _sharding_of(shape: jax.ShapeDtypeStruct) -> Any:
    """The sharding a traced value's type carries on a mesh with explicit axes, else None."""
    sharding = getattr(shape, "sharding", None)
    if isinstance(sharding, jax.sharding.NamedSharding) and sharding.mesh.explicit_axes:
        return sharding
    return None


def _check_every_k(every_k: Any) -> int:
    """``every_k`` as an int, after checking that it is an int (not a bool) ``>= 1``."""
    if (
        isinstance(every_k, (bool, np.bool_))
        or not isinstance(every_k, (int, np.integer))
        or every_k < 1
    ):
        raise ValueError(f"every_k must be an int >= 1, got {every_k!r}")
    return operator.index(every_k)


def _check_accumulator_dtype(accumulator_dtype: Any) -> np.dtype | None:
    """``accumulator_dtype`` as a NumPy dtype (or ``None``), refusing non-float dtypes."""
    if accumulator_dtype is None:
        return None
    try:
        dtype = jnp.dtype(accumulator_dtype)
    except TypeError as error:
        raise TypeError(
            f"accumulator_dtype must be a floating-point dtype, got {accumulator_dtype!r}"
        ) from error
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"accumulator_dtype must be a floating-point dtype, got {dtype}: a sum of "
            "gradients needs a floating-point accumulator (complex for complex params)"
        )
    return dtype


def _accumulator_dtype_for(param: Any, chosen: np.dtype | None, where: str) -> np.dtype:
    """The dtype of the running sum for ``param``: ``chosen``, or the default for its dtype."""
    own = jnp.dtype(jnp.result_type(param))
    if chosen is None:
        return jnp.dtype(jnp.float32) if own in _SIXTEEN_BIT else own
    if not jnp.issubdtype(own, jnp.complexfloating):
        if jnp.issubdtype(chosen, jnp.complexfloating) and jnp.issubdtype(own, jnp.inexact):
            raise TypeError(
                f"accumulator_dtype is {chosen}, but {where} has dtype {own}: a complex "
                "accumulator needs complex params (pass a real accumulator_dtype)"
            )
        return chosen
    if jnp.issubdtype(chosen, jnp.complexfloating):
        return chosen
    return jnp.dtype(jnp.complex128 if jnp.finfo(chosen).bits == 64 else jnp.complex64)


def accumulate_gradients(
    inner: Transform, every_k: int | np.integer, *, accumulator_dtype: DTypeLike | None = None
) -> GradientTransformation:
    r"""Sum ``every_k`` micro-batch gradients, then let ``inner`` take one step with their mean.

    On micro-steps :math:`1, \dots, k - 1` of each cycle the updates are zero and ``inner``'s
    state is unchanged; on micro-step :math:`k`

    .. math::
        u, s^{inner} \leftarrow \text{inner.update}\Big(\frac{1}{k}\sum_{i=1}^{k} g^{(i)},
        s^{inner}, \theta\Big)

    and the sum starts again from zero. Memory: one accumulator with the params' shapes.

    ``inner`` runs under :func:`jax.lax.cond`, so it costs nothing on the micro-steps that do not
    update (under ``vmap`` both branches run and one is selected).

    The running sum is where low precision fails first: :math:`k` finite float16 gradients
    can add up past 65504 (:math:`4 \times 30000`), and a bfloat16 sum drops the low bits of
    each new term. So the accumulator of a bfloat16 or float16 param is float32 by default;
    wider params sum in their own dtype.

    Args:
        inner: the optimizer that takes the accumulated steps.
        every_k: :math:`k`, the number of micro-batches per update, an int ``>= 1`` (NumPy
            integers accepted).
        accumulator_dtype: floating-point (or complex) dtype of the running sum, for every
            leaf (default: float32 for bfloat16 and float16 params, the param's own dtype
            otherwise). Complex params get the complex dtype of that precision (``float32``
            gives ``complex64``). The mean is handed to ``inner`` in the gradients' dtype.

    Returns:
        A transform whose state is :class:`AccumulateState`.

    Raises:
        ValueError: if ``every_k`` is not an int ``>= 1``; at ``update``, naming the path where
            the gradients do not match the accumulator.
        TypeError: if ``inner`` is not a transform; if ``accumulator_dtype`` is not a
            floating-point or complex dtype; at ``init``, naming the path, if it is complex
            for a real param.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.accumulate_gradients(adamjax.adam(0.1), every_k=2)
        >>> params = {"w": jnp.zeros(2)}
        >>> state = opt.init(params)
        >>> u1, state = opt.update({"w": jnp.array([1.0, 3.0])}, state, params)
        >>> u2, state = opt.update({"w": jnp.array([3.0, -5.0])}, state, params)
        >>> u1["w"], u2["w"].round(6)  # one Adam step with the mean gradient [2, -1]
        (Array([0., 0.], dtype=float32), Array([-0.1,  0.1], dtype=float32))
    """
    check_transform(inner, "accumulate_gradients() inner")
    k = _check_every_k(every_k)
    chosen = _check_accumulator_dtype(accumulator_dtype)

    def init_fn(params: Params) -> AccumulateState:
        def zeros(path: Any, p: jax.Array) -> jax.Array:
            where = "params" + jax.tree_util.keystr(path)
            return jnp.zeros_like(p, dtype=_accumulator_dtype_for(p, chosen, where))

        return AccumulateState(
            inner_state=inner.init(params),
            micro_step=zero_count(params),
            grad_sum=jax.tree_util.tree_map_with_path(zeros, params),
        )

    def add(total: jax.Array, g: jax.Array) -> jax.Array:
        dtype = compute_dtype(total.dtype, g.dtype)
        return (total.astype(dtype) + g.astype(dtype)).astype(total.dtype)

    def mean(total: jax.Array, g: jax.Array) -> jax.Array:
        dtype = compute_dtype(total.dtype, g.dtype)
        return (total.astype(dtype) / k).astype(g.dtype)

    def update_fn(
        updates: Updates, state: AccumulateState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, AccumulateState]:
        expect_state(state, AccumulateState, "accumulate_gradients")
        expect_gradients_like(updates, state.grad_sum, "accumulate_gradients", "state.grad_sum")
        grad_sum = map_leaves(add, state.grad_sum, updates)
        micro_step = state.micro_step + jnp.ones_like(state.micro_step)
        ready = micro_step >= k

        def apply(operands: tuple[Any, Any]) -> tuple[Updates, Any]:
            total, inner_state = operands
            return call_update(
                inner, map_leaves(mean, total, updates), inner_state, params, extra_args
            )

        shapes = jax.eval_shape(apply, (grad_sum, state.inner_state))

        def wait(operands: tuple[Any, Any]) -> tuple[Updates, Any]:
            _, inner_state = operands
            # zeros of the updates' type, sharding included (on meshes with explicit axes the
            # two branches must agree on it)
            zeros = jax.tree.map(
                lambda s: jnp.zeros(s.shape, s.dtype, out_sharding=_sharding_of(s)), shapes[0]
            )
            return zeros, inner_state

        new_updates, inner_state = jax.lax.cond(ready, apply, wait, (grad_sum, state.inner_state))
        grad_sum = map_leaves(lambda s: jnp.where(ready, jnp.zeros_like(s), s), grad_sum)
        micro_step = jnp.where(ready, jnp.zeros_like(micro_step), micro_step)
        return new_updates, AccumulateState(inner_state, micro_step, grad_sum)

    return GradientTransformation(init_fn, update_fn)
