"""The pipeline: what to read, how to validate it, where to write it, and within which
byte budget. :class:`Pipeline` is configuration only; each :meth:`Pipeline.run` creates a
:class:`~flowschema_core.run.Run`, which owns the run's state and its data flow.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from . import storage
from .budget import ErrorBudget
from .checkpoint import CheckpointStore
from .dlq import DLQ_FIELDS
from .errors import ConfigError
from .executors.base import Executor
from .hooks import Hook, as_hook
from .progress import ProgressCallback
from .progress import check as check_progress
from .registry import make_executor
from .report import RunReport
from .run import Run
from .sinks.base import Sink
from .sinks.jsonl import JSONLSink
from .sources.base import Source
from .units import parse_size

__all__ = ["DLQ_FIELDS", "Pipeline"]


class Pipeline:
    """Validate every record of ``source`` with ``model``; valid rows to ``sink``, the
    rest to ``errors`` (the DLQ) with the reason.

    :param max_bytes_in_flight: the byte budget, e.g. ``"256MB"``; msgpack bytes of the
        chunks between the reader and the sinks, their results included, never exceed it
        (a lone larger chunk, and one record's oversized result, aside: docs/budget.md).
    :param chunk_bytes: about how many msgpack bytes go in one chunk.
    :param executor: ``"process"`` (default), ``"inline"``, ``"ray"`` or an Executor.
    :param hooks: :class:`Hook` objects, or callables taken as ``before_validate`` hooks.
    :param checkpoint: a directory. Progress is recorded there durably (at most every
        ``checkpoint_interval`` seconds); running again with the same directory after a
        crash skips exactly the records already written and finishes the run, so the
        outputs equal an uninterrupted run's. A finished run's checkpoint makes a re-run a
        no-op that returns the saved report.
    :param max_invalid: the error budget: a count (``1000``) or a share (``"5%"``) of
        invalid records past which the run stops with :class:`InvalidRecordsError` (the
        DLQ keeps what it has; nothing appears under the sink's final name). Default: none.
    :param progress: ``True`` shows the run as it goes on stderr: one live line on a
        terminal, a plain line every 10 s otherwise; a callable is called (from a sampler
        thread, every ``sample_interval`` seconds, and once at the end with ``final=True``)
        with a :class:`~flowschema_core.progress.ProgressSnapshot`. Default: nothing.
    :param record_timeout: seconds one record's hooks and validation may take. A record
        that takes longer goes to the DLQ (stage ``worker``, type ``record_timeout``), its
        worker is replaced and the rest of its chunk is processed. Default: none, because
        a slow record that would have passed (a hook waiting on a slow API) must not be
        refused by a default; set it when a hook can hang. Needs an executor that runs
        records in other processes (``"process"``, ``"ray"``).
    """

    def __init__(
        self,
        source: Source,
        model: type[BaseModel],
        sink: Sink,
        errors: Sink | None = None,
        *,
        max_bytes_in_flight: int | str = "256MB",
        chunk_bytes: int | str = "1MiB",
        executor: Executor | str | None = None,
        hooks: Sequence[Hook | Any] = (),
        sample_interval: float = 0.25,
        run_id: str | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_interval: float = 1.0,
        max_invalid: int | str | None = None,
        progress: bool | ProgressCallback | None = None,
        record_timeout: float | None = None,
    ) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"model must be a pydantic.BaseModel subclass, not {model!r}")
        if not isinstance(source, Source):
            raise ConfigError(f"source must be a flowschema Source (e.g. CSVSource('file.csv')), not {type(source).__name__}")
        if not isinstance(sink, Sink) or (errors is not None and not isinstance(errors, Sink)):
            raise ConfigError("sink and errors must be flowschema Sinks (e.g. JSONLSink('out.jsonl'))")
        self.source, self.model, self.sink = source, model, sink
        self.errors = errors if errors is not None else _default_dlq(sink)
        self.max_bytes_in_flight = parse_size(max_bytes_in_flight, name="max_bytes_in_flight")
        self.chunk_bytes = parse_size(chunk_bytes, name="chunk_bytes")
        if self.chunk_bytes > self.max_bytes_in_flight:
            raise ConfigError(f"chunk_bytes ({self.chunk_bytes}) must not exceed max_bytes_in_flight ({self.max_bytes_in_flight})")
        self._executor_spec = executor
        self.executor = make_executor(executor)
        self.hooks = [as_hook(h) for h in hooks]
        self.sample_interval = sample_interval
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.checkpoint = CheckpointStore(checkpoint) if checkpoint is not None else None
        self.checkpoint_interval = checkpoint_interval
        self.error_budget = ErrorBudget.parse(max_invalid)  # a bad value is a ConfigError now, not mid-run
        check_progress(progress)  # a bad value is a ConfigError now, not mid-run
        self.progress = progress
        self.record_timeout = _record_timeout(record_timeout, self.executor)

    def run(self) -> RunReport:
        """Run to the end and return the report. Ctrl-C stops cleanly: the report then
        says ``interrupted`` and no output appears under its final name."""
        if self.executor.closed:  # a previous run shut it down
            if isinstance(self._executor_spec, Executor):
                raise ConfigError("this Pipeline's executor was shut down by its previous run; pass a new executor "
                                  "(or a name such as 'process', which gives each run its own)")
            self.executor = make_executor(self._executor_spec)
        report = self.executor.run_pipeline(self)  # an executor may run it its own way (Ray's distributed mode)
        return report if report is not None else Run(self).execute()


def _record_timeout(seconds: float | None, executor: Executor) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ConfigError(f"record_timeout must be a number of seconds above 0 (or None for no limit), got {seconds!r}")
    if not executor.enforces_record_timeout:
        raise ConfigError(f"record_timeout needs an executor that can stop a worker stuck on a record; {type(executor).__name__} "
                          "cannot (it would have to stop the driver itself): use executor='process' or 'ray'")
    return float(seconds)


def _default_dlq(sink: Sink) -> JSONLSink:
    """The DLQ beside the sink: ``orders.errors.jsonl`` (on the sink's store, with its
    storage options, when the sink is a URL such as ``s3://bucket/orders.parquet``)."""
    path = getattr(sink, "path", None)
    if isinstance(path, str) and storage.is_remote(path):
        return JSONLSink(f"{posixpath.splitext(path)[0]}.errors.jsonl", storage_options=getattr(sink, "storage_options", None))
    return JSONLSink(_default_dlq_path(sink))


def _default_dlq_path(sink: Sink) -> str:
    name = sink.name if sink.name and "://" not in sink.name else "flowschema"
    return f"{os.path.splitext(name)[0]}.errors.jsonl"


