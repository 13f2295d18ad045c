"""The source interface.

A source reads one input and cuts it into chunks of about ``target_bytes`` of msgpack,
already encoded for the wire: it yields ``(blob, n)`` pairs where ``n`` is the msgpack
payload length the ledger counts. Being the chunker lets each format keep per-record
work off the driver: CSV and JSON Lines sources ship raw byte blocks cut at record
boundaries (workers parse them); formats that must be parsed on the driver (JSON arrays,
Parquet, SQL, Excel, HTTP) subclass :class:`RecordSource` and yield records.

A record the source cannot parse is not dropped: it travels in its chunk as a *parse
failure* so it reaches the DLQ with its number and raw text. A file that cannot be read
at all raises :class:`~flowschema_core.errors.SourceError`.

How far a source has read is its :attr:`Source.read_progress` (a :class:`ReadProgress`:
bytes read of the input and the input's size), which the progress line turns into a
fraction done and an ETA. A source that reads a file through :func:`open_input` gets it
by passing one; other sources leave it None (no ETA).
"""

from __future__ import annotations

import abc
import io
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import codec, storage
from ..errors import SourceError
from ..kinds import rows as rows_kind
from . import compression


@dataclass(frozen=True)
class ParseFailure:
    """A record the source could not turn into a dict: why, and what it read."""

    reason: str
    raw_text: str | None = None


class ReadProgress:
    """How far a source has read its input: ``done`` bytes of ``total`` (None when the
    size is unknown: a pipe, a socket, a query). Written by the reader thread, read by the
    progress sampler; both are plain ints, so no lock is needed to read a whole value."""

    __slots__ = ("done", "total")

    def __init__(self, total: int | None = None) -> None:
        self.done = 0
        self.total = total

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], or None when the size is unknown (or zero)."""
        return min(1.0, self.done / self.total) if self.total else None


class Source(abc.ABC):
    """Base class of every source."""

    #: Shown in DLQ records and the run report (usually the path or URL).
    name: str = ""
    #: What reading noticed and handled (an encoding detected, blank header cells named):
    #: copied into the run report. Sources that note things set their own list.
    notes: Sequence[str] = ()
    #: How far reading has got, for the progress line's ETA; None when the source cannot
    #: tell. A source sets it when it opens its input (see :func:`open_input`); it must be
    #: cheap to read from another thread (no per-record work: update it per block read).
    read_progress: ReadProgress | None = None

    @abc.abstractmethod
    def chunks(self, target_bytes: int) -> Iterator[tuple[bytes, int]]:
        """Yield ``(blob, n)`` chunks of about ``target_bytes`` msgpack bytes, in order."""

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this input (used to refuse a checkpoint from another source)."""
        return {"kind": type(self).__name__, "name": self.name}

    def worker_context(self, limit: int) -> dict[str, Any] | None:
        """What every worker needs for this run's chunks besides the chunks themselves
        (an Excel workbook's shared strings), or None. Called once per run, before
        :meth:`chunks`; it travels once to each worker and counts against the byte budget
        for the whole run, so it must pack to at most ``limit`` msgpack bytes."""
        return None

    def close(self) -> None:
        """Release what the source holds (files, connections). Safe to call twice."""

    def position(self) -> Any:
        """Where a resumed read would start after the chunk just yielded (JSON-safe), for
        a checkpoint; None when this source resumes by reading again and skipping chunks."""
        return None

    def seek(self, position: Any) -> None:
        """Make the next read start at ``position`` (a value :meth:`position` returned)."""
        raise SourceError(f"{self.name}: this source cannot seek; a resumed run reads it again and skips what was done")


