"""Composing transforms: :func:`chain` runs them one after another."""

from __future__ import annotations

from typing import Any

from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    GradientTransformation,
    Params,
    Stage,
    Transform,
    Updates,
    call_update,
    check_transform,
    declare_stage,
    describe,
    stage_of,
)

__all__ = ["chain"]


def _check_order(transforms: tuple[Transform, ...]) -> tuple[Stage, Stage]:
    """What the chain takes and emits, after checking that each transform gets what it takes.

    Raises:
        TypeError: naming the position of the first transform that would receive moment
            estimates while it takes gradients, or the reverse, and where it may go.
    """
    takes = stage_of(transforms[0])[0] if transforms else GRADIENTS
    flow, source = takes, -1  # source: where the moment estimates in flow came from
    for position, transform in enumerate(transforms):
        wants, emits = stage_of(transform)
        if wants != flow:
            name = f"chain() transform {position} ({describe(transform)})"
            if flow == MOMENTS and source < 0:
                raise TypeError(
                    f"{name} takes gradients or updates, but transform 0 "
                    f"({describe(transforms[0])}) takes moment estimates and passes them on. "
                    "A moment estimator such as moments() must come before it."
                )
            if flow == MOMENTS:
                raise TypeError(
                    f"{name} takes gradients or updates, but from transform {source} "
                    f"({describe(transforms[source])}) on the chain carries moment estimates. "
                    "Place it before the moment estimator, or after normalize(), which turns "
                    "moment estimates into updates."
                )
            raise TypeError(
                f"{name} takes moment estimates, but receives gradients or updates. Place it "
                "after a moment estimator such as moments() and before normalize()."
            )
        if emits != flow:
            source = position
        flow = emits
    return takes, flow


def chain(*transforms: Transform) -> GradientTransformation:
    """Run transforms in order, each taking the previous one's output.

    ``chain(a, b).update(g, (sa, sb), params)`` is ``b.update(*a.update(g, sa, params), ...)``.
    Any object with ``init`` and ``update`` works, so optax transforms chain with adamjax ones.
    Keyword arguments given to ``update`` (``value=loss``, ...) reach every transform whose
    ``update`` takes them.

    Between a moment estimator (:func:`adamjax.moments`, ...) and :func:`adamjax.normalize` the
    value passed on is :class:`adamjax.Moments`, which only the moments stages take
    (:func:`adamjax.bias_correction`, :func:`adamjax.max_second_moment`,
    :func:`adamjax.monitor`, ...). The order is checked when the chain is built.

    Args:
        *transforms: the transforms, first applied first.

    Returns:
        A transform whose state is the tuple of the transforms' states.

    Raises:
        TypeError: naming the position of an argument that is not a transform, or of a transform
            placed where it would receive moment estimates while it takes gradients (an optax
            transform between ``moments()`` and ``normalize()``, say), or the reverse.

    Example:
        >>> import adamjax
        >>> adam = adamjax.chain(
        ...     adamjax.moments(0.9, 0.999),
        ...     adamjax.bias_correction(),
        ...     adamjax.normalize(1e-8),
        ...     adamjax.scale_by_learning_rate(1e-3),
        ... )
    """
    for position, transform in enumerate(transforms):
        check_transform(transform, f"chain() argument {position}", whole=False)
    takes, emits = _check_order(transforms)

    def init_fn(params: Params) -> tuple[Any, ...]:
        return tuple(transform.init(params) for transform in transforms)

    def update_fn(
        updates: Updates, state: tuple[Any, ...], params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, tuple[Any, ...]]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(
                f"chain of {len(transforms)} transforms got a state that is not a tuple of "
                f"{len(transforms)} states; pass the state returned by its init"
            )
        new_state = []
        for transform, inner in zip(transforms, state, strict=True):
            updates, inner = call_update(transform, updates, inner, params, extra_args)
            new_state.append(inner)
        return updates, tuple(new_state)

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=takes, emits=emits)
