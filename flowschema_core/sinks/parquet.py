"""Parquet output, typed from the model: one file, or a Hive-style partitioned dataset.

::

    chunk of value lists ─► per-column converters ─► pyarrow arrays (typed by the model)
        │  a value the Arrow type cannot hold (int > 64 bits, a Decimal beyond its scale)
        │  → that row is refused: the driver sends it to the DLQ with stage "sink"
        ▼
    one file:      .name.xxxx.tmp ──(commit: close, fsync, rename)──► name.parquet
    partition_by:  .name.xxxx.tmp/col=value/part-0.parquet ──(commit: rename dir)──► name/

Each chunk becomes one row group (or, with ``row_group_rows``, rows are gathered into row
groups of that many rows). Nothing appears under the final name before ``commit()``;
``abort()`` removes the temporary output. The Arrow schema comes from
:mod:`flowschema_core.arrow_schema`; used as a DLQ, every column is text (JSON for nested
values).
"""

from __future__ import annotations

import os
import shutil
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from .. import storage
from ..arrow_schema import arrow_schema, converter, import_pyarrow, json_text
from ..errors import ConfigError, SinkError
from ..model_types import field_types
from .base import RowSink, remove_path, remove_stale_temps, temp_path

#: The directory name Hive (and pyarrow, Spark, DuckDB) use for a null partition value.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
#: At most this many partition files are open at once; the least recently used is
#: closed beyond it (its partition then continues in a new ``part-N`` file).
MAX_OPEN_FILES = 256
_PARTITION_KINDS = ("int", "bool", "str", "decimal", "datetime", "date", "time", "uuid", "enum", "literal")