class RecordSource(Source):
    """A source whose records are parsed on the driver; subclasses implement ``records``.

    Chunks are sized adaptively: the rows per chunk follow the msgpack size measured on
    the chunks already sent, so a chunk stays near ``target_bytes`` whatever the rows hold.
    """

    #: Field names shared by every record (rows then travel as value lists), or None.
    fields: list[str] | None = None
    #: ``{"mode": ..., "tokens": [...]}`` when empty cells follow the null policy
    #: (:mod:`flowschema_core.nulls`): set by text-like sources such as Excel.
    nulls: dict[str, Any] | None = None

    @abc.abstractmethod
    def records(self) -> Iterator[tuple[int | None, Any]]:
        """Yield ``(line, record)`` where record is a dict (or value list matching
        ``fields``) or a :class:`ParseFailure`; ``line`` is None for formats without lines."""

    def _nulls(self) -> dict[str, Any] | None:
        # The null policy needs the header (known once reading began): rows read without
        # one (dicts keyed by column) keep their empty cells as read, as Excel's fast path does.
        return self.nulls if self.fields is not None else None

    def chunks(self, target_bytes: int) -> Iterator[tuple[bytes, int]]:
        rows_per_chunk = 256  # first guess; corrected from the first chunk's real size
        rows: list[Any] = []
        lines: list[int] = []
        bad: list[list[Any]] = []
        has_lines = False
        for line, record in self.records():
            if isinstance(record, ParseFailure):
                bad.append([len(rows), record.reason, record.raw_text])
                record = None
            rows.append(record)
            lines.append(line)  # type: ignore[arg-type]
            has_lines = has_lines or line is not None
            if len(rows) >= rows_per_chunk:
                blob, n = codec.encode(rows_kind.chunk(rows, self.fields, lines if has_lines else None, bad, self._nulls()))
                yield blob, n
                rows_per_chunk = max(1, min(1_000_000, int(len(rows) * target_bytes / max(n, 1))))
                rows, lines, bad = [], [], []
        if rows:
            yield codec.encode(rows_kind.chunk(rows, self.fields, lines if has_lines else None, bad, self._nulls()))


def oversized_record(line: int | None, size: int, head: bytes, limit: int, encoding: str = "utf-8", *, what: str = "record of") -> tuple[bytes, int]:
    """A one-record chunk saying a record was too large to read (it goes to the DLQ with
    stage ``parse`` and its first KiB), so a giant record costs no memory."""
    reason, text = oversized_reason(size, head, limit, encoding, what=what)
    return codec.encode(rows_kind.chunk([None], None, [line] if line is not None else None, [[0, reason, text]]))


def oversized_reason(size: int, head: bytes, limit: int, encoding: str = "utf-8", *, what: str = "record of") -> tuple[str, str]:
    """The DLQ reason and raw text of a record too large to read (see :func:`oversized_record`)."""
    reason = f"{what} {size:,} bytes, larger than max_record_bytes={limit:,}; it was skipped"
    return reason, head[:1024].decode(encoding, "backslashreplace") + "..."


def open_input(path: str | os.PathLike[str], what: str, progress: ReadProgress | None = None,
               storage_options: Mapping[str, Any] | None = None) -> Any:
    """Open a local file, or a URL through fsspec (:mod:`flowschema_core.storage`, with
    ``storage_options``), for binary reading, or raise a SourceError that names it.

    With ``progress``, its ``total`` becomes the file's size (when it is a regular file)
    and ``done`` follows the bytes read from the file, counted once per block read from
    the disk (compressed bytes for a compressed file, so the fraction stays right)."""
    path = os.fspath(path)
    if storage.is_remote(path):
        return _decompressed(storage.open_input(path, storage_options, progress=progress))
    if not os.path.exists(path):
        raise SourceError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise SourceError(f"{what} is a directory, not a file: {path}")
    try:
        raw = open(path, "rb") if progress is None else _counted(path, progress)
    except OSError as exc:
        raise SourceError(f"cannot open {what} {path}: {exc.strerror}") from exc
    return _decompressed(raw)


def _decompressed(raw: Any) -> Any:
    """``raw`` (a buffered binary file), or its decompressed stream when it is compressed."""
    # The compression is told by its magic bytes. peek() does not consume, so pipes and
    # /dev/stdin work too.
    try:
        kind = compression.detect(raw.peek(8)[:8])
        return raw if kind is None else compression.open_decompressed(raw, kind)
    except BaseException:
        raw.close()
        raise


class _CountingFile(io.RawIOBase):
    """A raw file that keeps a :class:`ReadProgress` at its position (one update per
    block the buffered reader above it asks for, never per record)."""

    def __init__(self, raw: io.FileIO, progress: ReadProgress) -> None:
        super().__init__()
        self._raw, self._progress = raw, progress

    @property
    def name(self) -> Any:
        return self._raw.name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        n = self._raw.readinto(buffer)
        if n:
            self._progress.done += n
        return n

    def readall(self) -> bytes:
        data = self._raw.readall()
        self._progress.done += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._raw.seek(offset, whence)
        self._progress.done = position
        return position

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


def _counted(path: str, progress: ReadProgress) -> io.BufferedReader:
    raw = io.FileIO(path, "rb")
    info = os.fstat(raw.fileno())
    progress.done = 0
    progress.total = info.st_size if stat.S_ISREG(info.st_mode) else None
    return io.BufferedReader(_CountingFile(raw, progress), buffer_size=max(io.DEFAULT_BUFFER_SIZE, getattr(info, "st_blksize", 0) or 0))
