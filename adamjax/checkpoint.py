"""Saving and restoring params and optimizer states as ``.npz`` files keyed by tree paths.

Every adamjax state is a pytree of NamedTuples, tuples and dicts of arrays, so each leaf has a
stable, readable path, e.g. ``['opt_state'][0].mu['encoder']['w']``. :func:`save_checkpoint`
writes each leaf under its path; :func:`restore_checkpoint` reads them back into the structure
of a target tree (an initial state, or its :func:`jax.eval_shape`), checking that every path,
shape and dtype agrees. Values round-trip bit for bit, bfloat16 and other dtypes NumPy does not
know included, so training resumed from a checkpoint is identical to training that never
stopped.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["restore_checkpoint", "save_checkpoint"]

_DTYPES_KEY = "__adamjax_dtypes__"


def _flatten(tree: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def _is_native(dtype: np.dtype) -> bool:
    """Whether ``np.save`` round-trips ``dtype`` by itself (bfloat16, float8... do not)."""
    return dtype.kind in "biufc" and dtype == np.dtype(dtype.str)


def save_checkpoint(path: str | os.PathLike[str], tree: Any) -> None:
    """Write every leaf of ``tree`` to the ``.npz`` file ``path``, keyed by its tree path.

    Args:
        path: file to write (``.npz`` is not appended).
        tree: any pytree of arrays, e.g. ``{"params": params, "opt_state": opt_state,
            "step": step}``. Leaves are fetched to the host; Python numbers are stored in the
            dtype JAX gives them; ``None`` leaves and empty states hold no data and take no
            entry.

    Raises:
        TypeError: if a leaf is not an array or number.
        ValueError: if two leaves have the same path (a dict with keys ``1`` and ``"1"``).

    Example:
        >>> import tempfile, os, jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.ones(3)}
        >>> opt_state = adamjax.adam(1e-3).init(params)
        >>> file = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
        >>> adamjax.save_checkpoint(file, {"params": params, "opt_state": opt_state})
    """
    arrays: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for key_path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        key = jax.tree_util.keystr(key_path)
        if key in arrays:
            raise ValueError(f"two leaves of the tree have the same path {key}")
        if isinstance(leaf, (bool, int, float, complex)):
            leaf = jnp.asarray(leaf)  # the dtype JAX gives it (int32 unless x64 is enabled)
        try:
            array = np.asarray(jax.device_get(leaf))
        except TypeError as error:
            raise TypeError(f"tree{key} is not an array: {leaf!r}") from error
        if not (array.dtype == np.bool_ or jnp.issubdtype(array.dtype, jnp.number)):
            raise TypeError(f"tree{key} is not an array: {leaf!r}")
        dtypes[key] = jnp.dtype(array.dtype).name
        if not _is_native(array.dtype):
            array = array.view(np.dtype(f"u{array.dtype.itemsize}"))
        arrays[key] = array
    arrays[_DTYPES_KEY] = np.asarray(json.dumps(dtypes))
    with open(path, "wb") as file:
        np.savez(file, **arrays)  # pyright: ignore[reportArgumentType]


def _load(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise ValueError(f"{os.fspath(path)} is not a checkpoint written by save_checkpoint") from (
            error
        )
    if _DTYPES_KEY not in arrays:
        raise ValueError(f"{os.fspath(path)} is not a checkpoint written by save_checkpoint")
    dtypes = json.loads(str(arrays.pop(_DTYPES_KEY)))
    return arrays, dtypes


def _shape_and_dtype(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return tuple(leaf.shape), jnp.dtype(leaf.dtype)
    return tuple(jnp.shape(leaf)), jnp.dtype(jnp.result_type(leaf))


def _placement(leaf: Any) -> jax.sharding.Sharding | None:
    """Where ``leaf`` lives (an array) or is meant to (a ``ShapeDtypeStruct`` with a sharding)."""
    if isinstance(leaf, jax.Array | jax.ShapeDtypeStruct):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, jax.sharding.Sharding):
            return sharding
    return None


def restore_checkpoint(path: str | os.PathLike[str], target: Any) -> Any:
    """Read the ``.npz`` file ``path`` back into the structure of ``target``.

    Args:
        path: a file written by :func:`save_checkpoint`.
        target: a pytree with the structure, shapes and dtypes to restore: the tree that was
            saved, a freshly initialized one (``{"params": params, "opt_state":
            optimizer.init(params)}``), or ``jax.eval_shape`` of one. Its values are not read.
            Its placement is: each array comes back with the sharding of its target leaf
            (a JAX array, or a ``jax.ShapeDtypeStruct`` with a sharding, e.g. from
            :func:`adamjax.abstract_init`), so a sharded state is restored sharded.

    Returns:
        A pytree with ``target``'s structure holding the saved arrays (as JAX arrays placed like
        the target's leaves, on the default device where a leaf has no placement), bit for bit
        as they were saved. Weakly typed leaves come back
        strongly typed (adamjax states hold none).

    Raises:
        ValueError: naming the first path that the target has and the checkpoint lacks, that
            the checkpoint has and the target lacks, or whose shape or dtype differs (with both
            shapes or dtypes); or if ``path`` is not such a checkpoint.

    Example:
        >>> import tempfile, os, jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.ones(3)}
        >>> optimizer = adamjax.adam(1e-3)
        >>> file = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
        >>> adamjax.save_checkpoint(file, {"params": params, "opt_state": optimizer.init(params)})
        >>> target = {"params": params, "opt_state": optimizer.init(params)}
        >>> restored = adamjax.restore_checkpoint(file, target)
    """
    arrays, dtypes = _load(path)
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(target)
    wanted = [jax.tree_util.keystr(key_path) for key_path, _ in leaves_with_path]
    for key in wanted:
        if key not in arrays:
            raise ValueError(f"target{key} has no entry in the checkpoint {os.fspath(path)}")
    extra = [key for key in arrays if key not in set(wanted)]
    if extra:
        raise ValueError(
            f"the checkpoint {os.fspath(path)} holds {extra[0]}, which is not in the target"
        )
    restored = []
    for key, (_, leaf) in zip(wanted, leaves_with_path, strict=True):
        dtype = jnp.dtype(dtypes[key])
        array = arrays[key]
        if array.dtype != dtype:
            array = array.view(dtype)
        want_shape, want_dtype = _shape_and_dtype(leaf)
        if array.shape != want_shape:
            raise ValueError(
                f"checkpoint{key} has shape {array.shape}, but target{key} has shape {want_shape}"
            )
        if dtype != want_dtype:
            raise ValueError(
                f"checkpoint{key} has dtype {dtype}, but target{key} has dtype {want_dtype}"
            )
        placement = _placement(leaf)
        restored.append(
            jnp.asarray(array) if placement is None else jax.device_put(array, placement)
        )
    return jax.tree_util.tree_unflatten(treedef, restored)
