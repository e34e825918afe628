"""Saving and restoring params and optimizer states as ``.npz`` files keyed by tree paths.

Every adamjax state is a pytree of NamedTuples, tuples and dicts of arrays, so each leaf has a
stable, readable path, e.g. ``['opt_state'][0].mu['encoder']['w']``. :func:`save_checkpoint`
writes each leaf under its path; :func:`restore_checkpoint` reads them back into the structure
of a target tree (an initial state, or its :func:`jax.eval_shape`), checking that every path,
shape and dtype agrees. Values round-trip bit for bit, bfloat16 and other dtypes NumPy does not
know included, so training resumed from a checkpoint is identical to training that never
stopped.

A save is atomic: the archive is written to a new, uniquely named file in the target's
directory, flushed to disk (``os.fsync``), renamed over the target with :func:`os.replace`, and
the directory is flushed too (where the OS can open one, i.e. not on Windows). At every moment
the path holds either the previous checkpoint or the new one, complete, whatever happens to the
saving process; two processes saving to one path leave one of their two checkpoints.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamjax._atomic_file import replace_atomically
from adamjax._checkpoint_format import (
    DTYPES_KEY,
    archive_members,
    arrays_to_save,
    as_saved_dtype,
    open_archive,
    read_dtypes,
    read_member,
    write_npz,
)
from adamjax._placement import leaf_sharding

__all__ = ["restore_checkpoint", "save_checkpoint"]


def save_checkpoint(path: str | os.PathLike[str], tree: Any) -> None:
    """Write every leaf of ``tree`` to the ``.npz`` file ``path``, keyed by its tree path.

    The save is atomic. The archive goes to a new file named ``.<name>.<random hex>.tmp`` in
    the directory of ``path``, which is flushed to disk (``os.fsync``) and renamed over ``path``
    (:func:`os.replace`); then the directory is flushed, except on Windows. So:

    * at every moment ``path`` holds the previous checkpoint (or nothing, if there was none) or
      the new one, complete; never a mix or a truncated file;
    * a save that fails (a full disk, a file-size limit, an exception, ``KeyboardInterrupt``)
      removes its temporary file, leaves ``path`` untouched and re-raises;
    * a process killed outright (``SIGKILL``, a crash) may leave its temporary file behind
      (safe to delete), never a damaged ``path``;
    * after a save returns, the new checkpoint survives a power cut on file systems that honor
      ``fsync``;
    * several processes saving to one path each replace it whole: it ends up holding one of
      their checkpoints, and a :func:`restore_checkpoint` running meanwhile reads one of them.

    A symbolic link at ``path`` is kept: the file it points to is replaced. A file that already
    exists at ``path`` keeps its permission bits.

    Args:
        path: file to write (``.npz`` is not appended).
        tree: any pytree of arrays, e.g. ``{"params": params, "opt_state": opt_state,
            "step": step}``. Leaves are fetched to the host; Python numbers are stored in the
            dtype JAX gives them; ``None`` leaves and empty states hold no data and take no
            entry.

    Returns:
        None; the file at ``path`` holds the checkpoint once the call returns.

    Raises:
        TypeError: if a leaf is not an array or number (before any file is created).
        ValueError: if two leaves have the same path (a dict with keys ``1`` and ``"1"``).
        OSError: if the file cannot be written; ``path`` is then unchanged.

    Example:
        >>> import tempfile, os, jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.ones(3)}
        >>> opt_state = adamjax.adam(1e-3).init(params)
        >>> file = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
        >>> adamjax.save_checkpoint(file, {"params": params, "opt_state": opt_state})
    """
    arrays = arrays_to_save(tree)
    replace_atomically(path, lambda file: write_npz(file, arrays))


_BLOCK_FIELDS = (".codes", ".scale")  # the leaves of a moment stored in 8-bit blocks


def _storage_hint(key: str, other: Any) -> str:
    """Why ``key`` has no match on the other side when one side stores that moment in 8-bit
    blocks (``codes``, ``scale``) and the other as one array; otherwise nothing."""
    in_blocks = next((key[: -len(f)] for f in _BLOCK_FIELDS if key.endswith(f)), None)
    if (in_blocks is not None and in_blocks in other) or any(
        key + f in other for f in _BLOCK_FIELDS
    ):
        return (
            ": one side stores this moment in 8-bit blocks (codes, scale), the other as one "
            "array; build the target with the mu_dtype / nu_dtype the checkpoint was saved with"
        )
    return ""


def _check_same_paths(wanted: list[str], saved: dict[str, Any], name: str) -> None:
    """Fail on the first path the target has and the checkpoint lacks, then the reverse."""
    wanted_set = set(wanted)
    for key in wanted:
        if key not in saved:
            hint = _storage_hint(key, saved)
            raise ValueError(f"target{key} has no entry in the checkpoint {name}{hint}")
    for key in saved:
        if key not in wanted_set:
            hint = _storage_hint(key, wanted_set)
            raise ValueError(f"the checkpoint {name} holds {key}, which is not in the target{hint}")


def _shape_and_dtype(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return tuple(leaf.shape), jnp.dtype(leaf.dtype)
    return tuple(jnp.shape(leaf)), jnp.dtype(jnp.result_type(leaf))


def _check_leaf(array: np.ndarray, leaf: Any, key: str) -> None:
    want_shape, want_dtype = _shape_and_dtype(leaf)
    if array.shape != want_shape:
        raise ValueError(
            f"checkpoint{key} has shape {array.shape}, but target{key} has shape {want_shape}"
        )
    if array.dtype != want_dtype:
        raise ValueError(
            f"checkpoint{key} has dtype {array.dtype}, but target{key} has dtype {want_dtype}"
        )


def _read_arrays(name: str, wanted: list[str], leaves: list[Any]) -> list[np.ndarray]:
    """The arrays of the checkpoint ``name`` at the paths ``wanted``, in order, each checked
    against its target leaf before the next is read.

    Raises:
        ValueError: as :func:`restore_checkpoint` lists them.
    """
    with open_archive(name) as archive:
        members = archive_members(archive, name)
        dtypes = read_dtypes(archive, members.pop(DTYPES_KEY), set(members), name)
        _check_same_paths(wanted, members, name)
        arrays = []
        for key, leaf in zip(wanted, leaves, strict=True):
            array = read_member(archive, members[key], name)
            array = as_saved_dtype(array, dtypes[key], key, name)
            _check_leaf(array, leaf, key)
            arrays.append(array)
    return arrays


def _place(arrays: list[np.ndarray], leaves: list[Any]) -> list[jax.Array]:
    """Put each array where its target leaf is, or on the default device, in two batched calls."""
    placements = [leaf_sharding(leaf) for leaf in leaves]
    unplaced = [i for i, placement in enumerate(placements) if placement is None]
    placed = [i for i, placement in enumerate(placements) if placement is not None]
    result: list[Any] = [None] * len(arrays)
    if unplaced:
        for i, value in zip(unplaced, jax.device_put([arrays[i] for i in unplaced]), strict=True):
            result[i] = value
    if placed:
        values = jax.device_put([arrays[i] for i in placed], [placements[i] for i in placed])
        for i, value in zip(placed, values, strict=True):
            result[i] = value
    return result


def restore_checkpoint(path: str | os.PathLike[str], target: Any) -> Any:
    """Read the ``.npz`` file ``path`` back into the structure of ``target``.

    The file is opened once and read whole, so a :func:`save_checkpoint` replacing it meanwhile
    does not affect what is read. The time taken grows linearly with the number of leaves.
    Every path, shape and dtype is checked before any array is placed on a device.

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
        FileNotFoundError: if there is no file at ``path``.
        ValueError: naming the first path that the target has and the checkpoint lacks, that
            the checkpoint has and the target lacks (saying so when one side keeps that moment
            in 8-bit blocks and the other does not), or whose shape or dtype differs (with both
            shapes or dtypes); or naming ``path`` and what is wrong with it if it is not such
            a checkpoint: empty, a single ``.npy`` array, not a zip archive, a zip or ``.npz``
            archive that ``save_checkpoint`` did not write, or a truncated or damaged file.

    Example:
        >>> import tempfile, os, jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.ones(3)}
        >>> optimizer = adamjax.adam(1e-3)
        >>> file = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
        >>> adamjax.save_checkpoint(file, {"params": params, "opt_state": optimizer.init(params)})
        >>> target = {"params": params, "opt_state": optimizer.init(params)}
        >>> restored = adamjax.restore_checkpoint(file, target)
    """
    name = os.fspath(path)
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(target)
    wanted = [jax.tree_util.keystr(key_path) for key_path, _ in leaves_with_path]
    leaves = [leaf for _, leaf in leaves_with_path]
    restored = _place(_read_arrays(name, wanted, leaves), leaves)
    return jax.tree_util.tree_unflatten(treedef, restored)
