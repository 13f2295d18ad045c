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
        data = table(chunk)
        fields = chunk["fields"]
        columns = [column.to_pylist() for column in data.columns]
        batch.seen = data.num_rows
        for i, row in enumerate(zip(*columns)):
            processor.record(dict(zip(fields, row)), i, None, batch)

    def split(self, chunk_: Chunk) -> tuple[Chunk, Chunk] | None:
        data = table(chunk_)
        if data.num_rows < 2:
            return None
        mid = data.num_rows // 2
        return chunk(data.slice(0, mid).to_batches(), chunk_["fields"]), chunk(data.slice(mid).to_batches(), chunk_["fields"])

    def describe_single(self, chunk: Chunk) -> tuple[int | None, Any, str | None]:
        rows = table(chunk).to_pylist()
        return None, rows[0] if rows else None, None


KIND = ArrowKind()
