"""The chunk kinds, one module each, and the table that finds a chunk's kind.

* ``rows``: records the driver already parsed (JSON, SQL, Excel, HTTP), as value lists.
* ``csv``: raw bytes of whole CSV records, cut at a record boundary; the worker parses.
* ``jsonl``: raw bytes of whole JSON Lines; the worker parses.
* ``xlsx``: raw bytes of whole ``<row>`` elements of an Excel sheet; the worker parses.
* ``arrow``: an Arrow IPC stream (Parquet input), so the driver builds no Python object
  per value.

Adding a kind: a module with a ``KIND`` (a :class:`~.base.ChunkKind`) and a ``chunk()``
constructor, and one line in ``KINDS`` below (its name and module).
"""

from __future__ import annotations

import importlib

from ..errors import CodecError
from .base import Chunk, ChunkKind

#: Kind name -> the module whose ``KIND`` handles it. A kind's module is imported with its
#: first chunk, so a worker that validates CSV never loads the Excel reader's patterns.
KINDS: dict[str, str] = {"rows": ".rows", "csv": ".csv", "jsonl": ".jsonl", "arrow": ".arrow", "xlsx": ".xlsx"}


def kind_of(chunk: Chunk) -> ChunkKind:
    """The kind that handles ``chunk``."""
    try:
        module = KINDS[chunk["kind"]]
    except (KeyError, TypeError):
        raise CodecError(f"unknown chunk kind {chunk.get('kind') if isinstance(chunk, dict) else chunk!r}") from None
    kind: ChunkKind = importlib.import_module(module, __name__).KIND
    return kind


__all__ = ["KINDS", "Chunk", "ChunkKind", "kind_of"]
