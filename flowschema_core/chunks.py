"""The chunk kinds a source can send to workers, and how to split one in two.

A chunk is a msgpack map. Three kinds exist, chosen so the driver does as little
per-record work as possible:

* ``rows``: records already parsed by the driver (JSON, Parquet, SQL, Excel, HTTP).
  ``fields`` (or None) + ``rows`` as value lists (or dicts when ``fields`` is None);
  ``lines`` gives each record's line when the format has lines; ``bad`` lists the
  records the source could not parse: ``[index, reason, raw_text]`` with ``rows[index]``
  set to None so numbering stays contiguous.
* ``csv``: raw bytes of whole CSV records, cut at a record boundary; the worker parses.
* ``jsonl``: raw bytes of whole JSON Lines; the worker parses.
* ``arrow``: an Arrow IPC stream (Parquet input): columnar bytes the worker turns into
  records, so the driver never builds a Python object per value.

Records are numbered *within* a chunk; the driver turns that into the record number in
the source when it writes results in order.
"""

from __future__ import annotations

from typing import Any

from . import blocks
from .errors import CodecError

ROWS = "rows"
CSV = "csv"
JSONL = "jsonl"
ARROW = "arrow"


def rows_chunk(
    rows: list[Any],
    fields: list[str] | None = None,
    lines: list[int] | None = None,
    bad: list[list[Any]] | None = None,
) -> dict[str, Any]:
    return {"kind": ROWS, "fields": fields, "rows": rows, "lines": lines, "bad": bad or []}


def csv_chunk(data: bytes, line0: int, fields: list[str], dialect: dict[str, Any], encoding: str) -> dict[str, Any]:
    return {"kind": CSV, "data": data, "line0": line0, "fields": fields, "dialect": dialect, "encoding": encoding}


def jsonl_chunk(data: bytes, line0: int, encoding: str) -> dict[str, Any]:
    return {"kind": JSONL, "data": data, "line0": line0, "encoding": encoding}


def arrow_chunk(ipc: bytes, fields: list[str]) -> dict[str, Any]:
    return {"kind": ARROW, "ipc": ipc, "fields": fields}


def arrow_ipc(batches: list[Any]) -> bytes:
    """Serialise record batches (one schema) as an Arrow IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def arrow_table(chunk: dict[str, Any]) -> Any:
    """The Arrow table an ``arrow`` chunk carries."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(chunk["ipc"]).read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise CodecError(f"corrupt Arrow chunk: {exc}") from exc


def split(chunk: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Split a chunk into two smaller chunks in source order; None if it holds one record."""
    kind = chunk["kind"]
    if kind == ARROW:
        table = arrow_table(chunk)
        if table.num_rows < 2:
            return None
        mid = table.num_rows // 2
        halves = (table.slice(0, mid), table.slice(mid))
        return tuple(arrow_chunk(arrow_ipc(half.to_batches()), chunk["fields"]) for half in halves)  # type: ignore[return-value]
    if kind == ROWS:
        rows = chunk["rows"]
        if len(rows) < 2:
            return None
        mid = len(rows) // 2
        lines = chunk["lines"]
        left_bad = [b for b in chunk["bad"] if b[0] < mid]
        right_bad = [[b[0] - mid, *b[1:]] for b in chunk["bad"] if b[0] >= mid]
        return (
            rows_chunk(rows[:mid], chunk["fields"], lines and lines[:mid], left_bad),
            rows_chunk(rows[mid:], chunk["fields"], lines and lines[mid:], right_bad),
        )
    data: bytes = chunk["data"]
    quote = chunk["dialect"].get("quotechar", '"').encode() if kind == CSV else None
    if kind == CSV and not chunk["dialect"].get("quoting_enabled", True):
        quote = None
    cut = blocks.middle_boundary(data, quote, chunk["dialect"] if kind == CSV else None)
    if cut < 0:
        return None
    left, right = dict(chunk), dict(chunk)
    left["data"], right["data"] = data[:cut], data[cut:]
    right["line0"] = chunk["line0"] + data.count(b"\n", 0, cut)
    return left, right


def describe_single(chunk: dict[str, Any]) -> tuple[int | None, Any, str | None]:
    """For a one-record chunk, return ``(line, raw, raw_text)`` for its DLQ record."""
    if chunk["kind"] == ARROW:
        rows = arrow_table(chunk).to_pylist()
        return None, rows[0] if rows else None, None
    if chunk["kind"] == ROWS:
        rows = chunk["rows"]
        row = rows[0] if rows else None
        if chunk["fields"] is not None and row is not None:
            row = dict(zip(chunk["fields"], row))
        line = chunk["lines"][0] if chunk["lines"] else None
        return line, row, None
    text = chunk["data"].decode(chunk["encoding"], "backslashreplace")
    lead = len(text) - len(text.lstrip("\r\n"))
    return chunk["line0"] + 1 + text[:lead].count("\n"), None, text.strip("\r\n")
