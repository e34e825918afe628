r"""Skipping steps whose gradients (or, on request, whose results) are not finite.

One NaN or Inf in a gradient reaches the moments, and from there every later update: the run is
lost. :func:`skip_nonfinite` wraps an optimizer and turns such a step into a no-op::

    optimizer = skip_nonfinite(adamjax.adam(1e-3), max_consecutive_skips=10, on_limit="apply")

On a skipped step the updates are zero and the wrapped optimizer's state is returned exactly as
it was (bit for bit), so its step count, moments and schedule do not see the step. The wrapper
counts skips in its own state.

A finite gradient can still overflow inside the optimizer (Adam's :math:`g^2` is Inf in float32
from :math:`|g| = 2^{64} \approx 1.8 \cdot 10^{19}`), and a sum of finite float16 gradients can
overflow in an accumulator. ``check_state=True`` also skips the steps whose updates or new inner
state would not be finite.
"""

from __future__ import annotations

import operator
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamjax._base import (
    GradientTransformation,
    Params,
    Transform,
    Updates,
    call_update,
    check_transform,
    expect_state,
)
from adamjax._placement import zero_count
from adamjax._tree import saturating_increment

__all__ = ["SkipNonfiniteState", "all_finite", "skip_nonfinite"]

OnLimit = Literal["skip", "apply"]


class SkipNonfiniteState(NamedTuple):
    """State of :func:`skip_nonfinite`."""

    inner_state: Any  # the wrapped optimizer's state, untouched on skipped steps
    total_skips: jax.Array  # shape (), int32: steps skipped so far (saturating)
    consecutive_nonfinite: jax.Array  # shape (), int32: non-finite steps since the last finite


def _can_be_nonfinite(leaf: Any) -> bool:
    """Whether ``leaf`` is floating-point or complex (integers, bools and float0 are finite)."""
    return bool(jnp.issubdtype(jnp.result_type(leaf), jnp.inexact))


def all_finite(tree: Updates) -> jax.Array:
    """Whether every element of every leaf of ``tree`` is finite (a bool array of shape ()).

    Integer, boolean and ``float0`` leaves (the gradients of integer params under
    ``jax.grad(..., allow_int=True)``) hold no NaN or Inf and count as finite.

    Args:
        tree: a pytree of arrays (gradients, updates or params).

    Returns:
        A bool array of shape ``()``, true if no leaf holds a NaN or an infinity.
    """
    finite = jnp.ones([], jnp.bool_)
    for leaf in jax.tree.leaves(tree):
        if _can_be_nonfinite(leaf):
            finite = jnp.logical_and(finite, jnp.all(jnp.isfinite(leaf)))
    return finite


def _stays_finite(new: Any, old: Any) -> jax.Array:
    """Whether no element that is finite in ``old`` is NaN or Inf in ``new`` (shape (), bool).

    Elements that were already non-finite (a "best value so far" that starts at Inf) are not
    held against the step.
    """
    ok = jnp.ones([], jnp.bool_)
    for new_leaf, old_leaf in zip(jax.tree.leaves(new), jax.tree.leaves(old), strict=True):
        if _can_be_nonfinite(new_leaf):
            lost = jnp.logical_and(jnp.isfinite(old_leaf), jnp.logical_not(jnp.isfinite(new_leaf)))
            ok = jnp.logical_and(ok, jnp.logical_not(jnp.any(lost)))
    return ok


def _zero_where(skip: jax.Array, update: Any) -> Any:
    """Zero where ``skip``, else ``update`` (a ``float0`` leaf has no value and is returned)."""
    if jnp.result_type(update) == jax.dtypes.float0:
        return update
    return jnp.where(skip, jnp.zeros_like(update), update)


def _check_limit(max_consecutive_skips: Any, on_limit: Any) -> int | None:
    """``max_consecutive_skips`` as an int (or ``None``), after checking both arguments."""
    if max_consecutive_skips is not None and (
        isinstance(max_consecutive_skips, (bool, np.bool_))
        or not isinstance(max_consecutive_skips, (int, np.integer))
        or max_consecutive_skips < 0
    ):
        raise ValueError(
            f"max_consecutive_skips must be None or an int >= 0, got {max_consecutive_skips!r}"
        )
    if on_limit not in ("skip", "apply"):
        raise ValueError(f'on_limit must be "skip" or "apply", got {on_limit!r}')
    if max_consecutive_skips is not None and on_limit == "skip":
        raise ValueError(
            f"max_consecutive_skips={max_consecutive_skips!r} has no effect with "
            'on_limit="skip", which skips every non-finite step: pass on_limit="apply" to let '
            "values through past the limit, or drop max_consecutive_skips"
        )
    return None if max_consecutive_skips is None else operator.index(max_consecutive_skips)


