"""Every byte distributed mode reads or writes goes through here: ranged reads of the
input, part files, and the commit that joins parts under the final name.

A location is a local path that every node reaches (a shared volume, or one machine) or
an ``s3://`` URL reached with its ``storage_options`` (:class:`Place`; the options travel
with it to the actors and are never shown: names go through :func:`storage.display`)::

                      local path                           s3:// URL
    read_range        open, seek, read                     one ranged GET (fs.cat_file)
    make_staging      directory .NAME.HOST-PID-XXXX.tmp/   prefix .NAME.XXXXXXXXXXXX.staging/ (+ a marker object)
    write_part        temp name + rename: whole or absent  one PUT: whole or absent
    commit            join_parts + publish: kernel         one multipart upload (below), completed
                      concatenation, then a rename         by the driver

Commit of a local output: the parts are concatenated in range order into a temporary file
beside the final name, by the kernel (``os.copy_file_range``, else ``os.sendfile``; the
bytes never enter Python), made durable, then renamed over the final name.

Commit of an S3 output: S3 wants every part of a multipart upload but the last to be at
least 5 MiB, and a range's part can be a few bytes (a DLQ part often is). So the driver
groups consecutive staged parts, in range order, into upload parts of at least
:data:`UPLOAD_PART_MIN` bytes (:func:`upload_groups`, from one listing of the staging
prefix); an actor turns each group into upload part ``k`` (:func:`upload_group`: a group
that is one large staged object is copied server-side, ``UploadPartCopy``; a group of
small ones is read and concatenated by the actor and uploaded), and the driver completes
the upload with the part numbers and ETags: record bytes cross actors, never the driver.
An output with no part is one small ``PutObject`` (empty, or the CSV header).

A failed run aborts the upload and removes the staging directory or prefix: nothing
appears under the final name.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import posixpath
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from . import storage
from .errors import SinkError, SourceError
from .redact import redact_text
from .sinks.base import _fsync_directory, remove_path, remove_stale_temps, temp_path

log = logging.getLogger(__name__)

#: S3's smallest upload part (every part but the last).
UPLOAD_PART_MIN = 5 << 20
#: S3's most parts in one upload; groups grow past the minimum to stay under it (with room).
UPLOAD_PARTS_MAX = 9_000
#: URL schemes whose outputs distributed mode commits (a multipart upload).
MULTIPART_SCHEMES = ("s3", "s3a")
#: The object the driver puts in a fresh S3 staging prefix: an actor that sees it reaches
#: the same bucket with working credentials (the probe).
MARKER = "_staging"


@dataclass(frozen=True)
class Place:
    """A location (local path or storage URL) and the ``storage_options`` that reach it.
    Picklable (it travels to the actors); its repr never shows the options."""

    location: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def remote(self) -> bool:
        return storage.is_remote(self.location)

    def join(self, name: str) -> Place:
        joined = posixpath.join(self.location, name) if self.remote else os.path.join(self.location, name)
        return Place(joined, self.storage_options)

    def __str__(self) -> str:
        return storage.display(self.location)


Where = Place | str


def place(where: Where, storage_options: Mapping[str, Any] | None = None) -> Place:
    return where if isinstance(where, Place) else Place(where, dict(storage_options or {}))


def absolute(location: str) -> str:
    """``location`` as the actors must get it: a URL as is, a local path made absolute
    (their working directory is not the driver's)."""
    return location if storage.is_remote(location) else os.path.abspath(location)


def is_multipart(location: str) -> bool:
    """True when an output at ``location`` is committed by a multipart upload (S3)."""
    return storage.scheme(location) in MULTIPART_SCHEMES


def _fs(where: Place) -> tuple[Any, str]:
    return storage.filesystem(where.location, where.storage_options)  # type: ignore[no-any-return]


# -- the input ---------------------------------------------------------------------------


def file_size(path: str, storage_options: Mapping[str, Any] | None = None) -> int:
    if storage.is_remote(path):
        return storage.size(path, storage_options)
    return os.path.getsize(path)


def read_range(path: str, start: int, end: int, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """Bytes ``[start, end)`` of ``path`` (on S3: one ranged GET)."""
    if storage.is_remote(path):
        if end <= start:
            return b""
        fs, key = storage.filesystem(path, storage_options)
        with storage.translated(path, "cannot read", SourceError):
            data = bytes(fs.cat_file(key, start=start, end=end))
        if len(data) != end - start:
            raise SourceError(f"{storage.display(path)}: bytes {start}-{end} came back as {len(data)} bytes; the object "
                              "changed while the run was reading it")
        return data
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


def byte_before(path: str, offset: int, storage_options: Mapping[str, Any] | None = None) -> int:
    """The byte just before ``offset`` (a newline at the start of the file)."""
    if offset == 0:
        return 10
    return read_range(path, offset - 1, offset, storage_options)[0]


@contextlib.contextmanager
def open_input(path: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """The input opened for buffered binary reading from its start (``peek`` works)."""
    f: Any = storage.open_input(path, storage_options) if storage.is_remote(path) else open(path, "rb")
    try:
        yield f
    finally:
        f.close()


def identity(path: str, storage_options: Mapping[str, Any] | None = None) -> list[Any] | None:
    """What a node sees of the input (size and version: an mtime, an ETag), or None."""
    try:
        if storage.is_remote(path):
            return sorted(storage.identity(path, storage_options).items())
        if os.path.isdir(path):  # a Parquet dataset: every file under it but hidden ones (a staging beside the outputs)
            found = []
            for root, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if not storage.hidden(d)]
                found += [[os.path.relpath(os.path.join(root, n), path), *_stat(os.path.join(root, n))] for n in names
                          if not storage.hidden(n)]
            return sorted(found)
        return _stat(path)
    except Exception:  # noqa: BLE001 - not seen from this node, whatever the reason: the probe says so
        return None


def _stat(path: str) -> list[int]:
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns]


def mode_limit(path: str) -> int | None:
    """The permission bits a local output may not exceed (the input's), None for a URL."""
    return None if storage.is_remote(path) else os.stat(path).st_mode & 0o777


# -- staging -----------------------------------------------------------------------------


def make_staging(final: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> Place:
    """A fresh staging place beside ``final`` for its parts. Local: a directory whose name
    says which host and process own it (a later run removes it if this one is killed).
    S3: a prefix ``.NAME.XXXXXXXXXXXX.staging/`` in the same bucket (see :func:`open_staging`)."""
    final = os.fspath(final)
    if not storage.is_remote(final):
        remove_stale_temps(final)
        directory = temp_path(final)
        os.makedirs(directory)
        return Place(directory)
    staging = staging_beside(final, storage_options, uuid.uuid4().hex[:12])
    open_staging(staging, final)
    return staging


def staging_beside(final: str | os.PathLike[str], storage_options: Mapping[str, Any] | None, tag: str) -> Place:
    """The staging place ``.NAME.TAG.staging`` beside ``final`` (its directory, or its
    prefix in the same bucket): a checkpoint's stable one, or a run's own."""
    final = os.fspath(final)
    if storage.is_remote(final):
        parent, base = posixpath.split(final)
        return Place(posixpath.join(parent, f".{base}.{tag}.staging"), dict(storage_options or {}))
    final = os.path.abspath(final)
    return Place(os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.{tag}.staging"))


def open_staging(staging: Place, final: str) -> None:
    """Make ``staging`` ready for the parts of the output ``final`` (it may hold some
    already): a local directory; on S3 a marker object, written now so that a refused bucket
    fails the run before any work, with the output named."""
    if not staging.remote:
        os.makedirs(staging.location, exist_ok=True)
        return
    fs, path = _fs(staging.join(MARKER))
    with storage.translated(final, "cannot write", SinkError):
        fs.pipe_file(path, b"")


def staging_visible(staging: Where) -> bool:
    """True when this node sees the staging place the driver made (the probe)."""
    staging = place(staging)
    if not staging.remote:
        return os.path.isdir(staging.location)
    try:
        fs, path = _fs(staging.join(MARKER))
        return bool(fs.exists(path))
    except Exception:  # noqa: BLE001 - unreachable from this node: the probe says so
        return False


def write_part(staging: Where, name: str, data: bytes) -> str:
    """Write one part, whole or absent even when its worker is killed while writing it
    (local: a temporary name, then a rename; S3: one PUT). Returns its name."""
    staging = place(staging)
    if staging.remote:
        fs, path = _fs(staging.join(name))
        with storage.translated(staging.location, "cannot write a part under", SinkError):
            fs.pipe_file(path, data)
        return name
    tmp = os.path.join(staging.location, f".{name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(staging.location, name))
    return name


def part_size(staging: Where, name: str) -> int | None:
    """The size of part ``name`` in ``staging``, or None if it is not there."""
    where = place(staging).join(name)
    try:
        if where.remote:
            fs, path = _fs(where)
            fs.invalidate_cache(path)
            return int(fs.size(path))
        return os.path.getsize(where.location)
    except (OSError, FileNotFoundError):
        return None


class PartWriter:
    """A part written piece by piece (a Parquet unit's batches): like :func:`write_part`,
    whole or absent — locally under a temporary name renamed when the ``with`` block ends,
    on S3 gathered and sent as one PUT then (a part is one unit's output); nothing
    written, no part (``name`` None); an exception in the block removes what was written."""

    def __init__(self, staging: Where, name: str) -> None:
        self.staging, self._final = place(staging), name
        self.path = self.staging.join(name).location
        self.tmp = os.path.join(self.staging.location, f".{name}.{os.getpid()}.tmp")
        self.file: BinaryIO | None = None
        self.buffer: list[bytes] | None = [] if self.staging.remote else None
        self.name: str | None = None
        self.size = 0  # bytes written

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.buffer is not None:
            self.buffer.append(data)
        else:
            if self.file is None:
                self.file = open(self.tmp, "wb")  # closed in __exit__
            self.file.write(data)
        self.size += len(data)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self.buffer is not None:
            if kind is None and self.size:
                self.name = write_part(self.staging, self._final, b"".join(self.buffer))
            self.buffer = []
            return
        if self.file is None:
            return
        self.file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
            self.name = self._final
        else:
            remove_path(self.tmp)


def remove_stagings(stagings: Sequence[Where], *, settle: float = 0.0) -> None:
    """Remove the staging places; with ``settle`` (after a failed run) remove the S3 ones
    again and again for that many seconds: a PUT an actor had sent just before it was killed
    can still land, since the store finishes a request whose sender died. (A local part
    cannot: its directory is gone, see :func:`remove_staging`.)"""
    deadline = time.monotonic() + settle
    while True:
        for staging in stagings:
            remove_staging(staging)
        if time.monotonic() >= deadline or not any(place(s).remote for s in stagings):
            return
        time.sleep(0.25)


def remove_staging(staging: Where) -> None:
    """Remove a staging directory or prefix and what is in it (best effort on S3: a prefix
    that cannot be removed holds only invisible parts, never the final name)."""
    staging = place(staging)
    if not staging.remote:
        # An actor killed a moment ago may still be renaming a part in: the tree is removed
        # again until it is gone (once it is, a late part has no directory to land in).
        deadline = time.monotonic() + 10
        remove_path(staging.location)
        while os.path.exists(staging.location) and time.monotonic() < deadline:
            time.sleep(0.05)
            remove_path(staging.location)
        if os.path.exists(staging.location):
            log.warning("could not remove the staging directory %s (it holds only parts, never an output): remove it by hand",
                        staging.location)
        return
    try:
        fs, path = _fs(staging)
        fs.invalidate_cache(path)
        fs.rm(path, recursive=True)
        fs.invalidate_cache(path)
    except FileNotFoundError:
        pass  # nothing (more) was staged
    except Exception as exc:  # noqa: BLE001 - the run's own outcome is what to report; this is housekeeping
        log.warning("could not remove the staging prefix %s (%s: %s); it holds only parts, never an output: remove it, or let "
                    "a lifecycle rule on the prefix do it", staging, type(exc).__name__, redact_text(str(exc)))


# -- commit: local -----------------------------------------------------------------------


def join_parts(final_path: str, head: bytes, staging: Where, parts: Sequence[str], mode_limit: int | None) -> str:
    """``head`` + the parts in order in a temporary file beside the local ``final_path``,
    synced; its path, for :func:`publish` (or :func:`remove_path` when the run fails)."""
    directory = place(staging).location
    tmp = temp_path(os.path.abspath(final_path))
    try:
        with open(tmp, "wb") as out:
            out.write(head)
            out.flush()
            for name in parts:
                with open(os.path.join(directory, name), "rb") as part:
                    _copy(part.fileno(), out.fileno(), os.fstat(part.fileno()).st_size)
            if mode_limit is not None:
                os.fchmod(out.fileno(), os.fstat(out.fileno()).st_mode & ((mode_limit & 0o077) | 0o700))
            os.fsync(out.fileno())
    except BaseException as exc:
        remove_path(tmp)
        if isinstance(exc, OSError):
            raise SinkError(f"cannot commit {final_path} from its parts under {directory}: {exc}; nothing was written under "
                            "that name (was the staging directory removed, or is the disk full?)") from exc
        raise
    return tmp


def publish(tmp: str, final_path: str) -> None:
    """Give a file joined by :func:`join_parts` its final name, at once and durably."""
    final_path = os.path.abspath(final_path)
    try:
        os.replace(tmp, final_path)
        _fsync_directory(os.path.dirname(final_path))
    except OSError as exc:
        raise SinkError(f"cannot publish {final_path}: {exc}") from exc


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


# -- commit: S3 multipart upload ---------------------------------------------------------

#: One upload part to make: its staged parts in order, as (name, size).
Group = list[tuple[str, int]]


def part_sizes(staging: Where) -> dict[str, int]:
    """The size of every object under the staging prefix (one listing, not one request a part)."""
    staging = place(staging)
    fs, path = _fs(staging)
    with storage.translated(staging.location, "cannot list the parts under", SinkError):
        fs.invalidate_cache(path)  # parts were written by other processes
        found = fs.find(path, detail=True)
    return {posixpath.basename(key): int(info["size"]) for key, info in found.items()}


def upload_groups(sizes: Sequence[tuple[str, int]], minimum: int = UPLOAD_PART_MIN) -> list[Group]:
    """Consecutive staged parts, in order, grouped into upload parts of at least
    ``minimum`` bytes (the last may be smaller; larger groups when there are so many
    bytes that minimum-sized parts would pass S3's part count)."""
    total = sum(size for _, size in sizes)
    target = max(minimum, math.ceil(total / UPLOAD_PARTS_MAX))
    groups: list[Group] = []
    current: Group = []
    filled = 0
    for name, size in sizes:
        current.append((name, size))
        filled += size
        if filled >= target:
            groups.append(current)
            current, filled = [], 0
    if current:
        groups.append(current)
    return groups


def copied(group: Group, head: bytes = b"") -> bool:
    """True when ``group`` becomes its upload part by a server-side copy: one staged
    object large enough to be a part on its own, and nothing to put before it."""
    return not head and len(group) == 1 and group[0][1] >= UPLOAD_PART_MIN


def upload_group(upload: storage.MultipartUpload, number: int, staging: Where, group: Group, head: bytes = b"") -> dict[str, Any]:
    """Upload part ``number`` of ``upload``: ``head`` + the staged parts of ``group``.
    One large staged object alone is copied server-side (no byte read here); otherwise
    this process reads the group's objects and uploads them joined. Runs in an actor;
    uploading the same number again (a redone task) replaces the part."""
    staging = place(staging)
    if copied(group, head):
        return upload.copy_part(number, staging.join(group[0][0]).location)
    pieces = [head]
    for name, _ in group:
        fs, path = _fs(staging.join(name))
        with storage.translated(staging.location, "cannot read the parts under", SinkError):
            pieces.append(bytes(fs.cat_file(path)))
    body = b"".join(pieces)
    del pieces
    expected = len(head) + sum(size for _, size in group)
    if len(body) != expected:
        raise SinkError(f"{staging}: upload part {number} holds {len(body)} bytes, its parts were listed as {expected}")
    return upload.upload_part(number, body)


def put_object(final: Place, data: bytes) -> None:
    """An output of no part: one PutObject (empty, or only the CSV header)."""
    fs, path = _fs(final)
    with storage.translated(final.location, "cannot write", SinkError):
        fs.pipe_file(path, data)
        fs.invalidate_cache(path)
