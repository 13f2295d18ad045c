"""The driver: read → ledger → executor → sinks, in source order, within a byte budget.

::

    reader thread                         main thread (completion loop)
    ─────────────                         ─────────────────────────────
    for blob, n in source.chunks():       for future, n, blob in submitted (FIFO):
        ledger.acquire(n)   ◄─ blocks ─┐      result = future.result()   (split on crash)
        future = executor.submit(blob) │      sink.write(valid rows); dlq.write(errors)
        submitted.put(future, n, blob) └───── ledger.release(n)

Credits come back only after a chunk's results reached the sinks, so everything in
between (executor queues, workers, finished results waiting for an earlier chunk) stays
inside ``max_bytes_in_flight``. Results are written strictly in source order, which makes
record numbers exact and lets a checkpoint say "everything up to record N is written".

A chunk that keeps killing its worker is split in halves until the record responsible
stands alone; that record goes to the DLQ with stage ``worker``, the rest is processed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from pydantic import BaseModel

from . import checkpoint as checkpoint_mod
from . import chunks, codec
from .checkpoint import CheckpointStore, fault_point
from .errors import AccountingError, ConfigError, FlowSchemaError, WorkerCrashedError
from .executors.base import Executor
from .hooks import Hook, as_hook
from .ledger import ByteLedger
from .registry import make_executor
from .report import RunReport, Sampler
from .sinks.base import Sink
from .sinks.jsonl import JSONLSink
from .sources.base import Source
from .units import parse_size
from .worker import WorkerSpec

#: Fields of a DLQ record, in the order a tabular DLQ sink (CSV, SQL) writes them.
DLQ_FIELDS = ["run_id", "source", "record", "line", "stage", "errors", "raw", "raw_text", "ts"]

_END = object()


class Pipeline:
    """Validate every record of ``source`` with ``model``; valid rows to ``sink``, the
    rest to ``errors`` (the DLQ) with the reason.

    :param max_bytes_in_flight: the byte budget, e.g. ``"256MB"``; msgpack bytes of the
        chunks between the reader and the sinks never exceed it (a lone larger chunk aside).
    :param chunk_bytes: about how many msgpack bytes go in one chunk.
    :param executor: ``"process"`` (default), ``"inline"``, ``"ray"`` or an Executor.
    :param hooks: :class:`Hook` objects, or callables taken as ``before_validate`` hooks.
    :param checkpoint: a directory. Progress is recorded there durably (at most every
        ``checkpoint_interval`` seconds); running again with the same directory after a
        crash skips exactly the records already written and finishes the run, so the
        outputs equal an uninterrupted run's. A finished run's checkpoint makes a re-run a
        no-op that returns the saved report.
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
    ) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"model must be a pydantic.BaseModel subclass, not {model!r}")
        if not isinstance(source, Source):
            raise ConfigError(f"source must be a flowschema Source (e.g. CSVSource('file.csv')), not {type(source).__name__}")
        if not isinstance(sink, Sink) or (errors is not None and not isinstance(errors, Sink)):
            raise ConfigError("sink and errors must be flowschema Sinks (e.g. JSONLSink('out.jsonl'))")
        self.source, self.model, self.sink = source, model, sink
        self.errors = errors if errors is not None else JSONLSink(_default_dlq_path(sink))
        self.max_bytes_in_flight = parse_size(max_bytes_in_flight, name="max_bytes_in_flight")
        self.chunk_bytes = parse_size(chunk_bytes, name="chunk_bytes")
        if self.chunk_bytes > self.max_bytes_in_flight:
            raise ConfigError(f"chunk_bytes ({self.chunk_bytes}) must not exceed max_bytes_in_flight ({self.max_bytes_in_flight})")
        self.executor = make_executor(executor)
        self.hooks = [as_hook(h) for h in hooks]
        self.sample_interval = sample_interval
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.checkpoint = CheckpointStore(checkpoint) if checkpoint is not None else None
        self.checkpoint_interval = checkpoint_interval

    # ------------------------------------------------------------------------------
    def run(self) -> RunReport:
        """Run to the end and return the report. Ctrl-C stops cleanly: the report then
        says ``interrupted`` and no output appears under its final name."""
        state = self._load_checkpoint()
        if state is not None and state["phase"] == "done":
            return RunReport(**state["report"])
        report = RunReport(
            run_id=self.run_id, source=self.source.name, sink=self.sink.name, errors_sink=self.errors.name,
            executor=type(self.executor).__name__, max_bytes_in_flight=self.max_bytes_in_flight,
            started_at=_now(), checkpoint=self.checkpoint.directory if self.checkpoint else "",
        )
        skip_chunks = 0
        self._chunks_done = 0
        if state is not None:
            for name in _PROGRESS_FIELDS:
                setattr(report, name, state["report"][name])
            report.resumed_from_record = report.rows_read
            skip_chunks = self._chunks_done = state["chunks_done"]
            if state["phase"] == "finalizing":
                return self._finish(report)
        ledger = ByteLedger(self.max_bytes_in_flight)
        sampler = Sampler(self.sample_interval, lambda: ledger.in_flight, lambda: report.rows_read)
        submitted: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        started = time.perf_counter()
        reader: threading.Thread | None = None
        opened: list[Sink] = []
        try:
            self.executor.start(WorkerSpec(self.model, self.hooks, self.sink.output_form))
            report.workers = self.executor.stats.workers
            sampler.start()
            self._open_sinks(state, opened)
            reader = threading.Thread(target=self._read, args=(ledger, submitted, stop, report, skip_chunks), name="flowschema-reader", daemon=True)
            reader.start()
            self._complete(ledger, submitted, report, skip_chunks)
            reader.join()
            self._check(report, ledger)
            if self.checkpoint is None:
                for sink in opened:
                    sink.commit()
            else:
                self._save_checkpoint(report, "finalizing")
                fault_point("finalize")
                self._finish(report)
        except KeyboardInterrupt:
            report.interrupted = True
            self._abort(stop, ledger, opened)
        except BaseException:
            self._abort(stop, ledger, opened)
            raise
        finally:
            self.executor.shutdown(wait=not report.interrupted, cancel_futures=report.interrupted)
            self.source.close()
            if reader is not None:
                reader.join(timeout=5)
            sampler.stop()
            self._measure(report, ledger, sampler, time.perf_counter() - started)
        return report

    def _open_sinks(self, state: dict[str, Any] | None, opened: list[Sink]) -> None:
        """Open the sink and the DLQ (at their checkpointed state, when resuming)."""
        for i, (sink, fields, model) in enumerate(((self.sink, list(self.model.model_fields), self.model), (self.errors, DLQ_FIELDS, None))):
            if self.checkpoint is None:
                sink.open(fields, model)
            else:
                sink.open_resumable(fields, model, f"{self.checkpoint.key}{i}", state["sinks"][i] if state else None)
            opened.append(sink)

    def _measure(self, report: RunReport, ledger: ByteLedger, sampler: Sampler, elapsed: float) -> None:
        report.elapsed_s = elapsed
        report.rows_per_s = report.rows_read / elapsed if elapsed else 0.0
        report.peak_bytes_in_flight = ledger.peak
        report.backpressure_waits, report.blocked_s = ledger.waits, ledger.blocked_s
        report.peak_rss_bytes, report.timeline = sampler.peak_rss, sampler.samples
        report.worker_restarts, report.retries = self.executor.stats.restarts, self.executor.stats.retries

    def _abort(self, stop: threading.Event, ledger: ByteLedger, opened: Iterable[Sink]) -> None:
        stop.set()
        ledger.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for sink in opened:
            if self.checkpoint is not None:
                sink.suspend()  # a checkpointed run keeps its partial output for the resume
            else:
                sink.abort()

    # -- reader thread ---------------------------------------------------------------
    def _read(self, ledger: ByteLedger, submitted: queue.Queue[Any], stop: threading.Event, report: RunReport, skip_chunks: int) -> None:
        try:
            for index, (blob, n) in enumerate(self.source.chunks(self.chunk_bytes)):
                if index < skip_chunks:
                    continue  # already in the sinks, says the checkpoint
                if stop.is_set() or not ledger.acquire(n):
                    return
                report.chunks += 1
                report.bytes_read += n
                submitted.put((self.executor.submit(blob), n, blob))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            submitted.put(exc)
        finally:
            submitted.put(_END)

    # -- main thread -----------------------------------------------------------------
    def _complete(self, ledger: ByteLedger, submitted: queue.Queue[Any], report: RunReport, chunks_done: int) -> None:
        last_checkpoint = time.monotonic()
        while True:
            item = submitted.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                if isinstance(item, FlowSchemaError):
                    raise item
                raise FlowSchemaError(f"reading {self.source.name} failed: {type(item).__name__}: {item}") from item
            future, n, blob = item
            self._settle(future, blob, report)
            ledger.release(n)
            chunks_done += 1
            self._chunks_done = chunks_done
            if self.checkpoint is not None and time.monotonic() - last_checkpoint >= self.checkpoint_interval:
                self._save_checkpoint(report, "running")
                last_checkpoint = time.monotonic()

    def _settle(self, future: Future[bytes], blob: bytes, report: RunReport) -> None:
        """Write one chunk's results; if it kept crashing workers, split it and retry."""
        try:
            result = codec.decode(future.result())
        except WorkerCrashedError as crash:
            chunk = codec.decode(blob)
            halves = chunks.split(chunk)
            if halves is None:
                self._write(_poison_result(chunk, crash), report)
                return
            pieces = [codec.encode(half)[0] for half in halves]
            futures = [self.executor.submit(piece) for piece in pieces]
            for piece, piece_future in zip(pieces, futures):
                self._settle(piece_future, piece, report)
            return
        self._write(result, report)

    def _write(self, result: dict[str, Any], report: RunReport) -> None:
        n, valid, filtered, errors = result["n"], result["valid"], result["filtered"], result["errors"]
        if n != valid + len(errors) + filtered:
            raise AccountingError(f"a chunk of {n} records came back as {valid} valid + {len(errors)} invalid + {filtered} filtered")
        base = report.rows_read
        if valid:
            refused = self.sink.write(result["data"])
            if refused:
                errors = errors + self._refused(refused, result)
                valid -= len(refused)
        if errors:
            ts = _now()
            records = []
            for e in errors:
                records.append({
                    "run_id": self.run_id, "source": self.source.name, "record": base + e["i"] + 1,
                    "line": e["line"], "stage": e["stage"], "errors": e["errors"], "raw": e["raw"],
                    "raw_text": e["raw_text"], "ts": ts,
                })
                report.invalid_by_stage[e["stage"]] = report.invalid_by_stage.get(e["stage"], 0) + 1
            self.errors.write_records(records)
        report.rows_read += n
        report.rows_valid += valid
        report.rows_invalid += len(errors)
        report.rows_filtered += filtered

    def _refused(self, refused: Sequence[tuple[int, str]], result: dict[str, Any]) -> list[dict[str, Any]]:
        """DLQ entries (stage ``sink``) for the rows the sink refused."""
        fields = list(self.model.model_fields)
        entries = []
        for position, reason in refused:
            data = result["data"]
            raw = dict(zip(fields, data[position])) if self.sink.output_form == "python" else None
            entries.append({
                "i": result["valid_i"][position], "line": None, "stage": "sink", "raw": raw, "raw_text": None,
                "errors": [{"type": "sink_refused", "loc": [], "msg": reason, "input": None}],
            })
        return entries

    # -- checkpoints -----------------------------------------------------------------
    def _fingerprint(self) -> dict[str, Any]:
        source = dict(self.source.fingerprint())
        path = getattr(self.source, "path", None)
        if isinstance(path, str):
            source.update(checkpoint_mod.file_identity(path))
        fingerprint = {
            "source": source,
            "model": checkpoint_mod.model_digest(self.model),
            "sink": [type(self.sink).__name__, self.sink.name, self.sink.output_form],
            "errors": [type(self.errors).__name__, self.errors.name],
            "chunk_bytes": self.chunk_bytes,
            "hooks": [h.name for h in self.hooks],
        }
        return json.loads(json.dumps(fingerprint, default=str))  # as it will read back

    def _load_checkpoint(self) -> dict[str, Any] | None:
        if self.checkpoint is None:
            return None
        state = self.checkpoint.load()
        if state is None:
            return None
        checkpoint_mod.check_fingerprint(state["fingerprint"], self._fingerprint(), self.checkpoint.directory)
        self.run_id = state["run_id"]  # DLQ records of a resumed run keep the first run's id
        return state

    def _save_checkpoint(self, report: RunReport, phase: str) -> None:
        assert self.checkpoint is not None
        sinks = [self.sink.checkpoint(), self.errors.checkpoint()]
        fault_point("checkpoint-commit")
        self.checkpoint.save({
            "phase": phase, "run_id": self.run_id, "fingerprint": self._fingerprint(),
            "chunks_done": self._chunks_done, "sinks": sinks,
            "report": {name: getattr(report, name) for name in _PROGRESS_FIELDS},
        })

    def _finish(self, report: RunReport) -> RunReport:
        """Second phase of a checkpointed finish: move outputs into place, mark done."""
        assert self.checkpoint is not None
        for i, sink in enumerate((self.sink, self.errors)):
            sink.finish_commit(f"{self.checkpoint.key}{i}")
        final = report.to_dict()
        final["timeline"] = []
        self.checkpoint.save({
            "phase": "done", "run_id": self.run_id, "fingerprint": self._fingerprint(),
            "chunks_done": self._chunks_done, "sinks": [], "report": final,
        })
        return report

    def _check(self, report: RunReport, ledger: ByteLedger) -> None:
        if not report.balanced:
            raise AccountingError(
                f"read {report.rows_read} != valid {report.rows_valid} + invalid {report.rows_invalid} + filtered {report.rows_filtered}"
            )
        if ledger.outstanding or ledger.in_flight:
            raise AccountingError(f"{ledger.outstanding} chunks ({ledger.in_flight} bytes) never came back")


#: RunReport fields a checkpoint carries over to the resumed run.
_PROGRESS_FIELDS = ("rows_read", "rows_valid", "rows_invalid", "rows_filtered", "invalid_by_stage", "chunks", "bytes_read")


def _poison_result(chunk: dict[str, Any], crash: WorkerCrashedError) -> dict[str, Any]:
    """The result of a one-record chunk that crashed its worker every time it was tried."""
    line, raw, raw_text = chunks.describe_single(chunk)
    entry: dict[str, Any] = {"type": "worker_crashed", "loc": [], "msg": str(crash), "input": None}
    error = {"i": 0, "line": line, "stage": "worker", "errors": [entry], "raw": raw, "raw_text": raw_text}
    return {"n": 1, "valid": 0, "filtered": 0, "data": None, "valid_i": [], "errors": [error]}


def _default_dlq_path(sink: Sink) -> str:
    name = sink.name if sink.name and "://" not in sink.name else "flowschema"
    return f"{os.path.splitext(name)[0]}.errors.jsonl"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
