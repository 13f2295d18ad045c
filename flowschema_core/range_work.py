"""What a distributed-mode worker does with a byte range of a file: describe the input,
scan a range for record boundaries, and process an exact range into part files.

::

    describe(source)        the header, where records start, the lines before them
    scan(input, start, end) both quote-state readings of one range (flowschema_core.ranges)
    process(range)          read [start, end) ─► the kind's parse ─► validation (worker.py)
                            ─► sink part + DLQ part (lines numbered from the range's first record)
                            ─► counts and part names, nothing else, back to the driver

Records are parsed and validated by the same code as in every other mode
(:mod:`flowschema_core.kinds`, :class:`~flowschema_core.worker.ChunkProcessor`), so the
outputs are byte for byte those of a single-driver run. Plain Python: the Ray actor
(:mod:`flowschema_ray.range_actor`) only wraps these functions, and tests call them directly.
"""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from . import range_io, range_parquet
from .dlq import dlq_lines, timestamp, worker_crash
from .errors import AccountingError, SourceError
from .kinds import csv as csv_kind
from .kinds import jsonl as jsonl_kind
from .kinds import kind_of
from .ranges import Layout, RangeScan, scan_range
from .sources import compression
from .sources.csv import CSVSource
from .sources.jsonl import JSONLSource
from .sources.parquet import ParquetSource
from .sources.sql import SQLSource
from .worker import Batch, ChunkProcessor

#: What a worker needs to know of the input: JSON-safe, travels with every call.
InputDescription = dict[str, Any]


def describe(source: CSVSource | JSONLSource | ParquetSource | SQLSource, unit_bytes: int = 1 << 20) -> InputDescription:
    """Where the records of ``source``'s file start, with what the reader learnt before
    them (CSV: encoding, header); ``refused`` says why the file cannot be cut in ranges.
    An SQL source is described by its key ranges of about ``unit_bytes`` (``units``,
    :mod:`flowschema_core.range_sql`) instead; Parquet by its footers
    (:mod:`flowschema_core.range_parquet`), from which the driver plans."""
    if isinstance(source, SQLSource):
        from . import range_sql

        return range_sql.describe(source, unit_bytes)
    if isinstance(source, ParquetSource):
        return range_parquet.describe(source)
    path = range_io.absolute(source.path)
    options = dict(source.storage_options)
    size = range_io.file_size(path, options)
    # storage_options travel with the description to every call (they may hold credentials:
    # never log a description, never persist it as is).
    desc: InputDescription = {"path": path, "name": source.name, "size": size, "refused": None, "notes": [],
                              "max_record_bytes": source.max_record_bytes, "storage_options": options}
    with range_io.open_input(path, options) as f:
        if compression.detect(f.peek(8)[:8]) is not None:  # type: ignore[attr-defined]
            desc["refused"] = f"{source.name} is compressed, and a compressed stream cannot be read from the middle"
            return desc
        if isinstance(source, JSONLSource):
            bom = f.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8
            desc.update(kind="jsonl", data_start=len(codecs.BOM_UTF8) if bom else 0, lines0=0, encoding="utf-8")
            return desc
        source.notes = []
        preamble = source.read_preamble(f)
        rest, lines0 = preamble if preamble is not None else (b"", 0)
        desc.update(kind="csv", data_start=f.tell() - len(rest) if preamble is not None else size, lines0=lines0,
                    fields=source.fields, dialect=source.dialect, encoding=source.encoding, notes=list(source.notes))
    return desc


def layout(desc: InputDescription) -> Layout:
    if desc["kind"] == "jsonl":
        return Layout("jsonl")
    dialect = desc["dialect"]
    quote = ord(dialect["quotechar"].encode(desc["encoding"])) if dialect.get("quoting_enabled", True) else None
    return Layout("csv", quote, ord(dialect["delimiter"].encode(desc["encoding"])), bool(dialect.get("skipinitialspace")))


def scan(desc: InputDescription, start: int, end: int) -> dict[str, Any]:
    """Scan bytes ``[start, end)`` (see :func:`flowschema_core.ranges.scan_range`)."""
    first = start - 1 if start > desc["data_start"] else start
    data = range_io.read_range(desc["path"], first, end, desc.get("storage_options"))
    prev, data = (data[0], data[1:]) if first < start else (10, data)
    return scan_range(data, start, prev, layout(desc)).to_dict()


