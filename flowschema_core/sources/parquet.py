"""Parquet input: a file, a directory of files, or a glob, read one record batch at a time.

::

    files (sorted) ─► pyarrow.parquet.ParquetFile.iter_batches(batch_rows, columns)
                        └─► record batches, sliced to ~chunk_bytes ─► Arrow IPC chunks

The driver never builds a Python object per value: chunks travel as Arrow IPC bytes and
the workers turn columns into records. Never more than one chunk's batches of one file
are held (plus pyarrow's row-group buffer), so memory does not grow with the file. In a directory, ``key=value`` directory names
(a Hive-style dataset, as :class:`~flowschema_core.sinks.parquet.ParquetSink` writes with
``partition_by``) come back as columns holding the text of the value; the model coerces
them. Columns are matched by name: a file lacking a column gives None for it, columns
beyond the first file's (or ``columns``) are not read.
"""

from __future__ import annotations

import contextlib
import glob
import os
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .. import codec, storage
from ..arrow_schema import import_pyarrow
from ..errors import ConfigError, FlowSchemaError, SourceError
from ..kinds import arrow as arrow_kind
from ..units import parse_size
from .base import Source, oversized_record

_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


class ParquetSource(Source):
    """Read Parquet rows from ``path``: a file, a directory (every ``*.parquet`` under it,
    recursively, in name order) or a glob pattern (``data/*.parquet``).

    :param columns: read only these columns (in this order); default: all of them.
    :param batch_rows: rows per record batch read from a file.
    :param storage_options: for a URL (``s3://bucket/data/``, ``gs://…/*.parquet``): the
        fsspec filesystem's options; files are read with ranged requests (footer, then the
        row groups' column chunks), see :mod:`flowschema_core.storage`.
    :param max_record_bytes: a row group whose rows average more than this, uncompressed
        (its metadata says so before anything is read), is not decompressed: each of its
        rows becomes a ``parse`` DLQ record saying why. A few kilobytes of Parquet can hold
        gigabytes of text, and pyarrow inflates a row group's column whole.
    """

    def __init__(self, path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, batch_rows: int = 10_000,
                 storage_options: Mapping[str, Any] | str | None = None, max_record_bytes: int | str = "64MiB") -> None:
        self.path = storage.local_path(path)
        self.max_record_bytes = parse_size(max_record_bytes, name="max_record_bytes")
        self.name = storage.display(self.path)
        self.storage_options = storage.options(storage_options)
        self.columns = list(columns) if columns is not None else None
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be at least 1, not {batch_rows}")
        self.batch_rows = batch_rows
        self.files_read: list[str] = []
        self.fields: list[str] | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "parquet", "name": self.path, "columns": self.columns}

    def files(self) -> list[tuple[str, dict[str, str | None]]]:
        """The files this source reads, in order, each with its Hive partition values."""
        path = self.path
        if storage.is_remote(path):
            return self._remote_files()
        if os.path.isfile(path):
            return [(path, {})]
        if os.path.isdir(path):
            found = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not storage.hidden(d))
                found += [os.path.join(root, n) for n in sorted(names) if n.endswith(".parquet") and not storage.hidden(n)]
            if not found:
                raise SourceError(f"no .parquet files in the directory {path}")
            return [(f, _partitions(os.path.relpath(os.path.dirname(f), path))) for f in found]
        if glob.has_magic(path):
            found = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))
            if not found:
                raise SourceError(f"no files match {path}")
            return [(f, {}) for f in found]
        raise SourceError(f"Parquet file not found: {path}")

    def _remote_files(self) -> list[tuple[str, dict[str, str | None]]]:
        """As :meth:`files`, on an object store: one object, a prefix ("directory") or a glob."""
        fs, root = storage.filesystem(self.path, self.storage_options)
        with storage.translated(self.path, "cannot list", SourceError):
            if glob.has_magic(root):
                found = sorted(f for f in fs.glob(root) if f.endswith(".parquet"))
                if not found:
                    raise SourceError(f"no .parquet files match {self.name}")
                return [(fs.unstrip_protocol(f), {}) for f in found]
            if fs.isfile(root):
                return [(self.path, {})]
            base = root.rstrip("/")
            found = sorted(f for f in fs.find(base) if f.endswith(".parquet")
                           and not storage.hidden(posixpath.relpath(f, base)))
        if not found:
            raise SourceError(f"Parquet file not found: {self.name} (no object, and no .parquet files under it)")
        return [(fs.unstrip_protocol(f), _partitions(posixpath.dirname(posixpath.relpath(f, base)), "/")) for f in found]

    def chunks(self, target_bytes: int) -> Iterator[tuple[bytes, int]]:
        pending: list[Any] = []
        size = 0
        for batch in self._batches():
            if isinstance(batch, OversizedGroup):
                if pending:
                    yield self._chunk(pending)
                    pending, size = [], 0
                for _ in range(batch.rows):
                    yield oversized_record(None, batch.row_bytes, b"", self.max_record_bytes, what=batch.what)
                continue
            if pending and batch.schema != pending[0].schema:
                yield self._chunk(pending)  # an IPC stream holds one schema
                pending, size = [], 0
            # Slice big batches so a chunk stays near target_bytes.
            per_row = max(1, batch.nbytes // max(batch.num_rows, 1))
            offset = 0
            while offset < batch.num_rows:
                take = max(1, (target_bytes - size) // per_row)
                piece = batch.slice(offset, take)
                offset += piece.num_rows
                pending.append(piece)
                size += piece.num_rows * per_row
                if size >= target_bytes:
                    yield self._chunk(pending)
                    pending, size = [], 0
        if pending:
            yield self._chunk(pending)

    def records(self) -> Iterator[tuple[int | None, Any]]:
        """``(None, row)`` with rows as value lists in ``fields`` order: for looking at a
        source by hand (a pipeline run ships Arrow chunks instead)."""
        for batch in self._batches():
            if isinstance(batch, OversizedGroup):
                raise SourceError(f"{batch.what} {batch.row_bytes:,} bytes, more than max_record_bytes={self.max_record_bytes:,}")
            for row in zip(*(column.to_pylist() for column in batch.columns)):
                yield None, list(row)

    def _chunk(self, batches: list[Any]) -> tuple[bytes, int]:
        return codec.encode(arrow_kind.chunk(batches, list(self.fields or [])))

    def _batches(self) -> Iterator[Any]:
        """Record batches with exactly ``self.fields`` as columns, file after file."""
        pa = import_pyarrow()
        files = self.files()
        self.fields = None
        for path, partitions in files:
            with contextlib.ExitStack() as opened:
                pf = self.open_file(path, opened)
                yield from self._file_batches(pa, pf, path, partitions)

    def open_file(self, path: str, opened: contextlib.ExitStack) -> Any:
        """``path`` as a ParquetFile, closed with ``opened`` (a URL: a ranged-read file)."""
        import pyarrow.parquet as pq

        where: Any = path
        if storage.is_remote(path):
            where = opened.enter_context(storage.open_input(path, self.storage_options))
            path = storage.display(path)
        try:
            return opened.enter_context(pq.ParquetFile(where))
        except FlowSchemaError:
            raise
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except Exception as exc:  # ArrowInvalid & co: not Parquet, or corrupt
            raise SourceError(f"{path} is not a readable Parquet file: {exc}") from exc

    def _file_batches(self, pa: Any, pf: Any, path: str, partitions: dict[str, str | None]) -> Iterator[Any]:
        """The record batches of one open file, with exactly ``self.fields`` as columns."""
        path = storage.display(path)
        wanted = self.columns_read(pf.schema_arrow.names, partitions, path)
        self.files_read.append(path)
        done = 0
        for group, (rows, read_bytes) in enumerate(row_group_sizes(pf, wanted)):
            oversized = self.oversized(group, path, rows, read_bytes)
            if oversized is not None:  # in the row group's place
                yield oversized
                done += rows
                continue
            for batch in self.group_batches(pa, pf, group, wanted, path, done, partitions):
                done += batch.num_rows
                yield batch

    def columns_read(self, names: list[str], partitions: dict[str, str | None], path: str) -> list[str]:
        """The columns to read from a file whose columns are ``names`` (the first file read
        sets ``fields``); a SourceError if it lacks one of ``columns``."""
        if self.fields is None:
            self.fields = list(self.columns) if self.columns is not None else [*names, *(k for k in partitions if k not in names)]
        if self.columns is not None:
            missing = [c for c in self.columns if c not in names and c not in partitions]
            if missing:
                raise SourceError(f"{path} has no column {missing[0]!r}; its columns are {names}")
        return [f for f in self.fields if f in names]

    def oversized(self, group: int, path: str, rows: int, read_bytes: int) -> OversizedGroup | None:
        """The row group, if its rows average more than ``max_record_bytes`` (then it is not read)."""
        row_bytes = read_bytes // max(rows, 1)
        return OversizedGroup(group, path, rows, row_bytes) if row_bytes > self.max_record_bytes else None

    def group_batches(self, pa: Any, pf: Any, group: int, wanted: list[str], path: str, done: int,
                      partitions: dict[str, str | None]) -> Iterator[Any]:
        """Row group ``group``'s record batches with exactly ``fields`` as columns (``done``:
        the file's rows before them, for the message if the group is corrupt)."""
        assert self.fields is not None
        batches = pf.iter_batches(batch_size=self.batch_rows, row_groups=[group], columns=wanted, use_threads=False)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as exc:  # a truncated or corrupt row group
                raise SourceError(f"{path}: cannot read beyond row {done}: {exc}") from exc
            n = batch.num_rows
            by_name = dict(zip(batch.schema.names, batch.columns))
            arrays = [
                by_name[f] if f in by_name else pa.array([partitions.get(f)] * n, pa.string())
                for f in self.fields
            ]
            done += n
            yield pa.RecordBatch.from_arrays(arrays, names=self.fields)


def row_group_sizes(pf: Any, wanted: list[str]) -> list[tuple[int, int]]:
    """Each row group's rows and the uncompressed bytes of its columns in ``wanted``, from
    the footer (nothing is decompressed). Only the columns read count: a large column left
    out costs nothing."""
    wanted_set = set(wanted)
    sizes = []
    for group in range(pf.metadata.num_row_groups):
        meta = pf.metadata.row_group(group)
        read_bytes = sum(column.total_uncompressed_size for column in map(meta.column, range(meta.num_columns))
                         if column.path_in_schema.split(".", 1)[0] in wanted_set)
        sizes.append((meta.num_rows, read_bytes))
    return sizes


@dataclass(frozen=True)
class OversizedGroup:
    """A row group too large to read: ``rows`` rows of about ``row_bytes`` each."""

    group: int
    path: str
    rows: int
    row_bytes: int

    @property
    def what(self) -> str:
        """How the reason of each of its rows' DLQ records begins."""
        return f"a row of row group {self.group} of {self.path} averages"


def _partitions(relative: str, separator: str = os.sep) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    if relative in ("", "."):
        return out
    for part in relative.split(separator):
        key, sep, value = part.partition("=")
        if sep:
            out[unquote(key)] = None if value == _NULL_PARTITION else unquote(value)
    return out
