"""The chunk kinds, one module each, and the table that finds a chunk's kind.

* ``rows``: records the driver already parsed (JSON, SQL, Excel, HTTP), as value lists.
* ``csv``: raw bytes of whole CSV records, cut at a record boundary; the worker parses.
* ``jsonl``: raw bytes of whole JSON Lines; the worker parses.
* ``xlsx``: raw bytes of whole ``<row>`` elements of an Excel sheet; the worker parses.
* ``arrow``: an Arrow IPC stream (Parquet input), so the driver builds no Python object
  per value.

Adding a kind: a module with a ``KIND`` (a :class:`~.base.ChunkKind`) and a ``chunk()``
constructor, and one line in ``KINDS`` below.
"""

from __future__ import annotations

from ..errors import CodecError
from . import arrow, csv, jsonl, rows, xlsx
from .base import Chunk, ChunkKind

KINDS: dict[str, ChunkKind] = {kind.name: kind for kind in (rows.KIND, csv.KIND, jsonl.KIND, arrow.KIND, xlsx.KIND)}


def kind_of(chunk: Chunk) -> ChunkKind:
    """The kind that handles ``chunk``."""
    try:
        return KINDS[chunk["kind"]]
    except (KeyError, TypeError):
        raise CodecError(f"unknown chunk kind {chunk.get('kind') if isinstance(chunk, dict) else chunk!r}") from None


__all__ = ["KINDS", "Chunk", "ChunkKind", "kind_of"]
