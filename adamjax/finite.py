r"""Skipping steps whose gradients are not finite.

One NaN or Inf in a gradient reaches the moments, and from there every later update: the run is
lost. :func:`skip_nonfinite` wraps an optimizer and turns such a step into a no-op::

    optimizer = skip_nonfinite(adamjax.adam(1e-3), max_consecutive_skips=10, on_limit="skip")

On a skipped step the updates are zero and the wrapped optimizer's state is returned exactly as
it was (bit for bit), so its step count, moments and schedule do not see the step. The wrapper
counts skips in its own state.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from adamjax.base import GradientTransformation, Params, Updates, call_update, check_transform
from adamjax.sharding import zero_count
from adamjax.tree import saturating_increment

__all__ = ["SkipNonfiniteState", "all_finite", "skip_nonfinite"]

OnLimit = Literal["skip", "apply"]


class SkipNonfiniteState(NamedTuple):
    """State of :func:`skip_nonfinite`."""

    inner_state: Any  # the wrapped optimizer's state, untouched on skipped steps
    total_skips: jax.Array  # shape (), int32: steps skipped so far (saturating)
    consecutive_nonfinite: jax.Array  # shape (), int32: non-finite steps since the last finite


def all_finite(tree: Any) -> jax.Array:
    """Whether every element of every leaf of ``tree`` is finite (a bool array of shape ())."""
    finite = jnp.ones([], jnp.bool_)
    for leaf in jax.tree.leaves(tree):
        finite = jnp.logical_and(finite, jnp.all(jnp.isfinite(leaf)))
    return finite


def skip_nonfinite(
    inner: Any,
    max_consecutive_skips: int | None = None,
    on_limit: OnLimit = "skip",
) -> GradientTransformation:
    r"""Skip every step whose gradients contain NaN or Inf.

    With :math:`s` the number of consecutive non-finite steps before this one, a step whose
    gradients are not all finite is skipped when ``on_limit == "skip"`` or
    :math:`s <` ``max_consecutive_skips``:

    .. math::
        u_t = 0, \qquad \text{state}^{inner}_t = \text{state}^{inner}_{t-1}

    otherwise (``on_limit == "apply"`` and the limit is reached) the values go through to
    ``inner`` as they are. A finite step resets :math:`s` to zero.

    The decision is data, not Python control flow: it works under ``jit``, and under ``vmap``
    each member of a batch of optimizers skips on its own.

    Args:
        inner: the optimizer to protect (any transform with ``init`` and ``update``).
        max_consecutive_skips: how many non-finite steps in a row are skipped before
            ``on_limit`` applies, an int ``>= 0``; ``None`` never reaches the limit.
        on_limit: what happens from the ``max_consecutive_skips + 1``-th non-finite step in a
            row on: ``"skip"`` keeps skipping (the counters tell the caller to stop);
            ``"apply"`` lets the non-finite values through, so that NaN shows up in the params.

    Returns:
        A transform whose state is :class:`SkipNonfiniteState`.

    Raises:
        TypeError: if ``inner`` is not a transform.
        ValueError: if ``max_consecutive_skips`` is not ``None`` or an int ``>= 0``, or
            ``on_limit`` is neither ``"skip"`` nor ``"apply"``.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.skip_nonfinite(adamjax.adam(0.1))
        >>> params = {"w": jnp.ones(2)}
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([1.0, jnp.nan])}, state, params)
        >>> updates["w"], int(state.total_skips)
        (Array([0., 0.], dtype=float32), 1)
    """
    check_transform(inner, "skip_nonfinite() inner")
    if max_consecutive_skips is not None and (
        isinstance(max_consecutive_skips, bool)
        or not isinstance(max_consecutive_skips, int)
        or max_consecutive_skips < 0
    ):
        raise ValueError(
            f"max_consecutive_skips must be None or an int >= 0, got {max_consecutive_skips!r}"
        )
    if on_limit not in ("skip", "apply"):
        raise ValueError(f'on_limit must be "skip" or "apply", got {on_limit!r}')

    def init_fn(params: Params) -> SkipNonfiniteState:
        return SkipNonfiniteState(
            inner_state=inner.init(params),
            total_skips=zero_count(params),
            consecutive_nonfinite=zero_count(params),
        )

    def update_fn(
        updates: Updates, state: SkipNonfiniteState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, SkipNonfiniteState]:
        if not isinstance(state, SkipNonfiniteState):
            raise TypeError(
                "skip_nonfinite() takes the SkipNonfiniteState its init returned, got "
                f"{type(state).__name__}"
            )
        finite = all_finite(updates)
        if on_limit == "apply" and max_consecutive_skips is not None:
            within = state.consecutive_nonfinite < max_consecutive_skips
            skip = jnp.logical_and(jnp.logical_not(finite), within)
        else:
            skip = jnp.logical_not(finite)
        new_updates, new_inner = call_update(inner, updates, state.inner_state, params, extra_args)

        def keep(new: Any, old: Any) -> Any:
            return jnp.where(skip, old, new)

        inner_state = jax.tree.map(keep, new_inner, state.inner_state)
        new_updates = jax.tree.map(lambda u: jnp.where(skip, jnp.zeros_like(u), u), new_updates)
        total = jnp.where(skip, saturating_increment(state.total_skips), state.total_skips)
        consecutive = jnp.where(
            finite,
            jnp.zeros_like(state.consecutive_nonfinite),
            saturating_increment(state.consecutive_nonfinite),
        )
        return new_updates, SkipNonfiniteState(inner_state, total, consecutive)

    return GradientTransformation(init_fn, update_fn)
