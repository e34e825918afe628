"""The checkpoint file format: an uncompressed ``.npz`` archive keyed by tree paths.

Each leaf is one ``.npy`` member named by its tree path (``jax.tree_util.keystr``), as
``numpy.savez`` writes them; a JSON member ``__adamjax_dtypes__`` names every array's dtype.
Dtypes NumPy does not know (bfloat16, float8) are stored as their raw bits in an unsigned
integer of the same width and read back bit for bit. Reading tells apart the ways a file can
fail to be such an archive (empty, a single ``.npy`` array, not a zip, damaged).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib import format as npy_format

__all__ = [
    "DTYPES_KEY",
    "arrays_to_save",
    "as_saved_dtype",
    "archive_members",
    "open_archive",
    "read_dtypes",
    "read_member",
    "write_npz",
]

DTYPES_KEY = "__adamjax_dtypes__"
_MEMBER_SUFFIX = ".npy"  # each array is one uncompressed .npy member, as numpy.savez writes
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_NOT_OURS = "is not a checkpoint written by save_checkpoint"
# what zipfile, zlib and numpy raise on a damaged archive or member
_DAMAGE = (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error)


def _is_native(dtype: np.dtype) -> bool:
    """Whether ``np.save`` round-trips ``dtype`` by itself (bfloat16, float8... do not)."""
    return dtype.kind in "biufc" and dtype == np.dtype(dtype.str)


def arrays_to_save(tree: Any) -> dict[str, np.ndarray]:
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
    arrays[DTYPES_KEY] = np.asarray(json.dumps(dtypes))
    return arrays


def write_npz(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
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


@contextlib.contextmanager
def open_archive(name: str) -> Iterator[zipfile.ZipFile]:
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


def archive_members(archive: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's members keyed by the tree path (or dtypes entry) each holds."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        key = info.filename.removesuffix(_MEMBER_SUFFIX)
        if key == info.filename or key in members:
            raise ValueError(f"{name} holds the entry {info.filename!r}, so it {_NOT_OURS}")
        members[key] = info
    if DTYPES_KEY not in members:
        raise ValueError(f"{name} has no {DTYPES_KEY} entry, so it {_NOT_OURS}")
    return members


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
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


def read_dtypes(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, keys: set[str], name: str
) -> dict[str, str]:
    """The dtype name of every array, from the JSON entry ``save_checkpoint`` writes."""
    text = read_member(archive, info, name)
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
            f"the {DTYPES_KEY} entry of {name} does not name the dtype of every array in it, "
            f"so it {_NOT_OURS}"
        )
    return dtypes


def as_saved_dtype(array: np.ndarray, dtype_name: str, key: str, name: str) -> np.ndarray:
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
