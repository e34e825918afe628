r"""Training bfloat16 and float16 params directly, without losing small updates.

A bfloat16 number has 8 significant bits: next to :math:`\theta = 1` its neighbours are
:math:`1 - 2^{-8}` and :math:`1 + 2^{-7}`, so an update :math:`|u| < 2^{-9}` rounds away and
the param never moves, however many such updates arrive. The usual cure keeps a float32 master
copy of the params (4 more bytes per param). :func:`compensated` keeps instead, per param, the
part of the last update that the rounding lost, in the params' own dtype (2 bytes per param for
bfloat16), and adds it to the next update (Kahan's compensated summation):

.. math::
    y = u + c, \qquad s = \theta + y, \qquad \theta' = \operatorname{rd}(s), \qquad
    c' = \operatorname{rd}(s - \theta')

so that :math:`\theta' + c' \approx \theta + u + c`: over any number of steps the params stay
within about one unit in the last place of the sum of all updates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamjax._base import (
    GradientTransformation,
    Params,
    Transform,
    Updates,
    call_update,
    check_transform,
    expect_state,
)
from adamjax._tree import check_float_leaves, check_matching, compute_dtype

__all__ = ["CompensatedState", "compensated"]


class CompensatedState(NamedTuple):
    """State of :func:`compensated`."""

    inner_state: Any  # the wrapped optimizer's state
    # per leaf: what rounding the params lost, in the params' dtype, for params narrower than
    # float32; None for float32, float64 and complex params (their updates pass through)
    compensation: Any


def needs_compensation(dtype: Any) -> bool:
    """Whether params of ``dtype`` get a compensation buffer: real floats narrower than 32 bits."""
    dtype = jnp.dtype(dtype)
    return bool(jnp.issubdtype(dtype, jnp.floating)) and jnp.finfo(dtype).bits < 32


def _zero_compensation(p: jax.Array) -> jax.Array | None:
    """Zeros of ``p``'s shape, dtype and sharding, or ``None`` if ``p`` needs no compensation."""
    return jnp.zeros_like(p) if needs_compensation(jnp.result_type(p)) else None


def _check_compensation(params: Params, compensation: Any) -> list[Any]:
    """The compensation leaves, one per param leaf, after checking they fit ``params``.

    Raises:
        ValueError: naming the path where a param's dtype is not the one the state was
            initialized for (a buffer missing, superfluous, or of another dtype).
    """
    treedef = jax.tree.structure(params)
    try:
        buffers = treedef.flatten_up_to(compensation)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "state.compensation does not have the structure of params: call update with the "
            "params compensated().init was given"
        ) from error
    for (path, p), c in zip(jax.tree_util.tree_leaves_with_path(params), buffers, strict=True):
        own = jnp.result_type(p)
        fits = c is None if not needs_compensation(own) else getattr(c, "dtype", None) == own
        if not fits:
            held = "none" if c is None else jnp.result_type(c)
            where = jax.tree_util.keystr(path)
            raise ValueError(
                f"params{where} has dtype {own}, but state.compensation{where} is {held}: "
                "initialize compensated() with params of the dtypes it then updates"
            )
    return buffers