def skip_nonfinite(
    inner: Transform,
    max_consecutive_skips: int | np.integer | None = None,
    on_limit: OnLimit = "skip",
    *,
    check_state: bool = False,
) -> GradientTransformation:
    r"""Skip every step whose gradients contain NaN or Inf.

    A step is *non-finite* when its gradients hold a NaN or Inf, or, with ``check_state``, when
    the updates ``inner`` returns hold one or an element of ``inner``'s state that was finite
    would become NaN or Inf. With :math:`s` the number of consecutive non-finite steps before
    this one, a non-finite step is skipped when ``max_consecutive_skips`` is ``None`` or
    :math:`s <` ``max_consecutive_skips``:

    .. math::
        u_t = 0, \qquad \text{state}^{inner}_t = \text{state}^{inner}_{t-1}

    otherwise (``on_limit == "apply"`` and the limit is reached) the values go through to
    ``inner`` as they are. A finite step resets :math:`s` to zero. Every skip is counted in
    ``total_skips``, whichever check refused it.

    Finite but huge gradients: with ``check_state=False`` they reach ``inner``. Plain Adam in
    float32 (and bfloat16, computed in float32) squares :math:`g`, which is Inf from
    :math:`|g| = 2^{64} \approx 1.845 \cdot 10^{19}`: :math:`v` becomes Inf, this and every
    later update of that coordinate is :math:`m / \infty = 0`, and the coordinate never moves
    again (optax's Adam does the same). At :math:`|g|` equal to the float32 maximum,
    :math:`\hat m = m / (1 - b_1)` also overflows (the float32 factor :math:`1 - b_1` rounds
    to 0.099999994) and the first update is :math:`\infty / \infty` = NaN, which reaches the
    params; optax's factor rounds to 0.100000024, and its update is 0. float64 overflows from
    :math:`|g| = 2^{512}`; float16 gradients (at most 65504) cannot overflow the float32
    second moment they get by default. ``check_state=True`` refuses all of these steps, as it
    refuses an accumulated float16 sum that overflows.

    The decision is data, not Python control flow: it works under ``jit``, and under ``vmap``
    each member of a batch of optimizers skips on its own. ``check_state`` adds one pass over
    the updates and the inner state.

    Args:
        inner: the optimizer to protect (any transform with ``init`` and ``update``).
        max_consecutive_skips: with ``on_limit="apply"``, how many non-finite steps in a row
            are skipped before the values go through, an int ``>= 0`` (NumPy integers
            accepted); ``None`` never reaches a limit.
        on_limit: ``"skip"`` (the default) skips every non-finite step and takes no
            ``max_consecutive_skips`` (the counters tell the caller when to stop);
            ``"apply"`` lets the non-finite values through from the
            ``max_consecutive_skips + 1``-th non-finite step in a row on, so that NaN shows up
            in the params.
        check_state: also skip steps whose updates or new inner state would not be finite.

    Returns:
        A transform whose state is :class:`SkipNonfiniteState`.

    Raises:
        TypeError: if ``inner`` is not a transform, or ``check_state`` is not a bool.
        ValueError: if ``max_consecutive_skips`` is not ``None`` or an int ``>= 0``, if
            ``on_limit`` is neither ``"skip"`` nor ``"apply"``, or if ``max_consecutive_skips``
            is given with ``on_limit="skip"``.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.skip_nonfinite(adamjax.adam(0.1))
        >>> params = {"w": jnp.ones(2)}
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([1.0, jnp.nan])}, state, params)
        >>> updates["w"], int(state.total_skips)
        (Array([0., 0.], dtype=float32), 1)
        >>> opt = adamjax.skip_nonfinite(adamjax.adam(0.1), check_state=True)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([1.0, 1e20])}, state, params)
        >>> updates["w"], int(state.total_skips)  # 1e20 ** 2 is Inf in float32
        (Array([0., 0.], dtype=float32), 1)
    """
    check_transform(inner, "skip_nonfinite() inner")
    limit = _check_limit(max_consecutive_skips, on_limit)
    if not isinstance(check_state, (bool, np.bool_)):
        raise TypeError(f"check_state must be a bool, got {check_state!r}")

    def init_fn(params: Params) -> SkipNonfiniteState:
        return SkipNonfiniteState(
            inner_state=inner.init(params),
            total_skips=zero_count(params),
            consecutive_nonfinite=zero_count(params),
        )

    def update_fn(
        updates: Updates, state: SkipNonfiniteState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, SkipNonfiniteState]:
        expect_state(state, SkipNonfiniteState, "skip_nonfinite")
        new_updates, new_inner = call_update(inner, updates, state.inner_state, params, extra_args)
        finite = all_finite(updates)
        if check_state:
            finite = jnp.logical_and(finite, all_finite(new_updates))
            finite = jnp.logical_and(finite, _stays_finite(new_inner, state.inner_state))
        skip = jnp.logical_not(finite)
        if limit is not None:
            skip = jnp.logical_and(skip, state.consecutive_nonfinite < limit)

        def keep(new: Any, old: Any) -> Any:
            return jnp.where(skip, old, new)

        inner_state = jax.tree.map(keep, new_inner, state.inner_state)
        new_updates = jax.tree.map(lambda u: _zero_where(skip, u), new_updates)
        total = jnp.where(skip, saturating_increment(state.total_skips), state.total_skips)
        consecutive = jnp.where(
            finite,
            jnp.zeros_like(state.consecutive_nonfinite),
            saturating_increment(state.consecutive_nonfinite),
        )
        return new_updates, SkipNonfiniteState(inner_state, total, consecutive)

    return GradientTransformation(init_fn, update_fn)
