"""Composing transforms: :func:`chain` runs them one after another."""

from __future__ import annotations

from typing import Any

from adamjax.base import GradientTransformation, Params, Updates

__all__ = ["chain"]


def chain(*transforms: Any) -> GradientTransformation:
    """Run transforms in order, each taking the previous one's output.

    ``chain(a, b).update(g, (sa, sb), params)`` is ``b.update(*a.update(g, sa, params), ...)``.
    Any object with ``init`` and ``update`` works, so optax transforms chain with adamjax ones.

    Args:
        *transforms: the transforms, first applied first.

    Returns:
        A transform whose state is the tuple of the transforms' states.

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
        if not (
            callable(getattr(transform, "init", None))
            and callable(getattr(transform, "update", None))
        ):
            raise TypeError(
                f"chain() argument {position} must have init and update methods, "
                f"got {type(transform).__name__}"
            )

    def init_fn(params: Params) -> tuple[Any, ...]:
        return tuple(transform.init(params) for transform in transforms)

    def update_fn(
        updates: Updates, state: tuple[Any, ...], params: Params | None = None
    ) -> tuple[Updates, tuple[Any, ...]]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(
                f"chain of {len(transforms)} transforms got a state that is not a tuple of "
                f"{len(transforms)} states; pass the state returned by its init"
            )
        new_state = []
        for transform, inner in zip(transforms, state, strict=True):
            updates, inner = transform.update(updates, inner, params)
            new_state.append(inner)
        return updates, tuple(new_state)

    return GradientTransformation(init_fn, update_fn)
