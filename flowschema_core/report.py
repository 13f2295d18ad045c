"""The run report: what a run did, in numbers, and its timeline (see :mod:`.timeline`)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .error_groups import ErrorGroup
from .errors import ConfigError
from .timeline import Sample
from .units import format_size


@dataclass
class RunReport:
    """What a run did. ``rows_read == rows_valid + rows_invalid + rows_filtered`` always."""

    run_id: str
    source: str
    sink: str
    errors_sink: str
    executor: str
    rows_read: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    rows_filtered: int = 0
    invalid_by_stage: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    bytes_read: int = 0  # msgpack payload bytes of the chunks read (the input the budget counts)
    result_bytes: int = 0  # msgpack payload bytes of the chunks' results (what workers sent back)
    result_splits: int = 0  # chunks split because their result outgrew its share of the budget
    #: Record bytes that crossed the driver process: the chunk blobs it sent to workers
    #: and the result blobs it received (LZ4 msgpack). 0 in Ray's distributed
    #: mode, where actors read and write the data themselves.
    bytes_through_driver: int = 0
    #: Ray's distributed mode: the bytes of the messages the driver exchanged with the
    #: actors (range descriptors out; counts, reasons and part names back), as pickled. It
    #: grows with the number of ranges, not with the records: what the driver does move.
    driver_message_bytes: int = 0
    max_bytes_in_flight: int = 0
    peak_bytes_in_flight: int = 0
    backpressure_waits: int = 0
    blocked_s: float = 0.0
    elapsed_s: float = 0.0
    rows_per_s: float = 0.0
    peak_rss_bytes: int = 0
    workers: int = 0
    worker_restarts: int = 0
    retries: int = 0
    record_timeouts: int = 0  # records that outlived record_timeout (in the DLQ, stage "worker")
    interrupted: bool = False
    stop_signal: str = ""  # "SIGTERM" or "SIGINT" when a signal stopped the run
    checkpoint: str = ""
    resumed_from_record: int = 0
    #: Ray's distributed mode: ranges a resumed run took from its checkpoint (their parts
    #: were committed to staging by the run that was stopped) instead of processing again.
    ranges_from_checkpoint: int = 0
    started_at: str = ""
    notes: list[str] = field(default_factory=list)  # what the source noticed and handled
    timeline: list[Sample] = field(default_factory=list)
    # The most common reasons records were refused, most frequent first (at most TOP_GROUPS).
    error_groups: list[ErrorGroup] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_valid + self.rows_invalid + self.rows_filtered

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, *, name: str = "the data") -> RunReport:
        """A report from :meth:`to_dict`'s output (keys it does not know are ignored);
        :class:`ConfigError` naming ``name`` if ``data`` is not a run report."""
        from pydantic import TypeAdapter, ValidationError

        missing = [key for key in _REQUIRED if key not in data] if isinstance(data, dict) else list(_REQUIRED)
        if missing:
            raise ConfigError(f"{name} is not a FlowSchema run report (no {', '.join(map(repr, missing[:3]))}); "
                              "write one with: flowschema run ... --report run.json")
        try:
            return TypeAdapter(cls).validate_python(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{name} is not a valid FlowSchema run report: {where}: {first['msg']}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunReport:
        """Read a report written by ``flowschema run --report PATH`` or :meth:`to_json`."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(_MAX_REPORT_CHARS + 1)  # a big file given by mistake is not read whole
        except FileNotFoundError:
            raise ConfigError(f"run report not found: {os.fspath(path)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the run report {os.fspath(path)}: {exc}") from None
        if len(text) > _MAX_REPORT_CHARS:
            raise ConfigError(f"{os.fspath(path)} is not a FlowSchema run report: it is far larger than one "
                              "(a report is a few kilobytes; its timeline keeps at most 512 samples)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{os.fspath(path)} is not a FlowSchema run report: not JSON ({exc}); "
                              "write one with: flowschema run ... --report run.json") from None
        return cls.from_dict(data, name=os.fspath(path))

    def to_html(self) -> str:
        """The report as one self-contained HTML page (tables and SVG charts, no script)."""
        from .html_report import render_html

        return render_html(self)

    def summary(self) -> str:
        """A few human lines: counts, speed, and the byte budget against its peak."""
        stages = ", ".join(f"{k} {v:,}" for k, v in sorted(self.invalid_by_stage.items())) or "none"
        status = "INTERRUPTED" if self.interrupted else "done"
        return "\n".join([
            f"run {self.run_id} {status}: {self.source} -> {self.sink} (DLQ {self.errors_sink})",
            f"  read {self.rows_read:,} = valid {self.rows_valid:,} + invalid {self.rows_invalid:,} ({stages}) + filtered {self.rows_filtered:,}",
            f"  {self.elapsed_s:.2f} s, {self.rows_per_s:,.0f} rows/s, {self.chunks} chunks, "
            f"{self.workers} workers ({self.executor}), {self.worker_restarts} restarts"
            + (f", {self.record_timeouts} records past record_timeout" if self.record_timeouts else ""),
            f"  peak bytes in flight {format_size(self.peak_bytes_in_flight)} of a {format_size(self.max_bytes_in_flight)} budget; "
            f"reader blocked {self.blocked_s:.2f} s"
            + (f"; {self.result_splits} chunks split to keep their results within it" if self.result_splits else ""),
            f"  peak RSS of the process tree {format_size(self.peak_rss_bytes)}",
        ])


#: A report is tens of kilobytes (one from before the timeline was capped, a few megabytes).
_MAX_REPORT_CHARS = 64 << 20
#: Keys every run report has; a JSON object without them is something else.
_REQUIRED = ("run_id", "source", "sink", "errors_sink", "executor", "rows_read", "rows_valid", "rows_invalid", "rows_filtered")