class ParquetSink(RowSink):
    """Write valid rows to ``path`` as Parquet, with an Arrow schema derived from the model.

    :param partition_by: column names; writes ``path/col=value/.../part-N.parquet``
        (Hive style, values URL-quoted, null as ``__HIVE_DEFAULT_PARTITION__``). The
        partition columns are then stored in the directory names only, as Hive does.
    :param row_group_rows: rows per row group; default: one row group per chunk.
    :param compression: any codec pyarrow knows: "zstd", "snappy", "gzip", "lz4", "none".
    :param storage_options: for a URL (``s3://bucket/clean/orders.parquet``): the fsspec
        filesystem's options; the file appears on commit (:mod:`flowschema_core.storage`).
        ``partition_by`` needs a local directory.
    """


    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        partition_by: Sequence[str] | None = None,
        row_group_rows: int | None = None,
        compression: str = "zstd",
        storage_options: Mapping[str, Any] | str | None = None,
    ) -> None:
        self.path = storage.local_path(path)
        self.name = storage.display(self.path)
        self.storage_options = storage.options(storage_options)
        self.partition_by = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
        if row_group_rows is not None and row_group_rows < 1:
            raise ConfigError(f"row_group_rows must be at least 1, not {row_group_rows}")
        self.row_group_rows = row_group_rows
        self.compression = compression
        self._tmp: str | None = None
        self._output: storage.StagedOutput | None = None  # a URL's staged output (one file)
        self._writers: OrderedDict[tuple[Any, ...], _PartWriter] = OrderedDict()
        self._parts_started: dict[tuple[Any, ...], int] = {}
        self.rows_written = 0

    # -- lifecycle -------------------------------------------------------------------
    def open(self, fields: list[str], model: type[BaseModel] | None = None) -> None:
        pa = import_pyarrow()
        self._fields = list(fields)
        if model is not None:
            schema = arrow_schema(model)
            types = field_types(model)
            self._convert = [converter(types[f]) for f in self._fields]
        else:  # the DLQ: every column text
            schema = pa.schema([pa.field(f, pa.string()) for f in self._fields])
            types = {}
            self._convert = [json_text] * len(self._fields)
        self._schema = schema
        unknown = [c for c in self.partition_by if c not in self._fields]
        if unknown:
            raise ConfigError(f"{self.path}: partition_by names unknown columns {unknown}; the columns are {self._fields}")
        for c in self.partition_by:
            if types and types[c].kind not in _PARTITION_KINDS:
                raise ConfigError(f"{self.path}: cannot partition by {c!r}, a {types[c].kind} column; use a scalar column")
        self._part_idx = [self._fields.index(c) for c in self.partition_by]
        keep = [i for i in range(len(self._fields)) if i not in self._part_idx]
        self._data_idx = keep
        self._data_schema = pa.schema([schema.field(i) for i in keep])
        if storage.is_remote(self.path):
            if self.partition_by:
                raise ConfigError(f"{self.name}: partition_by writes a local directory of files; write the dataset locally, "
                                  "or drop partition_by to write one Parquet file to the URL")
            self._output = storage.open_output(self.path, self.storage_options)
            self._tmp = self.path  # open; the writer goes into the staged output
            self._writer_for(())
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create the directory for {self.path}: {exc.strerror}") from exc
        remove_stale_temps(self.path)
        self._tmp = temp_path(self.path)
        if self.partition_by:
            if os.path.isfile(self.path):
                raise SinkError(f"{self.path} is a file; a partitioned dataset is written as a directory")
            os.makedirs(self._tmp)
        else:
            if os.path.isdir(self.path):
                raise SinkError(f"{self.path} is a directory; give a file name (or partition_by for a dataset directory)")
            self._writer_for(())  # an empty run still leaves a valid, empty Parquet file

    def write(self, data: list[list[Any]]) -> list[tuple[int, str]]:
        if self._tmp is None:
            raise SinkError(f"{self.path}: write before open()")
        refused = self._check_columns(data)
        if refused:
            bad = {i for i, _ in refused}
            data = [row for i, row in enumerate(data) if i not in bad]
        if not data:
            return refused
        if not self._part_idx:
            self._writer_for(()).append(self._table(data, self._data_schema, range(len(self._fields))))
        else:
            groups: dict[tuple[Any, ...], list[list[Any]]] = {}
            for row in data:
                groups.setdefault(tuple(_partition_value(row[i]) for i in self._part_idx), []).append(row)
            for key, rows in groups.items():
                self._writer_for(key).append(self._table(rows, self._data_schema, self._data_idx))
        self.rows_written += len(data)
        return refused

    def commit(self) -> None:
        if self._tmp is None:
            return
        tmp, self._tmp = self._tmp, None
        try:
            for w in self._writers.values():
                w.close()
            self._writers.clear()
            if self._output is not None:
                output, self._output = self._output, None
                output.commit()
                return
            if not self.partition_by:
                os.replace(tmp, self.path)
                return
            old = None
            if os.path.isdir(self.path):  # the dataset is replaced as a whole
                old = f"{tmp}.old"
                os.replace(self.path, old)
            os.replace(tmp, self.path)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        except SinkError:  # a URL's upload failed (its output aborted itself)
            self.abort()
            raise
        except OSError as exc:
            self._tmp = tmp
            self.abort()
            raise SinkError(f"cannot commit {self.path}: {exc.strerror or exc}") from exc

    def abort(self) -> None:
        for w in self._writers.values():
            w.close(quiet=True)
        self._writers.clear()
        if self._output is not None:
            output, self._output = self._output, None
            self._tmp = None
            output.abort()
        if self._tmp is not None:
            tmp, self._tmp = self._tmp, None
            remove_path(tmp)

    # -- internals -------------------------------------------------------------------
    def _writer_for(self, key: tuple[Any, ...]) -> _PartWriter:
        writer = self._writers.get(key)
        if writer is not None:
            self._writers.move_to_end(key)
            return writer
        assert self._tmp is not None
        target: Any
        if not self.partition_by:
            target = self._output if self._output is not None else self._tmp
        else:
            n = self._parts_started.get(key, 0)
            self._parts_started[key] = n + 1
            parts = [f"{c}={quote(v, safe='') if v is not None else NULL_PARTITION}" for c, v in zip(self.partition_by, key)]
            directory = os.path.join(self._tmp, *parts)
            os.makedirs(directory, exist_ok=True)
            target = os.path.join(directory, f"part-{n}.parquet")
            if len(self._writers) >= MAX_OPEN_FILES:
                _, oldest = self._writers.popitem(last=False)
                oldest.close()
        try:
            writer = _PartWriter(target, self._data_schema, self.compression, self.row_group_rows)
        except (ValueError, NotImplementedError) as exc:  # ArrowException derives from these
            raise ConfigError(f"{self.path}: cannot write Parquet with compression={self.compression!r}: {exc}") from exc
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from exc
        self._writers[key] = writer
        return writer

    def _column(self, data: list[list[Any]], i: int) -> list[Any]:
        conv = self._convert[i]
        if conv is None:
            return [row[i] for row in data]
        return [conv(row[i]) for row in data]

    def _check_columns(self, data: list[list[Any]]) -> list[tuple[int, str]]:
        """Find the rows the Arrow types cannot hold (fast path: each column converts whole)."""
        pa = import_pyarrow()
        refused: dict[int, str] = {}
        self._arrays: dict[int, Any] = {}
        for i, name in enumerate(self._fields):
            field = self._schema.field(i)
            values = self._column(data, i)
            try:
                array = pa.array(values, type=field.type)
                if not field.nullable and array.null_count:
                    raise ValueError("null")
                self._arrays[i] = array
                continue
            except (ValueError, TypeError, OverflowError, NotImplementedError):
                pass
            for pos, value in enumerate(values):  # slow path: which rows?
                if pos in refused:
                    continue
                if value is None and not field.nullable:
                    refused[pos] = f"column {name!r}: null in a non-nullable {field.type} column"
                    continue
                try:
                    pa.array([value], type=field.type)
                except (ValueError, TypeError, OverflowError, NotImplementedError) as exc:
                    refused[pos] = f"column {name!r}: {value!r} does not fit Parquet type {field.type}: {exc}"
        if refused:
            self._arrays = {}
        return sorted(refused.items())

    def _table(self, rows: list[list[Any]], schema: Any, columns: Sequence[int]) -> Any:
        pa = import_pyarrow()
        if self._arrays and not self._part_idx:
            arrays = [self._arrays[i] for i in columns]
        else:
            arrays = [pa.array(self._column(rows, i), type=self._schema.field(i).type) for i in columns]
        self._arrays = {}
        return pa.Table.from_arrays(arrays, schema=schema)


