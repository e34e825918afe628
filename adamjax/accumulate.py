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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax.base import GradientTransformation, Params, Updates, call_update, check_transform
from adamjax.moments import expect_gradients
from adamjax.sharding import zero_count
from adamjax.tree import check_gradient_dtypes, check_matching, compute_dtype, map_leaves

__all__ = ["AccumulateState", "accumulate_gradients"]


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


def accumulate_gradients(
    inner: Any, every_k: int, *, accumulator_dtype: Any = None
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

    Args:
        inner: the optimizer that takes the accumulated steps.
        every_k: :math:`k`, the number of micro-batches per update, an int ``>= 1``.
        accumulator_dtype: dtype of the running sum (default: each param's dtype; pass
            ``jnp.float32`` to sum bfloat16 gradients without losing low bits). The mean is
            handed to ``inner`` in the gradients' dtype.

    Returns:
        A transform whose state is :class:`AccumulateState`.

    Raises:
        ValueError: if ``every_k`` is not an int ``>= 1``; at ``update``, naming the path where
            the gradients do not match the accumulator.
        TypeError: if ``inner`` is not a transform.

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
    if isinstance(every_k, bool) or not isinstance(every_k, int) or every_k < 1:
        raise ValueError(f"every_k must be an int >= 1, got {every_k!r}")

    def init_fn(params: Params) -> AccumulateState:
        def zeros(p: jax.Array) -> jax.Array:
            return jnp.zeros_like(p, dtype=accumulator_dtype or jnp.result_type(p))

        return AccumulateState(
            inner_state=inner.init(params),
            micro_step=zero_count(params),
            grad_sum=map_leaves(zeros, params),
        )

    def add(total: jax.Array, g: jax.Array) -> jax.Array:
        dtype = compute_dtype(total.dtype, g.dtype)
        return (total.astype(dtype) + g.astype(dtype)).astype(total.dtype)

    def mean(total: jax.Array, g: jax.Array) -> jax.Array:
        dtype = compute_dtype(total.dtype, g.dtype)
        return (total.astype(dtype) / every_k).astype(g.dtype)

    def update_fn(
        updates: Updates, state: AccumulateState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, AccumulateState]:
        if not isinstance(state, AccumulateState):
            raise TypeError(
                "accumulate_gradients() takes the AccumulateState its init returned, got "
                f"{type(state).__name__}"
            )
        expect_gradients(updates, "accumulate_gradients")
        check_matching(state.grad_sum, updates, reference_name="params", other_name="grads")
        check_gradient_dtypes(state.grad_sum, updates, reference_name="state.grad_sum")
        grad_sum = map_leaves(add, state.grad_sum, updates)
        micro_step = state.micro_step + jnp.ones_like(state.micro_step)
        ready = micro_step >= every_k

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
