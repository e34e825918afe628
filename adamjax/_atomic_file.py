"""Replacing a file atomically: a new file written beside it, flushed, and renamed over it.

At every moment the path holds either its previous contents or the new ones, complete, whatever
happens to the writing process: the new contents go to a uniquely named file in the target's
directory, flushed to disk (``os.fsync``), renamed over the target with :func:`os.replace`, and
the directory is flushed too (where the OS can open one, i.e. not on Windows). Two processes
replacing one path leave one of their two files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from typing import IO

__all__ = ["replace_atomically"]


def replace_atomically(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Let ``write`` fill a temporary file, flush it, and rename it over ``path``.

    A symbolic link at ``path`` is followed: the file it points to is replaced, the link kept.
    On any failure, the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the file to replace (or create).
        write: writes the new contents to the binary file it is given.

    Raises:
        OSError: whatever creating, writing or renaming raises; ``path`` is then unchanged.
    """
    target = os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)
    descriptor, temporary = _create_file_beside(target)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        _keep_permissions(target, temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _sync_directory(os.path.dirname(target))


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
