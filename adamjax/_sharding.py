r"""Where optimizer state lives: shardings that follow the params, abstract init, ZeRO-1.

adamjax uses JAX's own distribution machinery (``jax.sharding``, ``jit`` with shardings,
``shard_map``, ``jax.distributed``) and adds no communication of its own. What it guarantees:

* Every per-parameter state array (``mu``, ``nu``, ``nu_max``, ``trace``) is created with
  ``zeros_like``/``full_like`` of its parameter, so it takes the parameter's sharding whenever JAX
  knows it: eagerly (committed arrays), and under ``jit`` on a mesh with explicit axes (inside
  ``jax.set_mesh``). Step counters are created replicated on the params' devices.
* Under ``jit`` on a mesh with automatic axes (``jax.sharding.AxisType.Auto``) a tracer carries
  no sharding, and JAX puts the outputs of an ``init`` that reads no input on the default
  device. Pin the placement with
  ``jax.jit(optimizer.init, out_shardings=state_shardings(optimizer, params))``.
* ``update`` is elementwise per leaf apart from scalar counters, so a jitted step maps each
  moment shard to the matching parameter and gradient shard and keeps the placement.

:func:`abstract_init` gives the state's shapes, dtypes and shardings without allocating, from
arrays or :class:`jax.ShapeDtypeStruct` params (for ``out_shardings`` and checkpoint restore).
:func:`zero1_shardings` gives moments split across a data-parallel axis while the params stay
replicated (ZeRO stage 1, Rajbhandari et al., 2020).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec, Sharding

from adamjax._base import Params, Transform
from adamjax._blockwise import QuantizedBlocks
from adamjax._placement import leaf_sharding, replicated_like

__all__ = ["abstract_init", "state_shardings", "zero1_shardings"]


def _abstract(leaf: Any) -> Any:
    if leaf is None or isinstance(leaf, jax.ShapeDtypeStruct):
        return leaf
    return jax.ShapeDtypeStruct(
        jnp.shape(leaf), jnp.result_type(leaf), sharding=leaf_sharding(leaf)
    )


def _names(entry: Any) -> tuple[Any, ...]:
    """The mesh axis names of one ``PartitionSpec`` entry."""
    if entry is None:
        return ()
    return tuple(entry) if isinstance(entry, tuple) else (entry,)


def _scale_sharding(sharding: Any, shape: tuple[int, ...], blocks: int, fallback: Any) -> Any:
    r"""Where the block scales of a leaf of ``shape`` in ``blocks`` blocks a row go, when its
    codes go to ``sharding``: the codes' spec on every axis but the last; on the last, the
    codes' spec when each of its :math:`p` shards holds whole blocks (:math:`n` a multiple of
    the blocks, the blocks a multiple of :math:`p`), else unsplit, so that every shard of the
    codes finds its blocks' scales. A sharding that is not a ``NamedSharding`` is kept when
    fully replicated, else ``fallback``.
    """
    if not isinstance(sharding, NamedSharding):
        return sharding if sharding is None or sharding.is_fully_replicated else fallback
    spec = tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
    pieces = math.prod(sharding.mesh.shape[name] for name in _names(spec[-1]))
    whole_blocks = shape[-1] % blocks == 0 and blocks % pieces == 0
    last = spec[-1] if whole_blocks else None
    return NamedSharding(
        sharding.mesh, PartitionSpec(*spec[:-1], last), memory_kind=sharding.memory_kind
    )


def _place_leaf(leaf: Any, sharding: Any, fallback: Any) -> Any:
    """One params-shaped state leaf, an array's ``ShapeDtypeStruct`` or 8-bit blocks of them,
    given the sharding of its param (the scales' from :func:`_scale_sharding`)."""
    if isinstance(leaf, QuantizedBlocks):
        blocks = leaf.scale.shape[-1]
        scale_sharding = _scale_sharding(sharding, leaf.codes.shape, blocks, fallback)
        codes: Any = _with_sharding(leaf.codes, sharding)
        scale: Any = _with_sharding(leaf.scale, scale_sharding)
        return QuantizedBlocks(codes, scale)
    return _with_sharding(leaf, sharding)


def _with_sharding(s: Any, sharding: Any) -> jax.ShapeDtypeStruct:
    """``s``, a ``ShapeDtypeStruct``, placed on ``sharding``."""
    return jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding, weak_type=s.weak_type)


