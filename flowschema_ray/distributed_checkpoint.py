"""The checkpoint of a distributed run: resume by committed ranges.

::

    state.json (the store of flowschema_core.checkpoint, same fingerprint + "mode": "distributed")
      ranges: {desc: the input as described, plan: the exact ranges,
               done: {range index: [outcome of each of its pieces: counts, reasons, part names and sizes]}}
    staging: .NAME.KEY0.staging/ (sink parts), .NAME.KEY1.staging/ (DLQ parts), beside the outputs
             (in the same bucket for s3:// outputs; the state holds no storage options)

A range is recorded once all its pieces have settled: its parts were written (whole, under
their final part names) before the actor answered. The state is saved as ranges settle,
at most every ``checkpoint_interval`` seconds, and once more when the run stops or fails.
The staging directories have stable names derived from the store's key, so they outlive a
stopped, failed or killed run. A resume loads the plan (it does not describe or scan the
input again), keeps each recorded range whose parts are all still there with their
recorded sizes, redoes the others and commits as usual; the finished run marks the state
``done``, as the single-driver mode does, and a run of a done checkpoint returns its report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowschema_core import checkpoint as checkpoint_mod
from flowschema_core import range_io
from flowschema_core.checkpoint import CheckpointStore

if TYPE_CHECKING:
    from flowschema_core.pipeline import Pipeline
    from flowschema_core.report import RunReport

log = logging.getLogger("flowschema")

MODE = "distributed"


class RangeCheckpoint:
    """Loads, checks and saves a distributed run's state in ``store``."""

    def __init__(self, pipeline: Pipeline, store: CheckpointStore) -> None:
        self.store, self.interval = store, pipeline.checkpoint_interval
        # The mode is part of the fingerprint: a single-driver checkpoint (chunks) and a
        # distributed one (ranges) cannot resume each other.
        self.fingerprint = {**checkpoint_mod.fingerprint(pipeline), "mode": MODE}
        self.saved = store.load()
        self.last_save = 0.0

    @property
    def of_single_driver(self) -> bool:
        """The saved state was written by a single-driver run (which must resume it)."""
        return self.saved is not None and self.saved["fingerprint"].get("mode") != MODE

    def check(self) -> None:
        """Refuse a saved state of another run (source, model, options or mode)."""
        if self.saved is not None:
            checkpoint_mod.check_fingerprint(self.saved["fingerprint"], self.fingerprint, self.store.directory)

    def staging_names(self, outputs: Mapping[str, range_io.Where]) -> dict[str, range_io.Place]:
        """The stable staging place of each output (``.NAME.KEYi.staging`` beside it: a
        directory, or a prefix in the same bucket). ``outputs``: the final places."""
        named = {}
        for i, (key, final) in enumerate(outputs.items()):
            final = range_io.place(final)
            named[key] = range_io.staging_beside(final.location, final.storage_options, f"{self.store.key}{i}")
        return named

    def staging(self, outputs: Mapping[str, range_io.Where], *, fresh: bool) -> dict[str, range_io.Place]:
        """The staging places, made (and emptied first when ``fresh``)."""
        staging = self.staging_names(outputs)
        for key, where in staging.items():
            if fresh:
                range_io.remove_staging(where)  # a deleted checkpoint's parts must not be mixed in
            range_io.open_staging(where, range_io.place(outputs[key]).location)
        return staging

    def kept(self, staging: dict[str, range_io.Place]) -> dict[int, list[dict[str, Any]]]:
        """The recorded ranges whose parts are all still in ``staging`` with their recorded
        sizes (index -> outcomes of its pieces); the others are redone."""
        assert self.saved is not None
        kept = {}
        for index, outcomes in self.saved["ranges"]["done"].items():
            intact = all(range_io.part_size(staging[key], o[f"{key}_part"]) == o[f"{key}_size"]
                         for o in outcomes for key in ("sink", "dlq") if o[f"{key}_part"])
            if intact:
                kept[int(index)] = outcomes
            else:
                log.warning("checkpoint: a part of range %s is missing or changed; redoing the range", index)
        return kept

    def due(self) -> bool:
        """Whether ``checkpoint_interval`` has passed since the last save."""
        return time.monotonic() - self.last_save >= self.interval

    def save(self, phase: str, run_id: str, report: RunReport, ranges: dict[str, Any]) -> None:
        """Record the run's ranges (``ranges``: desc, plan, done)."""
        progress = {name: getattr(report, name) for name in checkpoint_mod.PROGRESS_FIELDS}
        state = checkpoint_mod.make_state(self.fingerprint, phase=phase, run_id=run_id, chunks_done=len(ranges["done"]), sinks=[],
                                          report=progress)
        state["ranges"] = ranges
        self.store.save(state)
        self.last_save = time.monotonic()
        log.debug("checkpoint %s: %d of %d ranges", phase, len(ranges["done"]), len(ranges["plan"]))

    def finish(self, run_id: str, report: RunReport) -> None:
        """Mark the checkpoint done: a run of it returns this report and writes nothing."""
        final = report.to_dict()
        final["timeline"] = []
        checkpoint_mod.save_state(self.store, self.fingerprint, phase="done", run_id=run_id, chunks_done=report.chunks, sinks=[],
                                  report=final)