def _partition_value(value: Any) -> str | None:
    """A partition key as directory text: enums by value, dates in ISO form."""
    if value is None:
        return None
    value = getattr(value, "value", value)  # Enum
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _PartWriter:
    """One open Parquet file, gathering rows into row groups."""

    def __init__(self, path: Any, schema: Any, compression: str, row_group_rows: int | None) -> None:
        """``path``: a local file name, or a file-like object (a URL's staged output)."""
        import pyarrow.parquet as pq

        self.path, self.row_group_rows = path, row_group_rows
        self.writer = pq.ParquetWriter(path, schema, compression=compression)
        self.pending: list[Any] = []
        self.pending_rows = 0

    def append(self, table: Any) -> None:
        if self.row_group_rows is None:
            self.writer.write_table(table, row_group_size=max(1, table.num_rows))
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.row_group_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        import pyarrow as pa

        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        size = self.row_group_rows or table.num_rows
        full = table.num_rows if final else table.num_rows - table.num_rows % size
        if full:
            self.writer.write_table(table.slice(0, full), row_group_size=size)
        rest = table.slice(full)
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows

    def close(self, quiet: bool = False) -> None:
        try:
            self._flush(final=True)
            self.writer.close()
            if not isinstance(self.path, str):
                return  # a staged output: durable on its commit
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except Exception:
            if not quiet:
                raise
