"""The Ray actor of distributed mode: a :class:`~flowschema_ray.actor.ChunkActor` (model
and hooks built once) that also reads, scans and processes byte ranges of the input
itself (:mod:`flowschema_core.range_work`). The driver sends descriptors, never records.

A plain Python class like ChunkActor: :mod:`flowschema_ray.distributed` makes it an actor.
"""

from __future__ import annotations

from typing import Any

from .actor import ChunkActor


class RangeActor(ChunkActor):
    """Describe the input, scan ranges, process exact ranges into part files, and upload
    the commit parts of an S3 output."""

    def describe(self, source: Any, unit_bytes: int) -> dict[str, Any]:
        from flowschema_core import range_work

        return range_work.describe(source, unit_bytes)

    def scan(self, desc: dict[str, Any], start: int, end: int) -> dict[str, Any]:
        from flowschema_core import range_work

        return range_work.scan(desc, start, end)

    def process_range(self, desc: dict[str, Any], piece: dict[str, Any], staging: dict[str, Any], run_id: str, attempt: int) -> dict[str, Any]:
        from flowschema_core import range_work

        return range_work.process(self._processor, desc, piece, staging, run_id, attempt)

    def split_range(self, desc: dict[str, Any], piece: dict[str, Any]) -> list[dict[str, Any]] | None:
        from flowschema_core import range_work

        return range_work.split(desc, piece)

    def isolate(self, desc: dict[str, Any], piece: dict[str, Any], staging: dict[str, Any], run_id: str, reason: str) -> dict[str, Any]:
        from flowschema_core import range_work

        return range_work.isolate(desc, piece, staging, run_id, reason)

    def probe(self, path: str, directories: list[Any], storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
        from flowschema_core import range_work

        return range_work.probe(path, directories, storage_options)

    def upload_group(self, upload: Any, number: int, staging: Any, group: list[tuple[str, int]], head: bytes) -> dict[str, Any]:
        """Upload part ``number`` of an S3 output's multipart upload from its staged parts
        (:func:`flowschema_core.range_io.upload_group`): the commit's bytes cross an actor."""
        from flowschema_core import range_io

        return range_io.upload_group(upload, number, staging, group, head)
