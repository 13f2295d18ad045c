"""Key ranges of an SQL source: the work units of distributed mode for ``SQLSource(key=...)``.

::

    describe (an actor)   sample the first rows: their average size sets the rows per unit (step)
                          one query: the key of every step-th row, and of the last one, in key order
                              SELECT k, rn, total FROM (SELECT key AS k,
                                  ROW_NUMBER() OVER (ORDER BY key) AS rn, COUNT(*) OVER () AS total ...)
                              WHERE rn % step = 0 OR rn = total
                          ─► units (after key, up to key], each knowing its first record and count
    read (an actor)       the unit's rows by keyset pages bounded above (SQLSource.bounded):
                              WHERE key > :after AND key <= :upto ORDER BY key LIMIT batch_rows

A unit's rows are exactly those the single-driver mode reads between the two keys, in the
same order, so the outputs are byte for byte the same, and record numbers are exact (a
unit knows how many rows come before it). The planning query reads keys only, once; no
row crosses the driver. A unit's ``start``/``end`` are *estimated* byte offsets (rows times
the sampled average row size): they order its parts, size its share of the byte budget
and drive the progress line, as a byte range's do.

The table must not change during the run: an actor that reads a different number of rows
than planned fails the run with an AccountingError rather than misnumber anything.
Needs window functions (SQLite 3.25, PostgreSQL, MariaDB 10.2, MySQL 8).
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import codec
from .errors import SourceError
from .kinds import rows as rows_kind
from .sources.sql import SQLSource, _decode_key, _encode_key
from .sql_engine import create_engine, import_sqlalchemy, normalise_url
from .worker import Batch

if TYPE_CHECKING:
    from .worker import ChunkProcessor

#: Rows sampled to estimate a row's size (what sets the rows per unit).
SAMPLE_ROWS = 1000

_ENGINES: dict[tuple[str, str], Any] = {}  # one engine (and its connection pool) per database a worker reads


def _with_engine(source: SQLSource) -> SQLSource:
    key = (source.url, repr(sorted(source.engine_options.items())))
    if key not in _ENGINES:
        _ENGINES[key] = create_engine(source.url, **source.engine_options)
    source._engine = _ENGINES[key]
    return source


def for_workers(source: SQLSource) -> SQLSource | str:
    """``source`` as workers on other processes and nodes must open it (a relative SQLite
    path made absolute: a worker's working directory is not the driver's, and SQLite would
    create an empty database there), or why they cannot (an in-memory SQLite database is
    the driver's own)."""
    sa = import_sqlalchemy()
    url = sa.engine.make_url(normalise_url(source.url))
    if url.get_backend_name() != "sqlite":
        return source
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode") == "memory":
        return f"{source.name} is an in-memory or URI SQLite database, which other processes cannot open"
    if os.path.isabs(database):
        return source
    part = copy.copy(source)
    part.url = url.set(database=os.path.abspath(database)).render_as_string(hide_password=False)
    return part


def describe(source: SQLSource, unit_bytes: int) -> dict[str, Any]:
    """The units of ``source`` (see the module docstring), as the input description."""
    desc: dict[str, Any] = {"kind": "sql", "name": source.name, "source": source, "refused": None, "notes": [],
                            "data_start": 0, "lines0": 0}
    if source.key is None:
        desc["refused"] = f"{source.name} has no key=: distributed mode cuts an SQL source into ranges of a unique key column"
        return desc
    reader = _with_engine(source.bounded(None, None))
    sample = list(itertools.islice(reader.records(), SAMPLE_ROWS))
    if not sample:
        desc.update(size=0, units=[])
        return desc
    _, sampled = codec.encode(rows_kind.chunk([row for _, row in sample], reader.fields))
    row_bytes = max(1, -(-sampled // len(sample)))  # whole bytes: offsets stay exact multiples, so halves never collide
    step = max(1, unit_bytes // row_bytes)
    boundaries = _boundaries(reader, step)
    units, after, done = [], None, 0
    for key, rn, _total in boundaries:
        units.append({"start": done * row_bytes, "end": rn * row_bytes, "first_record": done, "records": rn - done,
                      "line0": 0, "after": after, "upto": _encode_key(key)})
        after, done = _encode_key(key), rn
    desc.update(size=done * row_bytes, units=units)
    desc["notes"].append(f"{source.name}: {done} rows in {len(units)} key ranges of {step} rows (about {row_bytes} bytes a row)")
    return desc


def _boundaries(source: SQLSource, step: int) -> list[tuple[Any, int, int]]:
    """``(key, row number, total)`` of every ``step``-th row and of the last, in key order."""
    sa = import_sqlalchemy()
    with source._engine.connect() as conn:
        if source.table is not None:
            table = source._reflect(conn)
            column = table.c[source.key]
        else:
            column = sa.text(source.query).columns(sa.column(source.key)).subquery("flowschema_source").c[source.key]
        numbered = sa.select(column.label("k"), sa.func.row_number().over(order_by=column).label("rn"),
                             sa.func.count().over().label("total")).subquery("flowschema_numbered")
        query = (sa.select(numbered.c.k, numbered.c.rn, numbered.c.total)
                 .where(sa.or_(numbered.c.rn % step == 0, numbered.c.rn == numbered.c.total)).order_by(numbered.c.rn))
        found = [(k, int(rn), int(total)) for k, rn, total in conn.execute(query, source.params)]
    if any(k is None for k, _, _ in found):  # as the single-driver mode says it (NULLs sort last on PostgreSQL)
        raise SourceError(f"{source.name}: a row has no value in the key column {source.key!r}; the key must be unique and NOT NULL")
    return found


def pages(desc: dict[str, Any], piece: dict[str, Any]) -> Iterator[tuple[list[Any], list[str] | None]]:
    """The rows of one unit, in key order, ``batch_rows`` at a time (the source's keyset
    pages), with their field names: a unit larger than its estimate (rows that grow
    along the table) is never held whole."""
    source = _with_engine(desc["source"].bounded(piece["after"], piece["upto"]))
    rows: list[Any] = []
    for _, row in source.records():
        rows.append(row)
        if len(rows) == source.batch_rows:
            yield rows, source.fields
            rows = []
    if rows:
        yield rows, source.fields


def batches(processor: ChunkProcessor, desc: dict[str, Any], piece: dict[str, Any]) -> Iterator[Batch]:
    """``piece``'s rows parsed and validated as the single-driver mode does (the rows
    kind), a :class:`~flowschema_core.worker.Batch` per page, its records numbered from 0."""
    for rows, fields in pages(desc, piece):
        batch = Batch()
        rows_kind.KIND.parse(rows_kind.chunk(rows, fields), processor, batch)
        yield batch


def chunk(desc: dict[str, Any], piece: dict[str, Any]) -> dict[str, Any]:
    """The rows chunk the single-driver mode would send for this unit's rows (a unit of
    one row: the record that killed its actor, for its DLQ line)."""
    rows: list[Any] = []
    fields: list[str] | None = None
    for page, page_fields in pages(desc, piece):
        rows, fields = rows + page, page_fields
    return rows_kind.chunk(rows, fields)


def split(desc: dict[str, Any], piece: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Two units holding ``piece``'s rows, cut at its middle row's key; None for one row."""
    if piece["records"] < 2:
        return None
    source = _with_engine(desc["source"].bounded(piece["after"], piece["upto"]))
    rows = [row for _, row in source.records()]  # a unit being narrowed down to a poison row: its keys are needed
    at = source.fields.index(source.key) if source.fields and source.key else 0
    mid = len(rows) // 2
    cut = _encode_key(rows[mid - 1][at])
    middle = piece["start"] + (piece["end"] - piece["start"]) // piece["records"] * mid
    left = {**piece, "end": middle, "records": mid, "upto": cut}
    right = {**piece, "start": middle, "first_record": piece["first_record"] + mid, "records": piece["records"] - mid, "after": cut}
    return [left, right]


def where(piece: dict[str, Any]) -> str:
    """The unit, as a message names it."""
    after, upto = (_decode_key(piece[k]) if piece[k] is not None else None for k in ("after", "upto"))
    return f"keys {'from the first' if after is None else f'after {after!r}'} up to {upto!r}"
