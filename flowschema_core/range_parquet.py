"""Parquet row groups as the work units of distributed mode (what byte ranges are for CSV
and JSON Lines in :mod:`flowschema_core.range_work`).

::

    describe (an actor)   the files' footers: the fields, and per row group its rows and the
                          uncompressed bytes of the columns read (nothing is decompressed)
    plan (the driver)     units of consecutive row groups, across files, of up to
                          ``range_bytes`` uncompressed (a larger group alone), each knowing
                          its first record number from the row counts before it
    batches (an actor)    the unit's row groups, read batch by batch as ParquetSource reads
                          them ─► the arrow kind's records ─► validation (worker.py), each
                          batch's results written to the parts before the next is read
    split, describe_single   narrowing a unit that keeps killing actors down to its record,
                          by row offsets within its row groups

A row group whose rows average more than ``max_record_bytes`` is never decompressed: each
of its rows becomes a ``parse`` DLQ record, as in the single-driver mode.

A unit is an :class:`~flowschema_core.ranges.ExactRange` over a virtual stream: the row
groups' costs (:func:`group_cost`) laid end to end. As for a byte range, ``start`` orders
the parts and the outcomes, and ``end - start`` is what the ledger holds while an actor
works on the unit. Every row costs at least one, so a unit cut at row ``r`` of ``R`` at
``start + (end - start) * r // R`` gives each piece a distinct start.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import storage
from .arrow_schema import import_pyarrow
from .kinds import arrow as arrow_kind
from .ranges import ExactRange, Plan
from .sources.base import oversized_reason
from .sources.parquet import OversizedGroup, ParquetSource, row_group_sizes
from .worker import Batch

if TYPE_CHECKING:
    from .worker import ChunkProcessor


@dataclass(frozen=True)
class ParquetUnit(ExactRange):
    """Consecutive rows of the input: ``segments``, in order, each ``rows`` rows from row
    ``offset`` of row group ``group`` of the file ``path`` (shown as ``name``; ``before``:
    the file's rows before that group; ``oversized``: the rows' average size when the group
    is over ``max_record_bytes`` and is not read, else 0)."""

    segments: tuple[dict[str, Any], ...]


def unsupported(source: ParquetSource) -> str | None:
    """Why distributed mode cannot read ``source``, or None (it reads a file or a directory,
    or an object or a prefix in object storage, whose existence the description checks)."""
    if storage.is_remote(source.path) and not glob.has_magic(source.path):
        return None
    if os.path.isfile(source.path) or os.path.isdir(source.path):
        return None
    return (f"the source {source.name} is not a Parquet file or directory (distributed mode reads a file or a "
            "directory of them, not a glob pattern)")


def group_cost(rows: int, read_bytes: int, oversized: int) -> int:
    """What a row group weighs in a unit and in the ledger: the uncompressed bytes of the
    columns read (an actor holds them), at least one a row; an oversized group, which is
    never read, one a row; a group without rows, nothing (no unit reads it)."""
    if not rows:
        return 0
    return rows if oversized else max(read_bytes, rows)


def describe(source: ParquetSource) -> dict[str, Any]:
    """Read the footers of ``source``'s files (``source.path`` absolute, ``source.name`` as
    the user gave it): the description distributed mode plans from."""
    source.fields = None
    files: list[dict[str, Any]] = []
    for path, partitions in source.files():
        name = _display(source, path)
        with contextlib.ExitStack() as opened:
            pf = source.open_file(path, opened)
            wanted = source.columns_read(pf.schema_arrow.names, partitions, name)
            groups: list[list[int]] = []
            for group, (rows, read_bytes) in enumerate(row_group_sizes(pf, wanted)):
                too_large = source.oversized(group, name, rows, read_bytes)
                groups.append([rows, read_bytes, too_large.row_bytes if too_large is not None else 0])
        files.append({"path": path, "name": name, "partitions": partitions, "groups": groups})
    return {"kind": "parquet", "path": source.path, "name": source.name, "refused": None, "notes": [],
            "data_start": 0, "lines0": 0, "size": sum(group_cost(*g) for f in files for g in f["groups"]),
            "max_record_bytes": source.max_record_bytes, "fields": list(source.fields or []), "columns": source.columns,
            "batch_rows": source.batch_rows, "files": files,
            # They travel with the description to every call (they may hold credentials: a
            # checkpoint leaves them out and takes them from the resumed run's source).
            "storage_options": dict(source.storage_options)}


def _display(source: ParquetSource, path: str) -> str:
    """``path`` (found under the source's absolute path) named as the single-driver mode
    names it, under the path the user gave: DLQ reasons say the same in both modes."""
    if path == source.path:
        return source.name
    return os.path.join(source.name, os.path.relpath(path, source.path))


def plan(desc: dict[str, Any], range_bytes: int) -> Plan:
    """The units of the input ``desc`` describes. The files' row groups move into the units
    (the description, which travels with every call to an actor, no longer lists them)."""
    files = desc.pop("files")
    units: list[ExactRange] = []
    segments: list[dict[str, Any]] = []
    start = cost = first = records = 0
    for file in files:
        before = 0
        for group, (rows, read_bytes, oversized) in enumerate(file["groups"]):
            weight = group_cost(rows, read_bytes, oversized)
            if rows and segments and cost + weight > range_bytes:
                units.append(ParquetUnit(len(units), start, start + cost, first, records - first, 0, tuple(segments)))
                segments, start, cost, first = [], start + cost, 0, records
            if rows:
                segments.append({"path": file["path"], "name": file["name"], "partitions": file["partitions"], "group": group,
                                 "before": before, "offset": 0, "rows": rows, "oversized": oversized})
                cost += weight
                records += rows
            before += rows
    if segments:
        units.append(ParquetUnit(len(units), start, start + cost, first, records - first, 0, tuple(segments)))
    return Plan(units, records)


def split(piece: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Two units holding ``piece``'s rows (cut at its middle row, within a row group if
    need be), or None if it holds one row."""
    records = piece["records"]
    if records < 2:
        return None
    mid = records // 2
    left: list[dict[str, Any]] = []
    right: list[dict[str, Any]] = []
    taken = 0
    for segment in piece["segments"]:
        room = mid - taken
        if room <= 0:
            right.append(segment)
        elif segment["rows"] <= room:
            left.append(segment)
        else:
            left.append({**segment, "rows": room})
            right.append({**segment, "offset": segment["offset"] + room, "rows": segment["rows"] - room})
        taken += segment["rows"]
    cut = piece["start"] + (piece["end"] - piece["start"]) * mid // records
    return [{**piece, "end": cut, "records": mid, "segments": left},
            {**piece, "start": cut, "first_record": piece["first_record"] + mid, "records": records - mid, "segments": right}]


def where(piece: dict[str, Any]) -> str:
    """The unit, as a message names it."""
    first = piece["first_record"]
    return f"records {first + 1}-{first + piece['records']}"


def batches(processor: ChunkProcessor, desc: dict[str, Any], piece: dict[str, Any]) -> Iterator[Batch]:
    """``piece``'s rows parsed and validated as the single-driver mode does with the same
    rows (the arrow kind; an oversized group's rows as ``parse`` errors), a
    :class:`~flowschema_core.worker.Batch` per record batch of ``batch_rows`` rows or fewer,
    its records numbered from 0."""
    for part in _batches(desc, piece):
        if isinstance(part, OversizedGroup):
            reason, text = oversized_reason(part.row_bytes, b"", desc["max_record_bytes"], what=part.what)
            for first in range(0, part.rows, desc["batch_rows"]):
                batch = Batch()
                for i in range(min(desc["batch_rows"], part.rows - first)):
                    batch.parse_error(i, None, reason, text)
                batch.seen = len(batch.errors)
                yield batch
        else:
            batch = Batch()
            arrow_kind.records(part, desc["fields"], processor, batch)
            yield batch


def describe_single(desc: dict[str, Any], piece: dict[str, Any]) -> tuple[int | None, Any, str | None]:
    """``(line, raw, raw_text)`` of a one-row piece, for its DLQ record."""
    for part in _batches(desc, piece):
        if isinstance(part, OversizedGroup):
            break
        return arrow_kind.describe_single(import_pyarrow().Table.from_batches([part]))
    return None, None, None


def _batches(desc: dict[str, Any], piece: dict[str, Any]) -> Iterator[Any]:
    """``piece``'s rows in order: record batches with exactly the fields as columns (read
    by :meth:`ParquetSource.group_batches`, as the single-driver mode reads them), or an
    :class:`OversizedGroup` for rows that are not to be read."""
    pa = import_pyarrow()
    source = ParquetSource(desc["path"], columns=desc["columns"], batch_rows=desc["batch_rows"],
                           max_record_bytes=desc["max_record_bytes"], storage_options=desc.get("storage_options"))
    source.fields = list(desc["fields"])
    for segment in piece["segments"]:
        if segment["oversized"]:
            yield OversizedGroup(segment["group"], segment["name"], segment["rows"], segment["oversized"])
            continue
        with contextlib.ExitStack() as opened:
            pf = source.open_file(segment["path"], opened)
            wanted = source.columns_read(pf.schema_arrow.names, segment["partitions"], segment["name"])
            skip, left = segment["offset"], segment["rows"]
            batches = source.group_batches(pa, pf, segment["group"], wanted, segment["name"], segment["before"], segment["partitions"])
            for batch in batches:
                if skip >= batch.num_rows:  # before the rows of a narrowed-down piece
                    skip -= batch.num_rows
                    continue
                batch = batch.slice(skip, left)
                skip, left = 0, left - batch.num_rows
                yield batch
                if not left:
                    break
