"""``rows`` chunks: records the driver already parsed (JSON, SQL, Excel, HTTP).

``fields`` (or None) + ``rows`` as value lists (dicts when ``fields`` is None);
``lines`` gives each record's line when the format has lines; ``bad`` lists the records
the source could not parse, ``[index, reason, raw_text]``, with ``rows[index]`` None so
that numbering stays contiguous. ``origin`` (optional) gives each record's ``[source,
record, line]`` when it was numbered elsewhere (a replayed DLQ): it comes back in the chunk's
result, and the driver writes DLQ records with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Chunk, ChunkKind

if TYPE_CHECKING:
    from ..worker import Batch, ChunkProcessor


def chunk(rows: list[Any], fields: list[str] | None = None, lines: list[int] | None = None, bad: list[list[Any]] | None = None,
          nulls: dict[str, Any] | None = None, origin: list[list[Any]] | None = None) -> Chunk:
    """``nulls`` (``{"mode": ..., "tokens": [...]}``) when the source's empty cells follow the
    null policy (:mod:`flowschema_core.nulls`): Excel's do, JSON's and SQL's nulls are data.
    With ``fields`` None, rows are dicts and each is read under the plan for its own keys."""
    made: Chunk = {"kind": RowsKind.name, "fields": fields, "rows": rows, "lines": lines, "bad": bad or []}
    if nulls:
        made["nulls"] = nulls
    if origin is not None:
        made["origin"] = origin
    return made


class RowsKind(ChunkKind):
    name = "rows"

    def parse(self, chunk: Chunk, processor: ChunkProcessor, batch: Batch) -> None:
        fields, lines = chunk["fields"], chunk["lines"]
        bad = {b[0]: b for b in chunk["bad"]}
        nulls = chunk.get("nulls")
        plan = processor.nulls.plan(fields, nulls["mode"], nulls["tokens"]) if nulls and fields is not None else None
        batch.seen = len(chunk["rows"])
        batch.origin = chunk.get("origin")
        for i, row in enumerate(chunk["rows"]):
            line = lines[i] if lines else None
            if row is None:
                _, reason, raw_text = bad[i]
                batch.parse_error(i, line, reason, raw_text)
            elif fields is None and nulls:
                # Dicts under the null policy (a replayed DLQ's CSV records, whose columns
                # may differ from one record to the next): a plan per header, cached.
                record, changed = processor.nulls.plan(list(row), nulls["mode"], nulls["tokens"]).record(list(row.values()))
                processor.record(record, i, line, batch, row if changed else None)
            elif fields is None:
                processor.record(row, i, line, batch)
            elif plan is not None:
                record, changed = plan.record(row)
                processor.record(record, i, line, batch, dict(zip(fields, row)) if changed else None)
            else:
                processor.record(dict(zip(fields, row)), i, line, batch)

    def split(self, chunk_: Chunk) -> tuple[Chunk, Chunk] | None:
        rows = chunk_["rows"]
        if len(rows) < 2:
            return None
        mid = len(rows) // 2
        lines = chunk_["lines"]
        left_bad = [b for b in chunk_["bad"] if b[0] < mid]
        right_bad = [[b[0] - mid, *b[1:]] for b in chunk_["bad"] if b[0] >= mid]
        nulls, origin = chunk_.get("nulls"), chunk_.get("origin")
        return (
            chunk(rows[:mid], chunk_["fields"], lines and lines[:mid], left_bad, nulls, origin and origin[:mid]),
            chunk(rows[mid:], chunk_["fields"], lines and lines[mid:], right_bad, nulls, origin and origin[mid:]),
        )

    def describe_single(self, chunk: Chunk) -> tuple[int | None, Any, str | None]:
        rows = chunk["rows"]
        row = rows[0] if rows else None
        if chunk["fields"] is not None and row is not None:
            row = dict(zip(chunk["fields"], row))
        line = chunk["lines"][0] if chunk["lines"] else None
        return line, row, None


KIND = RowsKind()