def compensated_step(p: jax.Array, u: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""One leaf: the update ``d`` to hand to :func:`adamjax.apply_updates`, and :math:`c'`.

    :math:`y = u + c` and :math:`s = \theta + y` are formed in float32 (or wider);
    :math:`\theta'_{near} = \operatorname{rd}(s)`, :math:`d = \operatorname{rd}(\theta'_{near} -
    \theta)`, :math:`\theta' = \operatorname{rd}(\theta + d)` exactly as ``apply_updates`` adds,
    and :math:`c' = \operatorname{rd}(s - \theta')`.
    """
    wide = compute_dtype(p.dtype, u.dtype, c.dtype)
    target = p.astype(wide) + (u.astype(wide) + c.astype(wide))
    nearest = target.astype(p.dtype)
    step = (nearest.astype(wide) - p.astype(wide)).astype(p.dtype)
    added = compute_dtype(p.dtype)  # what apply_updates adds a step of the params' dtype in
    applied = (p.astype(added) + step.astype(added)).astype(p.dtype)
    return step, (target - applied.astype(wide)).astype(p.dtype)


def compensated(inner: Transform) -> GradientTransformation:
    r"""Kahan-compensated updates for bfloat16 and float16 params, with no float32 copy.

    Each step takes ``inner``'s update :math:`u` and, leaf by leaf for params narrower than
    float32, with :math:`\operatorname{rd}` rounding to the params' dtype (to nearest, ties to
    even) and the sums formed in float32 (or wider):

    .. math::
        y = u + c, \qquad s = \theta + y, \qquad \theta' = \operatorname{rd}(s), \qquad
        d = \operatorname{rd}(\theta' - \theta), \qquad c' = \operatorname{rd}(s - \theta')

    and returns :math:`d`, for which ``adamjax.apply_updates(params, updates)`` (which adds in
    float32 and rounds once) gives exactly :math:`\theta'`. The buffer :math:`c` holds what
    the rounding of the params lost, so that :math:`\theta' + c' = \theta + u + c` up to the
    rounding of :math:`c'` (a relative :math:`2^{-9}` in bfloat16 of an amount below half a
    unit in the last place of :math:`\theta'`) and of :math:`s` to float32 (a relative
    :math:`2^{-24}`). An update below half a unit in the last place, which plain bfloat16
    drops every time, accumulates in :math:`c` until it moves the param: after :math:`N`
    steps of :math:`u` the param is :math:`\theta + N u` to within about one unit.

    Which operations are exact: :math:`\theta'` is :math:`s` rounded to a coarser format, so
    :math:`s/2 \le \theta' \le 2s` and :math:`s - \theta'` is exact in float32 (Sterbenz);
    likewise :math:`\theta' - \theta` is exact, and representable in the params' dtype,
    whenever :math:`\theta'` is within a factor 2 of :math:`\theta`, the case of every small
    step. Then :math:`d = \theta' - \theta` and :math:`\theta + d = \theta'` exactly. A step
    that moves a param by more than a factor 2 (or across zero) may have no exact :math:`d`;
    :math:`\theta'` is then what ``apply_updates`` gives for :math:`d` and :math:`c'` is
    measured from it, so the compensation still holds what was lost.

    Params that are float32 or wider (and complex params) need no compensation: their entry of
    ``compensation`` is ``None`` and ``inner``'s updates pass through unchanged, bit for bit.
    ``inner``'s update is taken in the dtype it returns it; adamjax's transforms compute in
    float32 and return the gradients' dtype.

    Memory: one buffer in the params' dtype (2 bytes per bfloat16 param) against 4 bytes per
    param for a float32 master copy; the params themselves stay bfloat16 in the step.

    Stochastic rounding (rounding :math:`s` up with probability proportional to its distance
    from the lower neighbour) is not offered: it drops the buffer, but is right only on
    average, so a run's params drift from :math:`\theta + \sum u` by a random walk of
    :math:`\sqrt{N}` half units, and it needs a PRNG key threaded through every step, making
    runs depend on it. Compensation is deterministic, repeatable bit for bit, and stays within
    a unit of the exact sum whatever :math:`N`.

    The rule is elementwise: it works under ``jit`` and ``vmap``, and the buffers take the
    params' shapes and shardings.

    Args:
        inner: the optimizer whose updates are compensated (any transform with ``init`` and
            ``update``, adamjax's or optax's), applied to the gradients as given.

    Returns:
        A transform whose state is :class:`CompensatedState`; its ``update`` needs ``params``.

    Raises:
        TypeError: if ``inner`` is not a transform; at ``init`` and ``update``, naming the
            path, if a param is an integer or boolean array.
        ValueError: at ``update``, if ``params`` is not given, or, naming the path, if the
            gradients do not match the params or a param's dtype is not the one ``init`` saw.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.ones(2, jnp.bfloat16)}
        >>> opt = adamjax.compensated(adamjax.sgd(1e-3))
        >>> state = opt.init(params)
        >>> for _ in range(100):  # each update, 1e-3, is below half a unit at 1 (2 ** -8)
        ...     updates, state = opt.update({"w": -jnp.ones(2)}, state, params)
        ...     params = adamjax.apply_updates(params, updates)
        >>> params["w"]  # plain bfloat16 stays at 1.0
        Array([1.10156, 1.10156], dtype=bfloat16)
    """
    check_transform(inner, "compensated() inner")

    def init_fn(params: Params) -> CompensatedState:
        check_float_leaves(params)
        compensation = jax.tree.map(_zero_compensation, params)
        return CompensatedState(inner_state=inner.init(params), compensation=compensation)

    def update_fn(
        updates: Updates, state: CompensatedState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, CompensatedState]:
        expect_state(state, CompensatedState, "compensated")
        if params is None:
            raise ValueError("compensated() needs the params: call update(grads, state, params)")
        check_float_leaves(params)
        check_matching(params, updates)
        buffers = _check_compensation(params, state.compensation)
        inner_updates, inner_state = call_update(
            inner, updates, state.inner_state, params, extra_args
        )
        treedef = jax.tree.structure(params)
        steps, new_buffers = [], []
        for p, u, c in zip(
            treedef.flatten_up_to(params),
            treedef.flatten_up_to(inner_updates),
            buffers,
            strict=True,
        ):
            step, new_c = (u, None) if c is None else compensated_step(p, u, c)
            steps.append(step)
            new_buffers.append(new_c)
        return jax.tree.unflatten(treedef, steps), CompensatedState(
            inner_state, jax.tree.unflatten(treedef, new_buffers)
        )

    return GradientTransformation(init_fn, update_fn)
