"""``arrow`` chunks: an Arrow IPC stream of record batches (Parquet input).

The driver ships columnar bytes and never builds a Python object per value; the worker
turns the columns into records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import CodecError
from .base import Chunk, ChunkKind

if TYPE_CHECKING:
    from ..worker import Batch, ChunkProcessor


def chunk(batches: list[Any], fields: list[str]) -> Chunk:
    """A chunk of record batches (one schema)."""
    return {"kind": ArrowKind.name, "ipc": ipc(batches), "fields": fields}


def ipc(batches: list[Any]) -> bytes:
    """Serialise record batches (one schema) as an Arrow IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def table(chunk: Chunk) -> Any:
    """The Arrow table an ``arrow`` chunk carries."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(chunk["ipc"]).read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise CodecError(f"corrupt Arrow chunk: {exc}") from exc


class ArrowKind(ChunkKind):
    name = "arrow"

    def parse(self, chunk: Chunk, processor: ChunkProcessor, batch: Batch) -> None:
        records(table(chunk), chunk["fields"], processor, batch)

    def split(self, chunk_: Chunk) -> tuple[Chunk, Chunk] | None:
        data = table(chunk_)
        if data.num_rows < 2:
            return None
        mid = data.num_rows // 2
        return chunk(data.slice(0, mid).to_batches(), chunk_["fields"]), chunk(data.slice(mid).to_batches(), chunk_["fields"])

    def describe_single(self, chunk: Chunk) -> tuple[int | None, Any, str | None]:
        return describe_single(table(chunk))


def records(data: Any, fields: list[str], processor: ChunkProcessor, batch: Batch) -> None:
    """Hand the rows of ``data`` (an Arrow table or record batch whose columns are
    ``fields``) to ``processor``, numbered on from the records ``batch`` has seen."""
    first = batch.seen
    columns = []
    unreadable: dict[int, tuple[str, str]] = {}  # row → (reason, raw_text), first column wins
    for name, column in zip(fields, data.columns):
        values, failed = _python_values(name, column)
        columns.append(values)
        for i, why in failed.items():
            unreadable.setdefault(first + i, why)
    batch.seen += data.num_rows
    for i, row in enumerate(zip(*columns), first):
        if i in unreadable:
            batch.parse_error(i, None, *unreadable[i])
        else:
            processor.record(dict(zip(fields, row)), i, None, batch)


def describe_single(data: Any) -> tuple[int | None, Any, str | None]:
    """``(line, raw, raw_text)`` of a one-row Arrow table, for its DLQ record."""
    try:
        rows = data.to_pylist()
    except (OverflowError, ValueError):
        return None, None, str(data)[:MAX_RAW_TEXT]
    return None, rows[0] if rows else None, None


MAX_RAW_TEXT = 65536


def _python_values(name: str, column: Any) -> tuple[list[Any], dict[int, tuple[str, str]]]:
    """The column's values as Python objects, and the rows whose value Python cannot hold
    (a timestamp beyond year 9999, say) with a reason and the raw value as Arrow prints
    it (for a timestamp: the integer and its unit), for a ``parse`` DLQ record. A value
    like that must cost its own record, not the run."""
    try:
        return column.to_pylist(), {}
    except (OverflowError, ValueError):
        pass
    array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    values: list[Any] = []
    failed: dict[int, tuple[str, str]] = {}
    for i in range(len(array)):
        try:
            values.append(array[i].as_py())
        except (OverflowError, ValueError) as exc:
            values.append(None)
            reason = f"column {name!r} ({array.type}) holds a value Python cannot represent: {exc}"
            failed[i] = (reason, f"{name}: {array.slice(i, 1)}"[:MAX_RAW_TEXT])
    return values, failed


KIND = ArrowKind()