def _stored_shape(leaf: Any) -> tuple[int, ...]:
    """The shape of the param a state leaf stands for (a ``QuantizedBlocks``: its codes')."""
    if isinstance(leaf, QuantizedBlocks):
        return jnp.shape(leaf.codes)
    return jnp.shape(leaf)


def _check_shardings(params: Params, shardings: Any, name: str) -> None:
    """Raise unless ``shardings`` is a tree of shardings with the structure of ``params``."""
    params_def = jax.tree.structure(params)
    shardings_def = jax.tree.structure(shardings, is_leaf=lambda s: isinstance(s, Sharding))
    if params_def != shardings_def:
        raise ValueError(
            f"{name} has tree structure {shardings_def}, but params has tree structure {params_def}"
        )
    for path, sharding in jax.tree_util.tree_leaves_with_path(
        shardings, is_leaf=lambda s: isinstance(s, Sharding)
    ):
        if not isinstance(sharding, Sharding):
            raise TypeError(
                f"{name}{jax.tree_util.keystr(path)} must be a jax.sharding.Sharding, "
                f"got {type(sharding).__name__}"
            )


def abstract_init(optimizer: Transform, params: Params, *, moment_shardings: Any = None) -> Any:
    """The optimizer state as ``jax.ShapeDtypeStruct`` leaves: shapes, dtypes and shardings.

    Nothing is allocated: ``optimizer.init`` is traced with :func:`jax.eval_shape`. Every
    state subtree with the structure and leaf shapes of ``params`` (``mu``, ``nu``, ``trace``,
    ...; in a :func:`adamjax.partition` group, with ``None`` where a param belongs to another
    group) takes the params' shardings (or ``moment_shardings``); every other leaf (step
    counters) is replicated on the params' devices. A moment stored in 8-bit blocks
    (:func:`adamjax.blockwise_int8`) gives its codes the param's sharding and its block scales
    the same spec on every axis but the last, which they share only when each shard of the
    last axis holds whole blocks (else the scales are not split along it).

    Args:
        optimizer: any transform with ``init`` (adamjax's, or an optax one).
        params: a pytree of arrays or ``jax.ShapeDtypeStruct`` (with or without ``sharding``).
        moment_shardings: optional pytree of shardings with the structure of ``params``, used
            for the per-parameter state instead of the params' own (see
            :func:`zero1_shardings`).

    Returns:
        A pytree with the structure of ``optimizer.init(params)`` whose leaves are
        ``jax.ShapeDtypeStruct``; ``sharding`` is ``None`` where the params carry none.

    Example:
        >>> import jax, jax.numpy as jnp, adamjax
        >>> params = {"w": jax.ShapeDtypeStruct((1024, 1024), jnp.float32)}
        >>> state = adamjax.abstract_init(adamjax.adam(1e-3), params)
        >>> state[0].mu["w"].shape
        (1024, 1024)
    """
    abstract_params = jax.tree.map(_abstract, params)
    if moment_shardings is None:
        placements = [p.sharding for p in jax.tree.leaves(abstract_params)]
    else:
        _check_shardings(params, moment_shardings, "moment_shardings")
        placements = jax.tree.leaves(moment_shardings)
    state = jax.eval_shape(optimizer.init, abstract_params)
    params_def = jax.tree.structure(abstract_params)
    shapes = [p.shape for p in jax.tree.leaves(abstract_params)]
    scalar_sharding = replicated_like(abstract_params)

    def one_place(x: Any) -> bool:
        """What stands for one param in a state subtree: a leaf, 8-bit blocks, or a masked
        place with no arrays (``None`` where ``partition`` leaves a param to another group)."""
        return isinstance(x, QuantizedBlocks) or not jax.tree.leaves(x)

    def params_like(node: Any) -> bool:
        places, treedef = jax.tree.flatten(node, is_leaf=one_place)
        if treedef != params_def:
            return False
        present = [(x, s) for x, s in zip(places, shapes, strict=True) if jax.tree.leaves(x)]
        return bool(present) and all(_stored_shape(x) == s for x, s in present)

    def place(node: Any) -> Any:
        if params_like(node):
            places, treedef = jax.tree.flatten(node, is_leaf=one_place)
            placed = [
                _place_leaf(x, p, scalar_sharding) if jax.tree.leaves(x) else x
                for x, p in zip(places, placements, strict=True)
            ]
            return jax.tree.unflatten(treedef, placed)
        return jax.tree.map(lambda s: _with_sharding(s, scalar_sharding), node)

    return jax.tree.map(place, state, is_leaf=params_like)


