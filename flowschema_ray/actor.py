"""The Ray actor that processes chunks: one :class:`ChunkProcessor` per actor.

The class is a plain Python class; :class:`~flowschema_ray.executor.RayExecutor` turns it
into an actor with ``ray.remote`` when it starts, so importing this module needs no Ray.

The worker spec arrives as cloudpickled bytes rather than as a Python argument, so the
actor can first put the driver's import paths on ``sys.path`` (where the user's model
module lives) and only then unpickle the model and hooks. Chunks arrive and leave as
LZ4 msgpack ``bytes``: the actor never receives pickled rows.
"""

from __future__ import annotations

import os
import sys


class ChunkActor:
    """Builds the model and hooks once, then turns chunk blobs into result blobs."""

    def __init__(self, spec_blob: bytes, sys_path: list[str]) -> None:
        import cloudpickle

        from flowschema_core.plugin import ChunkProcessor

        sys.path[:0] = [p for p in sys_path if p not in sys.path]
        spec = cloudpickle.loads(spec_blob)
        self._processor = ChunkProcessor(spec)
        if spec.record_timeout is not None:
            from flowschema_core.watchdog import Beacon

            self._processor.beacon = Beacon()  # the driver polls it through where()

    def ready(self) -> int:
        """Answered once the constructor has run; returns the actor's process id."""
        return os.getpid()

    def process(self, blob: bytes) -> bytes:
        return self._processor.process(blob)

    def where(self) -> int:
        """The beacon word: which record ``process`` is on (see flowschema_core.watchdog).
        Called in a concurrency group of its own, so it answers while ``process`` runs —
        unless the record holds the interpreter lock, which the driver also notices."""
        beacon = self._processor.beacon
        return beacon.word() if beacon is not None else 0