def scan_result(data: dict[str, Any]) -> RangeScan:
    return RangeScan.from_dict(data)


def process(processor: ChunkProcessor, desc: InputDescription, piece: dict[str, Any], staging: dict[str, range_io.Where],
            run_id: str, attempt: int) -> dict[str, Any]:
    """Read, parse and validate one exact range (``piece``: an
    :class:`~flowschema_core.ranges.ExactRange` as a dict); write its sink part to
    ``staging["sink"]`` and its DLQ part to ``staging["dlq"]``; return the counts, the
    part names and their sizes (a resume checks a part by its size, see
    :mod:`flowschema_ray.distributed_checkpoint`). Parts are named by the range's start
    offset, so they sort in file order, and by ``attempt``, so a redone range never meets
    a dead attempt's half-written part. A byte range or key range is one batch of
    records; a Parquet unit is a batch per record batch read, each written before the next
    is read, so an actor holds one batch's records and results."""
    name = f"{piece['start']:016d}-{attempt}.part"
    ts = timestamp()
    counts = {"seen": 0, "valid": 0, "invalid": 0, "filtered": 0}
    reasons: Counter[tuple[str, ...]] = Counter()
    with range_io.PartWriter(staging["sink"], name) as sink_part, range_io.PartWriter(staging["dlq"], name) as dlq_part:
        for batch in _batches(processor, desc, piece):
            result = batch.result(processor.output_form, processor.fields)
            errors = result["errors"]
            sink_part.write(result["data"])
            if errors:
                first = piece["first_record"] + counts["seen"] + 1
                dlq_part.write(dlq_lines(errors, run_id=run_id, source=desc["name"], first_record=first, ts=ts))
            reasons.update(tuple(e["reason"]) for e in errors)
            for key, n in (("seen", batch.seen), ("valid", result["valid"]), ("invalid", len(errors)), ("filtered", result["filtered"])):
                counts[key] += n
        seen = counts["seen"]
        if seen != piece["records"] and desc["kind"] == "sql":
            raise SourceError(f"{desc['name']} {where(desc, piece)}: planned {piece['records']} rows, read {seen}: the table changed "
                              "during the run (distributed mode plans its key ranges by row counts first); run it while "
                              "nothing writes to the table, or with RayExecutor(distributed=False)")
        if seen != piece["records"] or seen != counts["valid"] + counts["invalid"] + counts["filtered"]:
            raise AccountingError(f"{desc['name']} {where(desc, piece)}: planned {piece['records']} records, parsed "
                                  f"{seen} = {counts['valid']} valid + {counts['invalid']} invalid + {counts['filtered']} filtered")
    return {"start": piece["start"], **counts, "sink_part": sink_part.name, "dlq_part": dlq_part.name,
            "sink_size": sink_part.size, "dlq_size": dlq_part.size,
            "reasons": [[*reason, count] for reason, count in reasons.items()]}


def _batches(processor: ChunkProcessor, desc: InputDescription, piece: dict[str, Any]) -> Iterator[Batch]:
    """The range's records parsed and validated, one :class:`Batch` at a time."""
    # (record_timeout is not offered with Parquet or SQL in this mode: the beacon counts one batch's records)
    if desc["kind"] == "parquet":
        yield from range_parquet.batches(processor, desc, piece)
        return
    if desc["kind"] == "sql":
        from . import range_sql

        yield from range_sql.batches(processor, desc, piece)
        return
    chunk = read_chunk(desc, piece)
    batch = Batch()
    # record_timeout: the beacon says which record this call is on (the driver counts the
    # calls, see flowschema_ray.distributed_watch); "stuck" marks records that outlived the
    # timeout in an earlier attempt: they go to the DLQ without running.
    beacon = processor.beacon
    if beacon is not None:
        beacon.next_chunk()
    processor.stuck = {int(i): mark for i, mark in piece["stuck"].items()} if piece.get("stuck") else None
    try:
        kind_of(chunk).parse(chunk, processor, batch)
    finally:
        processor.stuck = None
        if beacon is not None:
            beacon.between_records()
    yield batch


def read_chunk(desc: InputDescription, piece: dict[str, Any]) -> dict[str, Any]:
    """The chunk of the input's kind that the single-driver mode would send for ``piece``'s records."""
    if desc["kind"] == "sql":
        from . import range_sql

        return range_sql.chunk(desc, piece)
    return _chunk(desc, range_io.read_range(desc["path"], piece["start"], piece["end"], desc.get("storage_options")), piece["line0"])


