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
from collections.abc import Mapping, Sequence
from typing import Any

from . import range_io
from .dlq import dlq_lines, timestamp, worker_crash
from .errors import AccountingError
from .kinds import csv as csv_kind
from .kinds import jsonl as jsonl_kind
from .kinds import kind_of
from .ranges import Layout, RangeScan, scan_range
from .sources import compression
from .sources.csv import CSVSource
from .sources.jsonl import JSONLSource
from .worker import Batch, ChunkProcessor

#: What a worker needs to know of the input: JSON-safe, travels with every call.
InputDescription = dict[str, Any]


def describe(source: CSVSource | JSONLSource) -> InputDescription:
    """Where the records of ``source``'s file start, with what the reader learnt before
    them (CSV: encoding, header); ``refused`` says why the file cannot be cut in ranges."""
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
    ``staging["sink"]`` and its DLQ part to ``staging["dlq"]``; return the counts and the
    part names. Parts are named by the range's start offset, so they sort in file order,
    and by ``attempt``, so a redone range never meets a dead attempt's half-written part."""
    data = range_io.read_range(desc["path"], piece["start"], piece["end"], desc.get("storage_options"))
    chunk = _chunk(desc, data, piece["line0"])
    del data
    batch = Batch()
    kind_of(chunk).parse(chunk, processor, batch)
    result = batch.result(processor.output_form, processor.fields)
    errors = result["errors"]
    if batch.seen != piece["records"] or batch.seen != result["valid"] + len(errors) + result["filtered"]:
        raise AccountingError(f"{desc['name']} bytes {piece['start']}-{piece['end']}: planned {piece['records']} records, parsed "
                              f"{batch.seen} = {result['valid']} valid + {len(errors)} invalid + {result['filtered']} filtered")
    name = f"{piece['start']:016d}-{attempt}.part"
    out: dict[str, Any] = {"start": piece["start"], "seen": batch.seen, "valid": result["valid"], "invalid": len(errors),
                           "filtered": result["filtered"], "sink_part": None, "dlq_part": None}
    if result["data"]:
        out["sink_part"] = range_io.write_part(staging["sink"], name, result["data"])
    if errors:
        lines = dlq_lines(errors, run_id=run_id, source=desc["name"], first_record=piece["first_record"] + 1, ts=timestamp())
        out["dlq_part"] = range_io.write_part(staging["dlq"], name, lines)
    reasons = Counter(tuple(e["reason"]) for e in errors)
    out["reasons"] = [[*reason, count] for reason, count in reasons.items()]
    return out


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
    return [left, right]


def isolate(desc: InputDescription, piece: dict[str, Any], staging: dict[str, range_io.Where], run_id: str, reason: str) -> dict[str, Any]:
    """The outcome of a one-record range that killed its worker every time: its DLQ line
    (stage ``worker``, as the single-driver mode writes it), without processing it."""
    data = range_io.read_range(desc["path"], piece["start"], piece["end"], desc.get("storage_options"))
    chunk = _chunk(desc, data, piece["line0"])
    line, raw, raw_text = kind_of(chunk).describe_single(chunk)
    error = worker_crash(line, raw, raw_text, reason)
    lines = dlq_lines([error], run_id=run_id, source=desc["name"], first_record=piece["first_record"] + 1, ts=timestamp())
    name = range_io.write_part(staging["dlq"], f"{piece['start']:016d}-worker.part", lines)
    return {"start": piece["start"], "seen": 1, "valid": 0, "invalid": 1, "filtered": 0, "sink_part": None, "dlq_part": name,
            "reasons": [[*error["reason"], 1]]}


def probe(path: str, directories: Sequence[range_io.Where], storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What this worker's node sees of the input (a file's size and mtime, an object's size
    and ETag) and of the staging places: distributed mode needs every node to see the same
    input and the same (freshly made) staging, which a path on one node's own disk is not."""
    return {"input": range_io.identity(path, storage_options), "directories": all(range_io.staging_visible(d) for d in directories)}
