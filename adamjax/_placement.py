"""Where scalar state is placed: replicated on the devices that hold the params.

The core transforms create their step counters with :func:`zero_count`, so a counter lives where
the params live without the core depending on the distribution helpers in ``_sharding``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.core import Tracer
from jax.sharding import NamedSharding, PartitionSpec, Sharding, SingleDeviceSharding

__all__ = ["leaf_sharding", "replicated_like", "zero_count"]


def leaf_sharding(leaf: Any) -> Sharding | None:
    """The concrete sharding of an array or ``ShapeDtypeStruct``; ``None`` if there is none."""
    if isinstance(leaf, Tracer):
        return None
    sharding = getattr(leaf, "sharding", None)
    return sharding if isinstance(sharding, Sharding) else None


def _replicated(sharding: Sharding) -> Sharding | None:
    """The fully replicated sharding on the devices of ``sharding``, if it can be named."""
    if isinstance(sharding, NamedSharding):
        return NamedSharding(sharding.mesh, PartitionSpec(), memory_kind=sharding.memory_kind)
    if isinstance(sharding, SingleDeviceSharding) or sharding.is_fully_replicated:
        return sharding
    return None


def replicated_like(params: Any) -> Sharding | None:
    """A replicated sharding on the devices that hold ``params``, for scalar state.

    The first leaf that carries placement decides: for a committed array or a
    ``ShapeDtypeStruct`` with a sharding, the replicated sharding on its mesh (or its one
    device); for a tracer on a mesh with explicit axes, the replicated sharding on that abstract
    mesh. Returns ``None`` (JAX's default placement) when no leaf says where it lives, e.g. for
    uncommitted arrays or under ``jit`` with automatic axes.
    """
    for leaf in jax.tree.leaves(params):
        if isinstance(leaf, Tracer):
            typeof = getattr(jax, "typeof", None)  # sharding in types: JAX 0.6 and later
            traced = getattr(typeof(leaf), "sharding", None) if typeof else None
            if isinstance(traced, NamedSharding) and not traced.mesh.empty:
                return NamedSharding(traced.mesh, PartitionSpec())
            return None
        if isinstance(leaf, jax.Array) and not leaf.committed:
            return None
        sharding = leaf_sharding(leaf)
        if sharding is not None:
            return _replicated(sharding)
    return None


def zero_count(params: Any) -> jax.Array:
    """An int32 zero step counter, replicated where ``params`` live (:func:`replicated_like`)."""
    return jnp.zeros([], jnp.int32, device=replicated_like(params))