def where(desc: InputDescription, piece: dict[str, Any]) -> str:
    """The range, as a message names it."""
    if desc["kind"] == "sql":
        from . import range_sql

        return range_sql.where(piece)
    if desc["kind"] == "parquet":
        return range_parquet.where(piece)
    return f"bytes {piece['start']}-{piece['end']}"


def _chunk(desc: InputDescription, data: bytes, line0: int) -> dict[str, Any]:
    """The chunk of the input's kind that the single-driver mode would send for these bytes."""
    if desc["kind"] == "csv":
        return csv_kind.chunk(data, line0, desc["fields"], desc["dialect"], desc["encoding"])
    return jsonl_kind.chunk(data, line0, desc["encoding"])


def split(desc: InputDescription, piece: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Two exact ranges holding ``piece``'s records (at a record boundary near its middle,
    :func:`flowschema_core.blocks.middle_boundary`), or None if it holds one record: how a
    range that keeps killing its worker is narrowed down to the record responsible."""
    from . import blocks
    from .ranges import combine

    if desc["kind"] == "sql":
        from . import range_sql

        return _stuck_per_half(piece, range_sql.split(desc, piece))
    if desc["kind"] == "parquet":
        return range_parquet.split(piece)
    data = range_io.read_range(desc["path"], piece["start"], piece["end"], desc.get("storage_options"))
    shape = layout(desc)
    quote = bytes([shape.quote]) if shape.quote is not None else None
    cut = blocks.middle_boundary(data, quote, desc.get("dialect") if quote is not None else None)
    if cut <= 0 or piece["records"] < 2:
        return None
    left_end = piece["start"] + cut
    left_records = combine([scan_range(data[:cut], piece["start"], 10, shape)], piece["start"], left_end, 0, 1 << 62).records
    left = {**piece, "end": left_end, "records": left_records}
    right = {**piece, "start": left_end, "first_record": piece["first_record"] + left_records,
             "records": piece["records"] - left_records, "line0": piece["line0"] + data.count(b"\n", 0, cut)}
    return _stuck_per_half(piece, [left, right])


def _stuck_per_half(piece: dict[str, Any], halves: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The halves with the records ``piece`` marks as stuck (record_timeout) renumbered
    within each: the marks are record indexes in the range."""
    stuck = {int(i): mark for i, mark in (piece.get("stuck") or {}).items()}
    if halves is None or not stuck:
        return halves
    left, right = halves
    cut = left["records"]
    return [{**left, "stuck": {i: m for i, m in stuck.items() if i < cut}},
            {**right, "stuck": {i - cut: m for i, m in stuck.items() if i >= cut}}]


def isolate(desc: InputDescription, piece: dict[str, Any], staging: dict[str, range_io.Where], run_id: str, reason: str) -> dict[str, Any]:
    """The outcome of a one-record range that killed its worker every time: its DLQ line
    (stage ``worker``, as the single-driver mode writes it), without processing it."""
    if desc["kind"] == "parquet":
        line, raw, raw_text = range_parquet.describe_single(desc, piece)
    else:
        chunk = read_chunk(desc, piece)
        line, raw, raw_text = kind_of(chunk).describe_single(chunk)
    error = worker_crash(line, raw, raw_text, reason)
    lines = dlq_lines([error], run_id=run_id, source=desc["name"], first_record=piece["first_record"] + 1, ts=timestamp())
    name = range_io.write_part(staging["dlq"], f"{piece['start']:016d}-worker.part", lines)
    return {"start": piece["start"], "seen": 1, "valid": 0, "invalid": 1, "filtered": 0, "sink_part": None, "dlq_part": name,
            "sink_size": 0, "dlq_size": len(lines), "reasons": [[*error["reason"], 1]]}


def probe(path: str | None, directories: Sequence[range_io.Where], storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What this worker's node sees of the input (a file's size and mtime, an object's size
    and ETag; None for an SQL source, reached by its URL) and of the staging places:
    distributed mode needs every node to see the same input and the same (freshly made)
    staging, which a path on one node's own disk is not."""
    seen = range_io.identity(path, storage_options) if path is not None else None
    return {"input": seen, "directories": all(range_io.staging_visible(d) for d in directories)}
