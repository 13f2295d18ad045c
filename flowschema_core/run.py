"""One run of a pipeline: read → ledger → executor → sinks, in source order, within a
byte budget. :class:`Run` is created by :meth:`Pipeline.run` and used once; it owns
every piece of per-run state (ledger, queue, reader thread, report, checkpoint position),
so that :class:`~flowschema_core.pipeline.Pipeline` stays configuration.

::

    reader thread                           main thread (completion loop)
    ─────────────                           ─────────────────────────────
    for blob, n in source.chunks():         for future, n, a, blob in submitted (FIFO):
        a = allowance.of(n)                     result = future.result()   (split on crash
        ledger.acquire(n, a)  ◄─ blocks ─┐                                  or result too large)
        blob = with_allowance(blob, a)   │      sink.write(valid rows); dlq.write(errors)
        future = executor.submit(blob)   │
        submitted.put(future, n, a, blob)└───── ledger.release(n, a)

A chunk reserves its input ``n`` and an allowance ``a`` for its result (see
:mod:`flowschema_core.ledger`), and credits come back only after its results reached the
sinks, so everything in between (executor queues, workers, finished results waiting for
an earlier chunk) stays inside ``max_bytes_in_flight``. Results are written strictly in
source order, which makes record numbers exact and lets a checkpoint say "everything up
to record N is written".

A chunk that keeps killing its worker is split in halves until the record responsible
stands alone; that record goes to the DLQ with stage ``worker``, the rest is processed.
Its halves run at once, sharing its allowance in proportion to their size. A chunk whose
result would outgrow its allowance comes back as its size only: the ratio is raised from
it, and the chunk is split in halves that run one after the other, each with the whole
allowance (the first half is written before the second is sent), until each piece fits
or holds one record. Either way the records of the halves are written in order and the
chunk still counts as one for ``chunks`` and the checkpoint; hooks run again for the
records of a chunk that was split.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import checkpoint as checkpoint_mod
from . import codec, dlq, progress
from .checkpoint import fault_point
from .dlq import DLQ_FIELDS, ChunkError, ChunkResult
from .error_groups import ErrorGroups
from .errors import AccountingError, FlowSchemaError, InvalidRecordsError, WorkerCrashedError
from .kinds import kind_of
from .ledger import ByteLedger, ResultAllowance
from .report import RunReport
from .sinks.base import Sink
from .sinks.jsonl import JSONLSink
from .stopping import StopSignals
from .timeline import Sampler
from .worker import WorkerSpec

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger("flowschema")

_END = object()


class Run:
    """One execution of a :class:`Pipeline`: call :meth:`execute` once."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.source, self.sink, self.errors, self.executor = pipeline.source, pipeline.sink, pipeline.errors, pipeline.executor
        self.store = pipeline.checkpoint
        self.run_id = pipeline.run_id
        # Decided before the fingerprint: whether the workers hold a context (the Excel fast
        # reader) changes how the input is cut into chunks, so a resume must decide the same.
        self.context = self._worker_context()
        # What this run's checkpoint must match; computed once (it hashes the model's schema).
        self.fingerprint = checkpoint_mod.fingerprint(pipeline) if self.store is not None else {}
        if self.store is not None and self.context is not None:
            self.fingerprint["worker_context"] = True  # absent otherwise: other sources' checkpoints stay as they were
        self.state = checkpoint_mod.load_state(self.store, self.fingerprint) if self.store is not None else None
        if self.state is not None and self.sink.commits_chunks:  # its database may be ahead of state.json
            self.state = checkpoint_mod.newest_state(self.state, self.sink.committed_state(self._sink_key(0)))
        if self.state is not None:
            self.run_id = self.state["run_id"]  # DLQ records of a resumed run keep the first run's id
        self.chunks_done = 0  # chunks whose results are in the sinks (checkpoint position)
        self.bytes_done = 0  # their input bytes (the report's chunks and bytes_read count chunks read, in flight too)
        self.skip_chunks = 0  # chunks a resumed run must not read again
        self.source_position: Any = None  # the source's position after the chunks done (if it can seek)
        self.ledger = ByteLedger(pipeline.max_bytes_in_flight)
        self.allowance = ResultAllowance()  # result bytes a chunk reserves beside its input
        self.submitted: queue.Queue[Any] = queue.Queue()
        self.stop = threading.Event()
        # Set once the first chunk has come back, and with it the first measured result
        # ratio: until then the reader sends one chunk per worker only (see _read).
        self.first_result = threading.Event()
        self.reader: threading.Thread | None = None
        self.opened: list[Sink] = []
        self.budget = pipeline.error_budget
        self.error_groups = ErrorGroups()  # why records were refused: for the report and the budget's message
        self.report = RunReport(
            run_id=self.run_id, source=self.source.name, sink=self.sink.name, errors_sink=self.errors.name,
            executor=type(self.executor).__name__, max_bytes_in_flight=pipeline.max_bytes_in_flight,
            started_at=dlq.timestamp(), checkpoint=self.store.directory if self.store else "",
        )

    # ------------------------------------------------------------------------------
    def execute(self) -> RunReport:
        state, report = self.state, self.report
        if state is not None:
            if state["phase"] == "done":
                return RunReport(**state["report"])
            for name in checkpoint_mod.PROGRESS_FIELDS:
                setattr(report, name, state["report"].get(name, getattr(report, name)))
            report.resumed_from_record = report.rows_read
            self.skip_chunks = self.chunks_done = state["chunks_done"]
            self.bytes_done = report.bytes_read
            if state.get("source_position") is not None:  # resume where the source says, not by reading again
                self.source.seek(state["source_position"])
                self.source_position, self.skip_chunks = state["source_position"], 0
            log.info("resuming %s after %d chunks (%d records)", self.store.directory if self.store else "", self.chunks_done, report.rows_read)
            if state["phase"] == "finalizing":
                return self._finish()
        with StopSignals() as signals:
            report = self._execute(signals)
        if signals.received is not None and not report.interrupted:
            # It came while the run was finishing: the outputs are in place; now stop as
            # the signal asks (the program's own handler is back in place).
            log.warning("%s arrived while the run was finishing; the run completed, stopping now", signals.name)
            signal.raise_signal(signals.received)
        return report

    def _execute(self, signals: StopSignals) -> RunReport:
        report = self.report
        sampler = Sampler(self.pipeline.sample_interval, lambda: self.ledger.in_flight, lambda: report.rows_read,
                          watch=progress.watcher(self, self.pipeline.progress, every=self.pipeline.sample_interval))
        started = time.perf_counter()
        try:
            with signals.interruptible():  # after it, finishing: a signal is only recorded
                context = self.context
                self.executor.start(WorkerSpec(self.pipeline.model, self.pipeline.hooks, self.sink.output_form, self.pipeline.record_timeout,
                                               context=context))
                report.workers = self.executor.stats.workers
                # Each worker holds a copy of the context for the whole run: it counts
                # against the budget (the source kept it under half of it).
                held = len(context) * max(1, report.workers) if context else 0
                if held:
                    self.ledger.reserve(held)
                sampler.start()
                self._open_sinks()
                if self.store is not None and self.state is None and self.sink.commits_chunks:
                    self._save_checkpoint("running")  # from now on the sink's committed state has a run to belong to
                self.reader = threading.Thread(target=self._read, name="flowschema-reader", daemon=True)
                self.reader.start()
                self._complete()
                self.reader.join()
                if held:
                    self.ledger.unreserve(held)
            self._check()
            if self.store is None:
                for sink in self.opened:
                    sink.commit()
            else:
                self._save_checkpoint("finalizing")
                fault_point("finalize")
                self._finish()
        except KeyboardInterrupt:
            report.interrupted = True
            report.stop_signal = signals.name or "SIGINT"
            log.warning("%s: stopping the run", report.stop_signal)
            self._abort()
        except InvalidRecordsError:
            self._abort(keep_dlq=True)
            raise
        except BaseException:
            self._abort()
            raise
        finally:
            self.executor.shutdown(wait=not report.interrupted, cancel_futures=report.interrupted)
            self.source.close()
            if self.reader is not None:
                self.reader.join(timeout=5)
            sampler.stop()
            self._measure(sampler, time.perf_counter() - started)
        return report

    def _worker_context(self) -> bytes | None:
        """The source's worker context, packed; its copies (one a worker) fit in half the budget."""
        share = self.pipeline.max_bytes_in_flight // (2 * max(1, self.executor.parallelism))
        context = self.source.worker_context(share)
        return codec.pack(context) if context else None

    def _open_sinks(self) -> None:
        """Open the sink and the DLQ (at their checkpointed state, when resuming)."""
        model = self.pipeline.model
        path = getattr(self.source, "path", None)
        # Outputs are no more readable than the input: the DLQ holds its raw records.
        mode_limit = os.stat(path).st_mode & 0o777 if isinstance(path, str) and os.path.isfile(path) else None
        for i, (sink, fields, sink_model) in enumerate(((self.sink, list(model.model_fields), model), (self.errors, DLQ_FIELDS, None))):
            if mode_limit is not None and sink.mode_limit is None:
                sink.mode_limit = mode_limit
            if self.store is None:
                sink.open(fields, sink_model)
            else:
                sink.open_resumable(fields, sink_model, self._sink_key(i), self.state["sinks"][i] if self.state else None)
            self.opened.append(sink)

    def _sink_key(self, i: int) -> str:
        """The stable name of sink ``i``'s checkpointed output (0: the sink, 1: the DLQ)."""
        assert self.store is not None
        return f"{self.store.key}{i}"

    def _measure(self, sampler: Sampler, elapsed: float) -> None:
        report, ledger = self.report, self.ledger
        report.elapsed_s = elapsed
        report.rows_per_s = report.rows_read / elapsed if elapsed else 0.0
        report.peak_bytes_in_flight = ledger.peak
        report.backpressure_waits, report.blocked_s = ledger.waits, ledger.blocked_s
        report.peak_rss_bytes, report.timeline = sampler.peak_rss, sampler.samples
        stats = self.executor.stats
        report.worker_restarts, report.retries, report.record_timeouts = stats.restarts, stats.retries, stats.timeouts
        report.notes = list(self.source.notes)
        report.error_groups = self.error_groups.top()

    def _abort(self, *, keep_dlq: bool = False) -> None:
        """Stop reading and working; remove the outputs' temporary files (or keep them
        for a checkpoint's resume). ``keep_dlq``: the DLQ so far goes under its final name."""
        self.stop.set()
        self.ledger.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for sink in self.opened:
            if self.store is not None:
                sink.suspend()  # a checkpointed run keeps its partial output for the resume
            elif keep_dlq and sink is self.errors:
                sink.commit()
            else:
                sink.abort()

    # -- reader thread ---------------------------------------------------------------
    def _read(self) -> None:
        report, ledger = self.report, self.ledger
        sent = 0
        try:
            for index, (blob, n) in enumerate(self.source.chunks(self.pipeline.chunk_bytes)):
                if index < self.skip_chunks:
                    continue  # already in the sinks, says the checkpoint
                if sent == max(1, report.workers) and not self._wait_for_first_result():
                    return
                sent += 1
                allowance = self.allowance.of(n, ledger.limit - ledger.reserved - n, ledger.limit)
                if self.stop.is_set() or not ledger.acquire(n, result=allowance):
                    return
                report.chunks += 1
                report.bytes_read += n
                blob = codec.with_allowance(blob, allowance)  # the worker checks its result against it
                self.submitted.put((self.executor.submit(blob), n, allowance, blob, self.source.position()))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            self.submitted.put(exc)
        finally:
            self.submitted.put(_END)

    def _wait_for_first_result(self) -> bool:
        """Slow start: the first chunks are sent on the starting result ratio, a guess. On a
        file whose results are larger than guessed (narrow rows: a DLQ line is long beside
        an 8-byte row) every chunk sent on it comes back too large and is split, its work
        done twice; so only one chunk per worker goes before the first result has set the
        ratio from a measurement. False if the run stopped meanwhile."""
        while not self.first_result.wait(0.05):
            if self.stop.is_set():
                return False
        return True

    # -- main thread -----------------------------------------------------------------
    def _complete(self) -> None:
        last_checkpoint = time.monotonic()
        while True:
            item = self.submitted.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                if isinstance(item, FlowSchemaError):
                    raise item
                raise FlowSchemaError(f"reading {self.source.name} failed: {type(item).__name__}: {item}") from item
            future, n, allowance, blob, position = item
            self._settle(future, blob, n, allowance)
            self.first_result.set()
            self.ledger.release(n, result=allowance)
            self.chunks_done += 1
            self.bytes_done += n
            self.source_position = position
            if self.store is not None and self.sink.commits_chunks:
                self.sink.commit_chunk(self._state("running"))  # with the chunk's rows, in one transaction
            if self.store is not None and time.monotonic() - last_checkpoint >= self.pipeline.checkpoint_interval:
                self._save_checkpoint("running")
                last_checkpoint = time.monotonic()

    def _settle(self, future: Future[bytes], blob: bytes, n: int, allowance: int) -> None:
        """Write one chunk's results (``n`` input bytes, ``allowance`` result bytes); if it
        kept crashing workers or its result outgrew the allowance, split it and retry."""
        self.report.bytes_through_driver += len(blob)  # counted here, on one thread: the chunk or piece sent...
        try:
            raw = future.result()
            self.report.bytes_through_driver += len(raw)  # ...and its answer
            payload = codec.unframe(raw)
        except WorkerCrashedError as crash:
            self._split_crashed(blob, allowance, crash)
            return
        result = codec.unpack(payload)
        size = len(payload)
        if "result_too_large" in result:
            self._split_too_large(blob, n, allowance, result["result_too_large"])
            return
        self.allowance.observe(n, size)
        self.report.result_bytes += size
        over = max(size - allowance, 0)  # one record alone may pass its allowance: count it while written
        if over:
            self.ledger.overdraw(over)
        try:
            self._write(result)
        finally:
            if over:
                self.ledger.repay(over)

    def _split_crashed(self, blob: bytes, allowance: int, crash: WorkerCrashedError) -> None:
        chunk = codec.decode(blob)
        kind = kind_of(chunk)
        halves = kind.split(chunk)
        if halves is None:
            line, raw, raw_text = kind.describe_single(chunk)
            log.warning("record %d of %s killed its worker every time: to the DLQ (%s)", self.report.rows_read + 1, self.source.name, crash)
            self._write(_single(dlq.worker_crash(line, raw, raw_text, str(crash)), chunk.get("origin")))
            return
        log.info("splitting a chunk that crashed its worker (%s)", crash)
        pieces = [codec.encode(half) for half in halves]
        total = sum(size for _, size in pieces)
        # Both halves run at once: they share the chunk's allowance, in proportion.
        sent = [(codec.with_allowance(piece, allowance * size // total), size, allowance * size // total) for piece, size in pieces]
        # Ahead of the chunks queued behind it, which cannot be written before it (the
        # second half first, so that the first is at the very front).
        futures = [self.executor.submit_next(piece) for piece, _, _ in reversed(sent)][::-1]
        for (piece, size, share), piece_future in zip(sent, futures):
            self._settle(piece_future, piece, size, share)

    def _split_too_large(self, blob: bytes, n: int, allowance: int, size: int) -> None:
        self.allowance.observe(n, size)
        chunk = codec.decode(blob)
        halves = kind_of(chunk).split(chunk)
        if halves is None:  # one record (the worker lets those through; this kind could not split it)
            unlimited = codec.with_allowance(blob, None)
            self._settle(self.executor.submit_next(unlimited), unlimited, n, allowance)
            return
        self.report.result_splits += 1
        log.info("splitting a chunk whose result (%d bytes) outgrew its allowance of %d; the ratio is now %.2f",
                 size, allowance, self.allowance.ratio)
        for half in halves:  # one after the other, so that each may use the whole allowance
            piece, piece_n = codec.encode(half)
            piece = codec.with_allowance(piece, allowance)
            self._settle(self.executor.submit_next(piece), piece, piece_n, allowance)

    def _write(self, result: ChunkResult) -> None:
        report = self.report
        n, valid, filtered, errors = result["n"], result["valid"], result["filtered"], result["errors"]
        if n != valid + len(errors) + filtered:
            raise AccountingError(f"a chunk of {n} records came back as {valid} valid + {len(errors)} invalid + {filtered} filtered")
        if valid:
            refused = self.sink.write(result["data"])
            if refused:
                errors = errors + self._refused(refused, result)
                valid -= len(refused)
        if errors:
            ts = dlq.timestamp()
            first = report.rows_read + 1
            where: dict[str, Any] = {"run_id": self.run_id, "source": self.source.name, "first_record": first, "ts": ts,
                     "origin": result.get("origin")}  # a replayed DLQ's: each record keeps its first source and number
            if type(self.errors).write_records is JSONLSink.write_records:  # the default: copy the bytes the workers encoded
                self.errors.write(dlq.dlq_lines(errors, **where))
            else:
                self.errors.write_records([dlq.to_record(e, **where) for e in errors])  # type: ignore[misc]
            for e in errors:
                report.invalid_by_stage[e["stage"]] = report.invalid_by_stage.get(e["stage"], 0) + 1
            self.error_groups.add(errors)
        report.rows_read += n
        report.rows_valid += valid
        report.rows_invalid += len(errors)
        report.rows_filtered += filtered
        if self.budget is not None:
            self.budget.check(report.rows_read, report.rows_invalid, self.error_groups.counts, self.source.name, self.errors.name)

    def _refused(self, refused: Sequence[tuple[int, str]], result: ChunkResult) -> list[ChunkError]:
        """DLQ entries (stage ``sink``) for the rows the sink refused."""
        fields = list(self.pipeline.model.model_fields)
        data = result["data"]
        python_rows = self.sink.output_form == "python"
        return [
            dlq.sink_refusal(result["valid_i"][position], reason, dict(zip(fields, data[position])) if python_rows else None)
            for position, reason in refused
        ]

    def _check(self) -> None:
        report, ledger = self.report, self.ledger
        if not report.balanced:
            raise AccountingError(
                f"read {report.rows_read} != valid {report.rows_valid} + invalid {report.rows_invalid} + filtered {report.rows_filtered}"
            )
        if ledger.outstanding or ledger.in_flight:
            raise AccountingError(f"{ledger.outstanding} chunks ({ledger.in_flight} bytes) never came back")

    # -- checkpoints -----------------------------------------------------------------
    def _state(self, phase: str) -> dict[str, Any]:
        """The run's position now; makes the sinks durable first (their ``checkpoint``)."""
        sinks = [self.sink.checkpoint(), self.errors.checkpoint()]
        report = {name: getattr(self.report, name) for name in checkpoint_mod.PROGRESS_FIELDS}
        # As of the chunks in the sinks: those read and still in flight are read again on resume.
        report["chunks"], report["bytes_read"] = self.chunks_done, self.bytes_done
        return checkpoint_mod.make_state(self.fingerprint, phase=phase, run_id=self.run_id, chunks_done=self.chunks_done, sinks=sinks,
                                         report=report, source_position=self.source_position)

    def _save_checkpoint(self, phase: str) -> None:
        assert self.store is not None
        state = self._state(phase)
        fault_point("checkpoint-commit")
        self.store.save(state)
        log.debug("checkpoint %s: %d chunks, %d records", phase, self.chunks_done, self.report.rows_read)

    def _finish(self) -> RunReport:
        """Second phase of a checkpointed finish: move outputs into place, mark done."""
        assert self.store is not None
        for i, sink in enumerate((self.sink, self.errors)):
            sink.finish_commit(self._sink_key(i))
        final = self.report.to_dict()
        final["timeline"] = []
        checkpoint_mod.save_state(self.store, self.fingerprint, phase="done", run_id=self.run_id, chunks_done=self.chunks_done, sinks=[], report=final)
        return self.report


def _single(error: ChunkError, origin: list[list[Any]] | None = None) -> ChunkResult:
    """The result of a one-record chunk whose only record is ``error`` (``origin``: the
    chunk's lineage, when it has one)."""
    return {"n": 1, "valid": 0, "filtered": 0, "data": None, "valid_i": [], "errors": [error], "origin": origin}



