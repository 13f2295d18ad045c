"""Parquet input: a file, a directory of files, or a glob, read one record batch at a time.

::

    files (sorted) ─► pyarrow.parquet.ParquetFile.iter_batches(batch_rows, columns)
                        └─► columns .to_pylist() ─► rows as value lists (``fields`` set)

Never more than one record batch of one file is held (plus pyarrow's row-group buffer),
so memory does not grow with the file. In a directory, ``key=value`` directory names
(a Hive-style dataset, as :class:`~flowschema_core.sinks.parquet.ParquetSink` writes with
``partition_by``) come back as columns holding the text of the value; the model coerces
them. Columns are matched by name: a file lacking a column gives None for it, columns
beyond the first file's (or ``columns``) are not read.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote

from ..arrow_schema import import_pyarrow
from ..errors import ConfigError, SourceError
from .base import RecordSource

_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


class ParquetSource(RecordSource):
    """Read Parquet rows from ``path``: a file, a directory (every ``*.parquet`` under it,
    recursively, in name order) or a glob pattern (``data/*.parquet``).

    :param columns: read only these columns (in this order); default: all of them.
    :param batch_rows: rows per record batch read from a file.
    """

    def __init__(self, path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, batch_rows: int = 10_000) -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self.columns = list(columns) if columns is not None else None
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be at least 1, not {batch_rows}")
        self.batch_rows = batch_rows
        self.files_read: list[str] = []

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "parquet", "name": self.path, "columns": self.columns}

    def files(self) -> list[tuple[str, dict[str, str | None]]]:
        """The files this source reads, in order, each with its Hive partition values."""
        path = self.path
        if os.path.isfile(path):
            return [(path, {})]
        if os.path.isdir(path):
            found = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
                found += [os.path.join(root, n) for n in sorted(names) if n.endswith(".parquet") and not n.startswith((".", "_"))]
            if not found:
                raise SourceError(f"no .parquet files in the directory {path}")
            return [(f, _partitions(os.path.relpath(os.path.dirname(f), path))) for f in found]
        if glob.has_magic(path):
            found = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))
            if not found:
                raise SourceError(f"no files match {path}")
            return [(f, {}) for f in found]
        raise SourceError(f"Parquet file not found: {path}")

    def records(self) -> Iterator[tuple[int | None, Any]]:
        import_pyarrow()
        import pyarrow.parquet as pq

        files = self.files()
        self.fields = None
        for path, partitions in files:
            try:
                pf = pq.ParquetFile(path)
            except OSError as exc:
                raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
            except Exception as exc:  # ArrowInvalid & co: not Parquet, or corrupt
                raise SourceError(f"{path} is not a readable Parquet file: {exc}") from exc
            with pf:
                names = pf.schema_arrow.names
                if self.fields is None:
                    self.fields = list(self.columns) if self.columns is not None else [*names, *(k for k in partitions if k not in names)]
                wanted = [f for f in self.fields if f in names]
                if self.columns is not None:
                    missing = [c for c in self.columns if c not in names and c not in partitions]
                    if missing:
                        raise SourceError(f"{path} has no column {missing[0]!r}; its columns are {names}")
                self.files_read.append(path)
                done = 0
                batches = pf.iter_batches(batch_size=self.batch_rows, columns=wanted, use_threads=False)
                while True:
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                    except Exception as exc:  # a truncated or corrupt row group
                        raise SourceError(f"{path}: cannot read beyond row {done}: {exc}") from exc
                    n = batch.num_rows
                    by_name = dict(zip(batch.schema.names, batch.columns))
                    cols = []
                    for f in self.fields:
                        if f in by_name:
                            cols.append(by_name[f].to_pylist())
                        else:
                            cols.append([partitions.get(f)] * n)
                    del batch, by_name
                    done += n
                    for row in zip(*cols):
                        yield None, list(row)


def _partitions(relative: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    if relative in ("", "."):
        return out
    for part in relative.split(os.sep):
        key, sep, value = part.partition("=")
        if sep:
            out[unquote(key)] = None if value == _NULL_PARTITION else unquote(value)
    return out