def state_shardings(optimizer: Transform, params: Params, *, moment_shardings: Any = None) -> Any:
    """The sharding of every optimizer-state leaf: pass it as ``out_shardings`` of ``init``.

    .. code-block:: python

        shardings = adamjax.state_shardings(optimizer, params)
        opt_state = jax.jit(optimizer.init, out_shardings=shardings)(params)

    Per-parameter state takes its parameter's sharding (or ``moment_shardings``), scalar
    counters are replicated on the same devices. Works from arrays or ``jax.ShapeDtypeStruct``
    params, and for any transform with ``init`` (see :func:`abstract_init`).

    Args:
        optimizer: the transform whose state is placed.
        params: a pytree of sharded arrays or ``jax.ShapeDtypeStruct`` with ``sharding``.
        moment_shardings: optional per-parameter shardings for the state (ZeRO-1:
            :func:`zero1_shardings`).

    Returns:
        A pytree of :class:`jax.sharding.Sharding` with the structure of the state.

    Raises:
        ValueError: naming a params leaf that carries no sharding.
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if leaf_sharding(_abstract(leaf)) is None:
            raise ValueError(
                f"params{jax.tree_util.keystr(path)} has no sharding: pass jax.Arrays or "
                "jax.ShapeDtypeStruct(shape, dtype, sharding=...) leaves"
            )
    state = abstract_init(optimizer, params, moment_shardings=moment_shardings)
    return jax.tree.map(lambda s: s.sharding, state)


def zero1_shardings(
    params: Params, axis: str = "data", *, mesh: jax.sharding.Mesh | None = None
) -> Any:
    """Shardings that split each parameter's optimizer state across the mesh axis ``axis``.

    ZeRO stage 1: the params stay as they are (replicated for data parallelism) while the
    moments are divided among the ``axis`` devices, so each device keeps ``1/n`` of them. For
    each leaf, the largest dimension that is not yet sharded and divides evenly by ``n =
    mesh.shape[axis]`` is sharded along ``axis``; the rest of the leaf's own
    ``PartitionSpec`` is kept. Leaves already sharded along ``axis``, and leaves with no such
    dimension (scalars, small biases), keep their own sharding.

    Use with ``state_shardings(optimizer, params, moment_shardings=...)`` and pin the step's
    layout with ``jit(..., out_shardings=(param_shardings, state_shardings))``: XLA then
    updates each moment shard locally and all-gathers the new params.

    Args:
        params: a pytree of arrays or ``jax.ShapeDtypeStruct``; leaves carrying a
            ``NamedSharding`` give the mesh and their own spec.
        axis: the name of the mesh axis to split the state across.
        mesh: the mesh; by default the mesh of the params' ``NamedSharding``.

    Returns:
        A pytree of :class:`jax.sharding.NamedSharding` with the structure of ``params``.

    Raises:
        ValueError: when a leaf has no mesh and ``mesh`` is not given, or ``axis`` is not an
            axis of the mesh.

    References:
        Rajbhandari et al., *ZeRO: Memory Optimizations Toward Training Trillion Parameter
        Models*, SC 2020, https://arxiv.org/abs/1910.02054
    """

    def split(path: Any, leaf: Any) -> NamedSharding:
        own = leaf_sharding(_abstract(leaf))
        leaf_mesh = mesh
        spec: tuple[Any, ...] = ()
        if isinstance(own, NamedSharding) and (mesh is None or own.mesh == mesh):
            leaf_mesh, spec = own.mesh, tuple(own.spec)
        where = f"params{jax.tree_util.keystr(path)}"
        if leaf_mesh is None:
            raise ValueError(f"{where} has no NamedSharding to take a mesh from: pass mesh=")
        if axis not in leaf_mesh.axis_names:
            raise ValueError(f"axis {axis!r} is not an axis of the mesh {leaf_mesh.axis_names}")
        shape = jnp.shape(leaf)
        spec = spec + (None,) * (len(shape) - len(spec))
        used = {name for entry in spec for name in (entry if isinstance(entry, tuple) else [entry])}
        size = leaf_mesh.shape[axis]
        free = [d for d, entry in enumerate(spec) if entry is None and shape[d] % size == 0]
        free = [d for d in free if shape[d] >= size]
        if axis not in used and free:
            dim = max(free, key=lambda d: shape[d])
            spec = (*spec[:dim], axis, *spec[dim + 1 :])
        return NamedSharding(leaf_mesh, PartitionSpec(*spec))

    return jax.tree_util.tree_map_with_path(split, params)
