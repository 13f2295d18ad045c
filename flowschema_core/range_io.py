"""Every byte distributed mode reads or writes goes through here: ranged reads of the
input, part files, and the commit that joins parts under the final name.

One module so that another storage (fsspec: ``s3://``, ``gs://``) can take its place:
today these are local paths that every node reaches (a shared volume, or one machine).

Commit, per output: the parts are concatenated in range order into a temporary file
beside the final name, by the kernel (``os.copy_file_range``, else ``os.sendfile``; the
bytes never enter Python), made durable, then renamed over the final name. A failed run
removes the temporary file and the staging directory: nothing appears under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import BinaryIO

from .sinks.base import _fsync_directory, remove_path, remove_stale_temps, temp_path


def file_size(path: str) -> int:
    return os.path.getsize(path)


def read_range(path: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of ``path``."""
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


def byte_before(path: str, offset: int) -> int:
    """The byte just before ``offset`` (a newline at the start of the file)."""
    if offset == 0:
        return 10
    return read_range(path, offset - 1, offset)[0]


def make_staging(final_path: str) -> str:
    """A fresh staging directory beside ``final_path`` for its parts (its name says which
    host and process own it, so a later run can remove it if this one is killed)."""
    remove_stale_temps(final_path)
    staging = temp_path(final_path)
    os.makedirs(staging)
    return staging


def write_part(staging: str, name: str, data: bytes) -> str:
    """Write one part under a temporary name and rename it: a part is whole or absent,
    even when its worker is killed while writing it. Returns its name."""
    tmp = os.path.join(staging, f".{name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(staging, name))
    return name


def part_size(staging: str, name: str) -> int | None:
    """The size of part ``name`` in ``staging``, or None if it is not there."""
    try:
        return os.path.getsize(os.path.join(staging, name))
    except OSError:
        return None


class PartWriter:
    """A part written piece by piece (a Parquet unit's batches): like :func:`write_part`,
    under a temporary name renamed when the ``with`` block ends, whole or absent; nothing
    written, no part (``name`` None); an exception in the block removes what was written."""

    def __init__(self, staging: str, name: str) -> None:
        self.path, self.tmp = os.path.join(staging, name), os.path.join(staging, f".{name}.{os.getpid()}.tmp")
        self.file: BinaryIO | None = None
        self.name: str | None = None
        self.size = 0  # bytes written
        self._final = name

    def write(self, data: bytes) -> None:
        if data:
            if self.file is None:
                self.file = open(self.tmp, "wb")  # closed in __exit__
            self.file.write(data)
            self.size += len(data)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self.file is None:
            return
        self.file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
            self.name = self._final
        else:
            remove_path(self.tmp)


def commit(final_path: str, head: bytes, staging: str, parts: Sequence[str], mode_limit: int | None) -> None:
    """``head`` + the parts in order, under ``final_path``, atomically (see the module docstring)."""
    final_path = os.path.abspath(final_path)
    tmp = temp_path(final_path)
    try:
        with open(tmp, "wb") as out:
            out.write(head)
            out.flush()
            for name in parts:
                with open(os.path.join(staging, name), "rb") as part:
                    _copy(part.fileno(), out.fileno(), os.fstat(part.fileno()).st_size)
            if mode_limit is not None:
                os.fchmod(out.fileno(), os.fstat(out.fileno()).st_mode & ((mode_limit & 0o077) | 0o700))
            os.fsync(out.fileno())
        os.replace(tmp, final_path)
        _fsync_directory(os.path.dirname(final_path))
    except BaseException:
        remove_path(tmp)
        raise


def _copy(src: int, dst: int, size: int) -> None:
    """Append ``size`` bytes of ``src`` to ``dst`` inside the kernel."""
    copy = getattr(os, "copy_file_range", None)
    while size > 0:
        try:
            n = copy(src, dst, size) if copy is not None else os.sendfile(dst, src, None, size)
        except OSError:
            if copy is None:
                raise
            copy = None  # another file system: copy_file_range refuses (EXDEV, ENOSYS); sendfile works
            continue
        if n == 0:
            raise OSError(f"a part ended {size} bytes early while it was being committed")
        size -= n


