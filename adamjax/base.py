"""The protocol every adamjax transform follows, and the types it speaks in.

A gradient transformation is a pair of pure functions::

    state = init(params)
    updates, state = update(grads, state, params=None)

States are NamedTuples of arrays, so they jit, vmap, donate, shard and checkpoint as ordinary
pytrees. Any object with ``init`` and ``update`` of these signatures (an optax transform, for
example) composes with adamjax transforms in :func:`adamjax.chain`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeAlias

import jax

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "Params",
    "Schedule",
    "ScalarOrSchedule",
    "TransformInit",
    "TransformUpdate",
    "Updates",
    "init_empty_state",
]

Params: TypeAlias = Any
"""A pytree of arrays: the parameters being optimized."""

Updates: TypeAlias = Any
"""A pytree of arrays with the structure of the params: gradients or updates."""

State: TypeAlias = Any
"""A pytree of arrays holding a transform's state."""

Schedule: TypeAlias = Callable[[jax.Array], Any]
"""A function ``count -> value`` of the number of steps already taken."""

ScalarOrSchedule: TypeAlias = Any
"""A number, an array, a pytree of numbers matching the params, or a :data:`Schedule`."""


class TransformInit(Protocol):
    """``init(params) -> state``."""

    def __call__(self, params: Params, /) -> State: ...


class TransformUpdate(Protocol):
    """``update(grads, state, params=None) -> (updates, state)``."""

    def __call__(
        self, updates: Updates, state: State, params: Params | None = None, /
    ) -> tuple[Updates, State]: ...


class GradientTransformation(NamedTuple):
    """A pure optimizer transform: ``init(params) -> state`` and
    ``update(grads, state, params=None) -> (updates, state)``.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.adam(1e-3)
        >>> params = {"w": jnp.ones(3)}
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.ones(3)}, state, params)
        >>> params = adamjax.apply_updates(params, updates)
    """

    init: TransformInit
    update: TransformUpdate


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


def init_empty_state(params: Params) -> EmptyState:
    """``init`` of a transform that keeps no state."""
    del params
    return EmptyState()
