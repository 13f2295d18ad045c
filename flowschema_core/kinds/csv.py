"""``csv`` chunks: raw bytes of whole CSV records, parsed here, in the worker.

The driver cuts the file into blocks at record boundaries without parsing it
(:mod:`flowschema_core.blocks`, quote parity at C speed); this module parses a block with
the csv module and validates each record. Its loop is the hot path of the whole engine.
"""

from __future__ import annotations

import csv
import re
from typing import TYPE_CHECKING, Any

from .. import blocks
from ..dlq import escape_undecodable, outcome_of
from .base import ByteBlockKind, Chunk

if TYPE_CHECKING:
    from ..worker import Batch, ChunkProcessor

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# The csv module refuses fields over 128 KiB by default; the driver already bounds a
# record by the source's max_record_bytes, so a field may be as long as its record.
csv.field_size_limit(2**31 - 1)


def chunk(data: bytes, line0: int, fields: list[str], dialect: dict[str, Any], encoding: str) -> Chunk:
    return {"kind": CSVKind.name, "data": data, "line0": line0, "fields": fields, "dialect": dialect, "encoding": encoding}


class CSVKind(ByteBlockKind):
    name = "csv"

    def quote(self, chunk: Chunk) -> bytes | None:
        dialect = chunk["dialect"]
        return dialect.get("quotechar", '"').encode() if dialect.get("quoting_enabled", True) else None

    def parse(self, chunk: Chunk, processor: ChunkProcessor, batch: Batch) -> None:
        data: bytes = chunk["data"]
        encoding: str = chunk["encoding"]
        try:
            text = data.decode(encoding)
            escaped = False
        except UnicodeDecodeError:
            text = data.decode(encoding, "surrogateescape")
            escaped = True
        parts = text.split("\n")
        lines = [p + "\n" for p in parts]
        if parts[-1]:
            lines[-1] = parts[-1]
        else:
            lines.pop()
        fields: list[str] = chunk["fields"]
        width = len(fields)
        # An empty cell (or a null token) is read the way the model's field asks
        # (flowschema_core.nulls); rows without one, most of them, cost one C-speed check.
        dialect = chunk["dialect"]
        plan = processor.nulls.plan(fields, dialect.get("empty_cells", "model"), dialect.get("null_values") or ("",))
        # Three ways, cheapest first: no cell needs a change; each empty cell found with
        # list.count / list.index at C speed and fixed in place; else the plan's loop.
        untouched, fix = plan.untouched, plan.in_place
        reader = csv.reader(lines, **blocks.reader_options(chunk["dialect"]))
        line0 = chunk["line0"]
        # Without hooks, validation is inlined here: this loop is the hot path of the
        # whole engine, so it avoids a Python call per record beyond the validator's.
        # Exceptions go to outcome_of, the one place that decides what they mean.
        fast = not processor.before and not processor.after and processor.stuck is None
        on_record = processor.beacon.on_record if processor.beacon is not None else None  # record_timeout
        validate = processor.validate
        valid_append: Any = batch.valid.append
        valid_i_append = batch.valid_i.append
        # Each valid row is serialized at once, so no model instance outlives its record
        # (less memory, less work for the cyclic GC) and a row that cannot be serialized
        # is that record's problem, not the chunk's.
        dump = processor.dump
        consumed = 0
        i = 0
        while True:
            try:
                for row in reader:
                    start = consumed
                    consumed = reader.line_num
                    if len(row) != width or not row:
                        if not row:
                            continue  # a blank line is not a record
                        raw_text = escape_undecodable("".join(lines[start:consumed]).rstrip("\r\n"))
                        batch.parse_error(i, line0 + start + 1, f"expected {width} fields, found {len(row)}", raw_text)
                    elif escaped and any(_ESCAPED_BYTE.search(v) for v in row):
                        raw_text = escape_undecodable("".join(lines[start:consumed]).rstrip("\r\n"))
                        batch.parse_error(i, line0 + start + 1, f"bytes that are not valid {encoding}", raw_text)
                    else:
                        changed = False  # the DLQ keeps the cells as read, never the converted record
                        if untouched:
                            record: dict[str, Any] = dict(zip(fields, row))
                        elif fix is not None:
                            record = dict(zip(fields, row))
                            empties = row.count("")
                            j = -1
                            while empties:
                                j = row.index("", j + 1)
                                empties -= 1
                                if j in fix:
                                    name, to_none = fix[j]
                                    if to_none:
                                        record[name] = None
                                    else:
                                        del record[name]
                                    changed = True
                        else:
                            record, changed = plan.record(row)
                        if fast:
                            if on_record is not None:
                                on_record(i)
                            try:
                                obj = validate(record)
                            except BaseException as exc:  # noqa: BLE001 - outcome_of re-raises what is not the record's
                                batch.fail(i, line0 + start + 1, *outcome_of(exc, "validate"), dict(zip(fields, row)) if changed else record)
                            else:
                                try:
                                    out = dump(obj)
                                except BaseException as exc:  # noqa: BLE001 - as above
                                    batch.fail(i, line0 + start + 1, *outcome_of(exc, "dump"), dict(zip(fields, row)) if changed else record)
                                else:
                                    valid_append(out)
                                    valid_i_append(i)
                        else:
                            processor.record(record, i, line0 + start + 1, batch, dict(zip(fields, row)) if changed else None)
                    i += 1
                break
            except csv.Error as exc:
                raw_text = escape_undecodable("".join(lines[consumed:reader.line_num]).rstrip("\r\n"))
                batch.parse_error(i, line0 + consumed + 1, f"malformed CSV: {exc}", raw_text)
                consumed = reader.line_num
                i += 1
        batch.seen = i


KIND = CSVKind()
