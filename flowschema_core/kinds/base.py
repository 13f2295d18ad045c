"""What a chunk kind is: how its chunks are parsed in a worker, split to isolate a
poison record, and described when one record is left.

A chunk is a msgpack map with a ``"kind"`` key. Each kind is one module of this package
with one :class:`ChunkKind` instance, ``KIND``, registered in :mod:`.` by name; the
module also has the ``chunk(...)`` constructor its sources call. Records are numbered
*within* a chunk; the driver turns that into the record number in the source when it
writes results in order.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..worker import Batch, ChunkProcessor

Chunk = dict[str, Any]


class ChunkKind(abc.ABC):
    """One way of carrying records from the reader to the workers."""

    name: ClassVar[str]

    @abc.abstractmethod
    def parse(self, chunk: Chunk, processor: ChunkProcessor, batch: Batch) -> None:
        """Turn the chunk into records and hand each to ``processor.record`` (or say in
        ``batch`` why it could not be parsed); set ``batch.seen`` to the records seen."""

    @abc.abstractmethod
    def split(self, chunk: Chunk) -> tuple[Chunk, Chunk] | None:
        """Two smaller chunks of the same records in source order; None if it holds one."""

    @abc.abstractmethod
    def describe_single(self, chunk: Chunk) -> tuple[int | None, Any, str | None]:
        """``(line, raw, raw_text)`` of a one-record chunk, for its DLQ record."""


class ByteBlockKind(ChunkKind):
    """A kind whose chunk is a block of raw bytes (``data``) cut at record boundaries,
    starting after line ``line0``: split and described at the block's record boundaries."""

    def quote(self, chunk: Chunk) -> bytes | None:
        """The quote character whose parity marks newlines inside fields (None: none)."""
        return None

    def split(self, chunk: Chunk) -> tuple[Chunk, Chunk] | None:
        from .. import blocks

        data: bytes = chunk["data"]
        cut = blocks.middle_boundary(data, self.quote(chunk), chunk.get("dialect"))
        if cut < 0:
            return None
        left, right = dict(chunk), dict(chunk)
        left["data"], right["data"] = data[:cut], data[cut:]
        right["line0"] = chunk["line0"] + data.count(b"\n", 0, cut)
        return left, right

    def describe_single(self, chunk: Chunk) -> tuple[int | None, Any, str | None]:
        text = chunk["data"].decode(chunk["encoding"], "backslashreplace")
        lead = len(text) - len(text.lstrip("\r\n"))
        return chunk["line0"] + 1 + text[:lead].count("\n"), None, text.strip("\r\n")
