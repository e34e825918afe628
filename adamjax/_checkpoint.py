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

import contextlib
import errno
import json
import os
import secrets
import stat
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib import format as npy_format

__all__ = ["restore_checkpoint", "save_checkpoint"]

_DTYPES_KEY = "__adamjax_dtypes__"
_MEMBER_SUFFIX = ".npy"  # each array is one uncompressed .npy member, as numpy.savez writes
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_NOT_OURS = "is not a checkpoint written by save_checkpoint"
# what zipfile, zlib and numpy raise on a damaged archive or member
_DAMAGE = (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error)


# --- saving ---------------------------------------------------------------------------------


def _is_native(dtype: np.dtype) -> bool:
    """Whether ``np.save`` round-trips ``dtype`` by itself (bfloat16, float8... do not)."""
    return dtype.kind in "biufc" and dtype == np.dtype(dtype.str)


def _arrays_to_save(tree: Any) -> dict[str, np.ndarray]:
    """The host arrays to write, keyed by tree path, plus the JSON entry naming their dtypes."""
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
    return arrays


def _write_npz(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``file`` as an uncompressed ``.npz`` archive, as ``numpy.savez`` does.

    Raises:
        OSError: whatever writing ``file`` raises (a full disk, a file-size limit).
    """
    archive = zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True)
    try:
        for key, array in arrays.items():
            with archive.open(key + _MEMBER_SUFFIX, "w", force_zip64=True) as member:
                npy_format.write_array(member, array, allow_pickle=False)
    except BaseException:
        with contextlib.suppress(Exception):  # release the archive; its file is discarded
            archive.close()
        raise
    archive.close()


def _create_file_beside(target: str) -> tuple[int, str]:
    """Create a new file with a unique hidden name in ``target``'s directory.

    The file is opened with the default permissions of a new file (``0o666`` less the umask).

    Returns:
        Its descriptor, open for writing, and its path.
    """
    directory, name = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = os.path.join(directory, f".{name[:128]}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue


def _keep_permissions(target: str, temporary: str) -> None:
    """Give ``temporary`` the permission bits of an existing ``target``, as rewriting it would."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return
    os.chmod(temporary, mode)


def _sync_directory(directory: str) -> None:
    """Flush ``directory`` so that a rename in it survives a power cut (skipped on Windows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # the OS does not open directories (Windows)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise  # EINVAL and friends: the file system cannot flush a directory
    finally:
        os.close(descriptor)


def _replace_atomically(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to a temporary file, flush it, and rename it over ``path``.

    A symbolic link at ``path`` is followed: the file it points to is replaced, the link kept.
    On any failure, the temporary file is removed and ``path`` is left as it was.
    """
    target = os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)
    descriptor, temporary = _create_file_beside(target)
    try:
        with os.fdopen(descriptor, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        _keep_permissions(target, temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _sync_directory(os.path.dirname(target))


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
    _replace_atomically(path, _arrays_to_save(tree))


# --- restoring ------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_archive(name: str) -> Iterator[zipfile.ZipFile]:
    """Open the file ``name`` as a zip archive, telling apart the ways it can fail to be one.

    The file is opened once, so a save replacing it meanwhile does not mix two files.
    """
    try:
        file = open(name, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError as error:
        raise FileNotFoundError(errno.ENOENT, f"there is no checkpoint file {name}") from error
    with file:
        head = file.read(len(_NPY_MAGIC))
        if not head:
            raise ValueError(f"{name} is empty (0 bytes), so it {_NOT_OURS}")
        if head == _NPY_MAGIC:
            raise ValueError(
                f"{name} holds a single array in .npy format (numpy.save), so it {_NOT_OURS}"
            )
        file.seek(0)
        try:
            archive = zipfile.ZipFile(file)
        except _DAMAGE as error:
            if head.startswith(_ZIP_MAGIC):
                size = os.fstat(file.fileno()).st_size
                raise ValueError(
                    f"{name} is truncated or damaged: it starts as a zip archive, but its "
                    f"{size:,} bytes do not end with a readable zip directory ({error})"
                ) from error
            raise ValueError(f"{name} is not a zip archive, so it {_NOT_OURS}") from error
        with archive:
            yield archive


def _members(archive: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's members keyed by the tree path (or dtypes entry) each holds."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        key = info.filename.removesuffix(_MEMBER_SUFFIX)
        if key == info.filename or key in members:
            raise ValueError(f"{name} holds the entry {info.filename!r}, so it {_NOT_OURS}")
        members[key] = info
    if _DTYPES_KEY not in members:
        raise ValueError(f"{name} has no {_DTYPES_KEY} entry, so it {_NOT_OURS}")
    return members


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    """Read one ``.npy`` member, checking its CRC.

    Raises:
        ValueError: naming ``name`` and the member, if the member is damaged or holds objects.
    """
    try:
        with archive.open(info) as stream:
            array = npy_format.read_array(stream, allow_pickle=False)
            if stream.read(1):  # reading to the end also checks the member's CRC
                raise ValueError("bytes follow the array")
    except _DAMAGE as error:
        raise ValueError(
            f"{name} is damaged or {_NOT_OURS}: its entry {info.filename!r} cannot be read "
            f"({error})"
        ) from error
    return array


def _read_dtypes(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, keys: set[str], name: str
) -> dict[str, str]:
    """The dtype name of every array, from the JSON entry ``save_checkpoint`` writes."""
    text = _read_member(archive, info, name)
    try:
        dtypes = json.loads(str(text)) if text.dtype.kind == "U" and text.ndim == 0 else None
    except json.JSONDecodeError:
        dtypes = None
    if (
        not isinstance(dtypes, dict)
        or set(dtypes) != keys
        or not all(isinstance(dtype, str) for dtype in dtypes.values())
    ):
        raise ValueError(
            f"the {_DTYPES_KEY} entry of {name} does not name the dtype of every array in it, "
            f"so it {_NOT_OURS}"
        )
    return dtypes


def _check_same_paths(wanted: list[str], saved: dict[str, Any], name: str) -> None:
    """Fail on the first path the target has and the checkpoint lacks, then the reverse."""
    for key in wanted:
        if key not in saved:
            raise ValueError(f"target{key} has no entry in the checkpoint {name}")
    wanted_set = set(wanted)
    for key in saved:
        if key not in wanted_set:
            raise ValueError(f"the checkpoint {name} holds {key}, which is not in the target")


def _shape_and_dtype(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return tuple(leaf.shape), jnp.dtype(leaf.dtype)
    return tuple(jnp.shape(leaf)), jnp.dtype(jnp.result_type(leaf))


def _as_saved_dtype(array: np.ndarray, dtype_name: str, key: str, name: str) -> np.ndarray:
    """Reinterpret the raw bits of a dtype NumPy does not know (bfloat16) as that dtype."""
    try:
        dtype = jnp.dtype(dtype_name)
    except TypeError as error:
        raise ValueError(f"{name} gives checkpoint{key} the unknown dtype {dtype_name!r}") from (
            error
        )
    if array.dtype == dtype:
        return array
    if array.dtype.itemsize != dtype.itemsize:
        raise ValueError(f"{name} is damaged: checkpoint{key} has dtype {array.dtype}, not {dtype}")
    return array.view(dtype)


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


def _placement(leaf: Any) -> jax.sharding.Sharding | None:
    """Where ``leaf`` lives (an array) or is meant to (a ``ShapeDtypeStruct`` with a sharding)."""
    if isinstance(leaf, jax.Array | jax.ShapeDtypeStruct):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, jax.sharding.Sharding):
            return sharding
    return None


def _place(arrays: list[np.ndarray], leaves: list[Any]) -> list[jax.Array]:
    """Put each array where its target leaf is, or on the default device, in two batched calls."""
    placements = [_placement(leaf) for leaf in leaves]
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
            the checkpoint has and the target lacks, or whose shape or dtype differs (with both
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
    with _open_archive(name) as archive:
        members = _members(archive, name)
        dtypes = _read_dtypes(archive, members.pop(_DTYPES_KEY), set(members), name)
        _check_same_paths(wanted, members, name)
        arrays = []
        for key, (_, leaf) in zip(wanted, leaves_with_path, strict=True):
            array = _read_member(archive, members[key], name)
            array = _as_saved_dtype(array, dtypes[key], key, name)
            _check_leaf(array, leaf, key)
            arrays.append(array)
    restored = _place(arrays, [leaf for _, leaf in leaves_with_path])
    return jax.tree_util.tree_unflatten(treedef, restored)
