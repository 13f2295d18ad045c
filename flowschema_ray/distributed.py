"""Distributed mode of :class:`~flowschema_ray.RayExecutor`: actors read and write the
data, the driver only coordinates.

::

    driver                                         actors (RangeActor, any node)
    ──────                                         ─────────────────────────────
    describe ───────────── source ───────────────► header, where records start
    scan k = 0..n-1 ────── (start, end) ─────────► both quote-state readings of range k
    combine (in order) ─► exact ranges: [start, end), first record number, lines before
    for each range: ledger.acquire(size) ── descriptor ─► read, parse, validate,
                                                          write sink part + DLQ part
    ledger.release(size) ◄── counts, part names ◄─────────┘
    commit: local file ─ parts joined in range order by the kernel, renamed into place
            s3://      ─ a multipart upload: upload_group k ─────► part k from staged parts
                         complete (part numbers, ETags) ◄──────────┘

A Parquet input has no scan: describe reads its footers, and its ranges are units of row
groups planned from them (:mod:`flowschema_core.range_parquet`).

The driver holds descriptors, counts, part names and ETags: no record byte crosses it
(``RunReport.bytes_through_driver == 0``). Paths must be reachable by every node under
the same name (one machine, or a shared volume), or be ``s3://`` URLs; all I/O is in
:mod:`flowschema_core.range_io`.

Faults: an actor that dies takes its calls with it; the oldest call it held is charged
(the range it was working on), the others go back to the queue uncharged, and a fresh
actor takes its place (on any node that has room: a lost node's ranges finish on the
others). A redone range writes its parts under a new attempt name, and only the parts of
the attempt whose counts came back are committed, so nothing is lost or written twice.
A range that kills ``max_attempts`` actors is halved (by an actor, at record boundaries)
until the record responsible stands alone; that record goes to the DLQ with stage
``worker``, as in the single-driver mode.

The single-driver mode's other guarantees hold here too: SIGTERM/SIGINT stop the run
cleanly (:mod:`flowschema_core.stopping`); ``max_invalid`` is judged on the settled prefix
of ranges, whose counts are exact (:meth:`DistributedRun._advance_prefix`); a checkpoint
records settled ranges and a resume redoes only the others (:mod:`.distributed_checkpoint`);
``record_timeout`` marks a stuck record in its range (:mod:`.distributed_watch`).
"""

from __future__ import annotations

import collections
import copy
import logging
import os
import signal
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from flowschema_core import progress, range_io, range_parquet, range_sql, range_work, storage
from flowschema_core.dlq import timestamp
from flowschema_core.error_groups import ErrorGroups
from flowschema_core.errors import (
    AccountingError,
    ConfigError,
    FlowSchemaError,
    InvalidRecordsError,
    SinkError,
    SourceError,
    WorkerCrashedError,
    WorkerPoolError,
)
from flowschema_core.ranges import RangeScan, combine, nominal_ranges
from flowschema_core.report import RunReport
from flowschema_core.sinks.csv import CSVSink
from flowschema_core.sinks.jsonl import JSONLSink
from flowschema_core.sources.base import ReadProgress
from flowschema_core.sources.csv import CSVSource
from flowschema_core.sources.jsonl import JSONLSource
from flowschema_core.sources.parquet import ParquetSource
from flowschema_core.sources.sql import SQLSource
from flowschema_core.stopping import StopSignals
from flowschema_core.timeline import Sampler
from flowschema_core.worker import WorkerSpec

from .distributed_checkpoint import RangeCheckpoint
from .distributed_watch import RangeWatch

if TYPE_CHECKING:
    from flowschema_core.pipeline import Pipeline

    from .executor import RayExecutor

log = logging.getLogger("flowschema")


def unsupported(pipeline: Pipeline) -> str | None:
    """Why ``pipeline`` cannot run in distributed mode, or None if it can."""
    source, sink, errors = pipeline.source, pipeline.sink, pipeline.errors
    if type(source) not in (CSVSource, JSONLSource, ParquetSource, SQLSource):
        return (f"the source is a {type(source).__name__}; distributed mode reads CSVSource, JSONLSource and ParquetSource "
                "files and keyed SQLSources")
    if isinstance(source, SQLSource):
        if source.key is None:
            return f"{source.name} has no key=; distributed mode cuts an SQL source into ranges of a unique key column"
        reachable = range_sql.for_workers(source)
        if isinstance(reachable, str):
            return reachable
        if pipeline.record_timeout:  # a range is read a page at a time: the beacon counts one page's records
            return "record_timeout= with an SQL source is not supported in distributed mode yet"
    for where, role in ((source, "reads"), (sink, "writes"), (errors, "writes")):
        location = getattr(where, "path", "")
        if isinstance(location, str) and storage.is_remote(location):
            if not range_io.is_multipart(location):
                return (f"{getattr(where, 'name', location)} is a {storage.scheme(location)}:// URL; distributed mode {role} local "
                        "files and s3:// objects only (other stores run in the single-driver mode)")
    path = getattr(source, "path", None)
    if isinstance(source, ParquetSource):
        if (why := range_parquet.unsupported(source)) is not None:
            return why
        if pipeline.record_timeout:  # a unit is read in record batches: the beacon counts one call's records
            return "record_timeout= with a Parquet source is not supported in distributed mode yet"
    elif path is not None and not storage.is_remote(path) and (not os.path.isfile(path) or path.startswith("/dev/")):
        return f"the source {path} is not a regular file (distributed mode needs a file every node can open by its path)"
    if type(sink) not in (JSONLSink, CSVSink):
        return f"the sink is a {type(sink).__name__}; distributed mode writes JSONLSink and CSVSink files"
    if isinstance(sink, CSVSink) and sink.delimiter != ",":
        return "the CSVSink has a delimiter other than ',' (not supported in distributed mode yet)"
    if type(errors) is not JSONLSink:
        return f"the DLQ is a {type(errors).__name__}; distributed mode writes the DLQ as a JSONLSink file"
    return None


#: After a failed run, how long S3 staging prefixes are removed again (range_io.remove_stagings).
STAGING_SETTLE_S = 3.0


class DistributedRun:
    """One run of a pipeline in distributed mode; :meth:`execute` returns its report, or
    None when the input turns out not to be splittable and the mode was only ``"auto"``
    (the caller then runs the single-driver mode; nothing has been written)."""

    def __init__(self, pipeline: Pipeline, executor: RayExecutor, *, explicit: bool, range_bytes: int | None) -> None:
        self.pipeline, self.executor, self.explicit = pipeline, executor, explicit
        self.range_bytes = range_bytes or pipeline.chunk_bytes
        self.source, self.sink, self.errors = pipeline.source, pipeline.sink, pipeline.errors
        from flowschema_core.ledger import ByteLedger

        self.ledger = ByteLedger(pipeline.max_bytes_in_flight)
        self.error_groups = ErrorGroups()
        self.actors: list[_RangeActor] = []
        self.staging: dict[str, range_io.Where] = {}
        self.input_seen: tuple[str | None, Any, Any] = (None, None, None)  # the input's path, options and version (_probe)
        self.abandoned: list[Any] = []  # calls left running when a task loop ended early (see _run_tasks)
        self.outcomes: dict[int, dict[str, Any]] = {}  # settled pieces of ranges by start offset: counts, reasons, parts
        self.complete: dict[int, list[int]] = {}  # ranges whose pieces all settled: index -> their pieces' starts
        self.prefix = _Prefix()
        self.plan_state: dict[str, Any] | None = None  # the input's description and the plan, once made
        store = pipeline.checkpoint
        self.checkpoint = RangeCheckpoint(pipeline, store) if store is not None else None
        saved = self.checkpoint.saved if self.checkpoint is not None else None
        # DLQ records of a resumed run keep the first run's id, as in the single-driver mode.
        self.run_id = saved["run_id"] if saved is not None and not self.checkpoint.of_single_driver else pipeline.run_id  # type: ignore[union-attr]
        self.kept: dict[int, list[dict[str, Any]]] = {}  # a resume: ranges whose parts the checkpoint holds
        self.watch = RangeWatch(pipeline.record_timeout) if pipeline.record_timeout else None
        self.report = RunReport(
            run_id=self.run_id, source=self.source.name, sink=self.sink.name, errors_sink=self.errors.name,
            executor=type(executor).__name__, max_bytes_in_flight=pipeline.max_bytes_in_flight, started_at=timestamp(),
            checkpoint=store.directory if store is not None else "",
        )

    # ------------------------------------------------------------------------------
    def execute(self) -> RunReport | None:
        ck = self.checkpoint
        if ck is not None and ck.of_single_driver:
            if self.explicit:
                ck.check()  # raises: it names the mode among the differences
            log.info("checkpoint %s was written by a single-driver run; resuming it in that mode", ck.store.directory)
            return None
        if ck is not None and ck.saved is not None:
            ck.check()
            if ck.saved["phase"] == "done":
                for where in ck.staging_names(self._final_places()).values():  # left if the run was killed just after marking it done
                    range_io.remove_staging(where)
                return RunReport(**ck.saved["report"])
        # Connected first: ray.init installs its own (C++) SIGTERM handler, which would
        # replace the run's if it came after.
        self.ray = self.executor.connect_ray()
        with StopSignals() as signals:
            report = self._execute(signals)
        if report is not None and signals.received is not None and not report.interrupted:
            # It came while the outputs were being committed: they are in place; now stop
            # as the signal asks (the program's own handler is back in place).
            log.warning("%s arrived while the run was finishing; the run completed, stopping now", signals.name)
            signal.raise_signal(signals.received)
        return report

    def _execute(self, signals: StopSignals) -> RunReport | None:
        report, ck = self.report, self.checkpoint
        # The progress line reads report, ledger, source.read_progress and executor.stats, as of a Run.
        watch = progress.watcher(self, self.pipeline.progress, every=self.pipeline.sample_interval)  # type: ignore[arg-type]
        sampler = Sampler(self.pipeline.sample_interval, lambda: self.ledger.in_flight, lambda: report.rows_read, watch=watch)
        started = time.perf_counter()
        sampler.start()
        fallback = done = False
        try:
            with signals.interruptible():  # after it, committing: a signal is only recorded
                plan = self._plan()
                if plan is None:
                    fallback = True  # the executor stays connected: the single-driver run starts it
                    return None
                desc, ranges = plan
                self._process(desc, ranges)
                self._check_input_unchanged()
            if ck is not None:
                ck.save("finalizing", self.run_id, report, self._ranges_state())
            self._commit(desc)
            if ck is not None:
                ck.finish(self.run_id, report)
            done = True
        except KeyboardInterrupt:
            report.interrupted, report.stop_signal = True, signals.name or "SIGINT"
            log.warning("%s: stopping the run", report.stop_signal)
        except InvalidRecordsError:
            if ck is None:  # as the single-driver mode: the DLQ so far goes under its final name
                self._check_input_unchanged()  # a DLQ of two versions' records is no record of either
                try:
                    self._commit_dlq_prefix()
                except FlowSchemaError as failed:  # the error budget is what stopped the run: that stays the error
                    log.error("the DLQ of the records refused so far could not be committed: %s", failed)
            raise
        finally:
            self._stop_actors()  # first: an actor still in a range would write its part after the clean-up
            # A checkpointed run keeps its parts and records its settled ranges for the resume.
            keep = ck is not None and not done and self.plan_state is not None
            if keep:
                assert ck is not None
                try:
                    ck.save("running", self.run_id, report, self._ranges_state())
                except Exception as exc:  # noqa: BLE001 - the state of the last save still holds
                    log.warning("could not save the checkpoint on the way out: %s", exc)
            else:
                # After a failure, a killed actor's last PUT may still land: removed again for a while.
                range_io.remove_stagings(list(self.staging.values()), settle=0.0 if done or fallback else STAGING_SETTLE_S)
            sampler.stop()
            self._measure(sampler, time.perf_counter() - started)
            if not fallback:
                self.executor.shutdown(wait=False)  # as after a single-driver run: a new run needs a new executor
        return report

    def _plan(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """Start the actors and plan the exact ranges (or load the checkpoint's plan);
        None when the mode is only ``"auto"`` and the input cannot be cut."""
        report, ck = self.report, self.checkpoint
        self._start_actors()
        # The actors' working directory is not the driver's: they get the absolute path
        # (the DLQ keeps naming the source as the user did).
        source = copy.copy(self.source)
        if isinstance(source, (CSVSource, JSONLSource, ParquetSource)):
            source.path = range_io.absolute(source.path)
        elif isinstance(source, SQLSource):
            source = range_sql.for_workers(source)  # type: ignore[assignment]  # unsupported() checked it is not a reason
        resuming = ck is not None and ck.saved is not None
        if ck is not None:
            self.staging = dict(ck.staging(self._final_places(), fresh=not resuming))
        else:
            for key, final in self._final_places().items():  # one by one: the finally removes what was made
                self.staging[key] = range_io.make_staging(final.location, final.storage_options)
        refused = self._probe(source)
        if resuming:
            assert ck is not None and ck.saved is not None
            if refused is not None:
                raise ConfigError(f"cannot resume checkpoint {ck.store.directory} in distributed mode: {refused}")
            saved = ck.saved["ranges"]
            desc, ranges = {**saved["desc"], **_unsaved(source)}, saved["plan"]
            self.kept = ck.kept({key: range_io.place(where) for key, where in self.staging.items()})
        else:
            desc = (self._run_tasks([_Task("describe", (source, self.range_bytes), 0)])[0] if refused is None
                    else {"refused": refused})
            refused = desc["refused"]
            ranges = []
            if refused is None and desc["kind"] == "sql":
                # key ranges, planned by the describing actor (flowschema_core.range_sql); numbered as file ranges are
                ranges = [{**unit, "index": i} for i, unit in enumerate(desc.pop("units"))]  # not in every call's description
            elif refused is None and desc["kind"] == "parquet":  # row groups, planned from the footers: nothing to scan
                ranges = [asdict(r) for r in range_parquet.plan(desc, self.range_bytes).ranges]
            elif refused is None:
                pieces = nominal_ranges(desc["data_start"], desc["size"], self.range_bytes)
                scans = self._run_tasks([_Task("scan", (desc, start, end), end - start) for start, end in pieces])
                plan = combine([RangeScan.from_dict(s) for s in scans], desc["data_start"], desc["size"], desc["lines0"],
                               desc["max_record_bytes"])
                refused = plan.refused
                ranges = [asdict(r) for r in plan.ranges]
            if refused is not None:
                if self.explicit:
                    raise ConfigError(f"distributed=True cannot cut {self.source.name} into ranges: {refused}; "
                                      "use distributed='auto', which runs such a file in the single-driver mode")
                log.info("distributed mode: %s; running in the single-driver mode", refused)
                return None
        self.plan_state = {"desc": desc, "plan": ranges}
        if ck is not None and not resuming:
            ck.save("running", self.run_id, report, self._ranges_state())  # the plan, before any part
        self.source.read_progress = ReadProgress(desc["size"] - desc["data_start"])  # bytes of records handed to actors
        report.notes = [*desc["notes"], f"distributed mode: {len(ranges)} ranges on {len(self.actors)} Ray actors"]
        if self.kept:
            report.ranges_from_checkpoint = len(self.kept)
            report.notes.append(f"resumed from checkpoint {self.checkpoint.store.directory if self.checkpoint else ''}: "
                                f"{len(self.kept)} of {len(ranges)} ranges kept, {len(ranges) - len(self.kept)} processed")
        return desc, ranges

    def _final_places(self) -> dict[str, range_io.Place]:
        """The outputs' final names, with the storage options that reach them."""
        return {key: range_io.Place(range_io.absolute(os.fspath(sink.path)), dict(sink.storage_options or {}))  # type: ignore[attr-defined]
                for key, sink in (("sink", self.sink), ("dlq", self.errors))}

    def _ranges_state(self) -> dict[str, Any]:
        """The checkpoint's record of the ranges: the plan and the settled ranges' outcomes."""
        assert self.plan_state is not None
        done = {str(i): [self.outcomes[start] for start in starts] for i, starts in self.complete.items()}
        desc = {key: value for key, value in self.plan_state["desc"].items() if key not in _UNSAVED}
        return {**self.plan_state, "desc": desc, "done": done}

    # -- actors --------------------------------------------------------------------
    def _start_actors(self) -> None:
        import cloudpickle

        from .executor import _user_paths
        from .range_actor import RangeActor

        spec = WorkerSpec(self.pipeline.model, self.pipeline.hooks, self.sink.output_form, self.pipeline.record_timeout)
        try:
            spec_blob = cloudpickle.dumps(spec)
        except Exception as exc:
            raise ConfigError(f"the model or a hook cannot be sent to Ray actors: {exc}") from exc
        executor = self.executor
        # record_timeout: where() answers in a thread of its own while a range runs.
        remote = self.ray.remote(RangeActor) if self.watch is None else self.ray.remote(concurrency_groups={"watch": 1})(RangeActor)
        self.actor_cls = remote.options(max_restarts=0, max_task_retries=0, **executor.actor_options)
        self.spec_ref, self.sys_path = self.ray.put(spec_blob), _user_paths()
        self.actors = [self._new_actor() for _ in range(executor.num_actors)]
        executor.distributed_run = self  # worker_pids() lists these actors (fault-injection tests)
        try:
            self.ray.get([a.booted for a in self.actors], timeout=executor.start_timeout)
        except self.ray.exceptions.GetTimeoutError:
            raise WorkerPoolError(f"Ray actors did not start within {executor.start_timeout:.0f} s (does the cluster have "
                                  f"{executor.num_actors} x {executor.actor_options} free?)") from None
        except self.ray.exceptions.RayError as exc:
            raise WorkerPoolError(f"a Ray actor could not start: {exc}") from exc
        self.report.workers = len(self.actors)

    def _probe(self, source: Any) -> str | None:
        """Why the actors cannot share the input and the staging with the driver, or None:
        each must see the input as the driver does (a file's size and mtime; an object's
        size and ETag; nothing for an SQL source, reached by its URL) and the staging
        places the driver just made."""
        path, options = getattr(source, "path", None), getattr(source, "storage_options", None)
        expected = None
        if path is not None:
            expected = _input_version(path, options)
        self.input_seen = (path, options, expected)
        staging = list(self.staging.values())
        seen = self.ray.get([a.handle.probe.remote(path, staging, options) for a in self.actors])
        for answer in seen:
            if answer["input"] != expected or not answer["directories"]:
                return ("the input or the outputs' staging are not the same on every node (a path on one node's own disk, or "
                        "another object store endpoint or credentials in a node's environment?); distributed mode needs a "
                        "shared volume mounted at the same path on every node, or s3:// URLs every node reaches")
        return None

    def _check_input_unchanged(self) -> None:
        """Refuse to commit what was read from an input that changed during the run (an
        object overwritten, a file rewritten): its ranges would mix two versions. The
        actors read each range in one request; this compares the version seen before
        planning with the one after the last range."""
        path, options, expected = self.input_seen
        if path is None or expected is None:
            return
        now = _input_version(path, options)
        if now != expected:
            again = (f"delete the checkpoint {self.checkpoint.store.directory} (it belongs to the old version) and run again"
                     if self.checkpoint is not None else "run again on the new version")
            raise SourceError(f"{self.source.name} changed while the run was reading it (size or version {str(expected)[:200]} -> "
                              f"{str(now)[:200]}); nothing was written: {again}")

    def _new_actor(self) -> _RangeActor:
        handle = self.actor_cls.remote(self.spec_ref, self.sys_path)
        return _RangeActor(handle, handle.ready.remote())

    def _stop_actors(self, timeout: float = 30.0) -> None:
        """Kill the actors and wait (up to ``timeout``) until the calls they held have
        failed, i.e. until they are gone: after a failed run some are still inside a range,
        and on S3 a part they write after the staging prefix was removed would stay."""
        held = [ref for actor in self.actors for ref in actor.calls] + self.abandoned
        for actor in self.actors:
            try:
                self.ray.kill(actor.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead: nothing to stop
                pass
        self.actors = []
        if held:
            try:
                self.ray.wait(held, num_returns=len(held), timeout=timeout)
            except Exception:  # noqa: BLE001 - Ray itself is going away: nothing left to wait for
                pass

    def _settle_abandoned(self, timeout: float = 30.0) -> None:
        """Wait (up to ``timeout``) for the calls a task loop left running when it ended
        early: the actors stay up, so these end on their own."""
        if self.abandoned:
            try:
                self.ray.wait(self.abandoned, num_returns=len(self.abandoned), timeout=timeout)
            except Exception:  # noqa: BLE001 - Ray itself is going away: nothing left to wait for
                pass

    def _replace(self, dead: _RangeActor) -> None:
        self.actors.remove(dead)
        if self.watch is not None:
            self.watch.forget(dead)
        self.report.worker_restarts = self.executor.stats.restarts = self.report.worker_restarts + 1
        if self.report.worker_restarts > self.executor.max_restarts:
            raise WorkerPoolError(f"{self.report.worker_restarts} Ray actors died; giving up (max_restarts={self.executor.max_restarts})")
        self.actors.append(self._new_actor())

    # -- the task loop -------------------------------------------------------------
    def _run_tasks(self, tasks: list[_Task], on_result: Any = None, on_crash: Any = None) -> list[Any]:
        """Run tasks on the actors, at most ``prefetch`` calls per ready actor and each
        task's bytes within the ledger; redo a task whose actor died. ``on_result(task,
        result)`` and ``on_crash(task, exc)`` (a task that killed ``max_attempts`` actors)
        may return more tasks to run first. Returns the results in task order."""
        pending = collections.deque(tasks)
        inflight: dict[Any, tuple[_Task, _RangeActor]] = {}
        try:
            self._task_loop(pending, inflight, on_result, on_crash)
        except BaseException:
            # Leaving early (a failure, a stop, the error budget): the calls still out give
            # their credits back and leave their actors' lines, since a commit may follow (the
            # DLQ so far) and needs both; _stop_actors still waits for them to end.
            for ref, (task, actor) in inflight.items():
                self.ledger.release(task.cost)
                if ref in actor.calls:
                    actor.calls.remove(ref)
                actor.exclusive = False
                self.abandoned.append(ref)
            raise
        return [task.result for task in tasks]

    def _task_loop(self, pending: collections.deque[_Task], inflight: dict[Any, tuple[_Task, _RangeActor]], on_result: Any,
                   on_crash: Any) -> None:
        ray = self.ray
        prefetch = self.executor.prefetch
        while pending or inflight:
            while pending:
                task = pending[0]
                actor = self._pick(task, prefetch)
                if actor is None:
                    break
                if not self.ledger.try_acquire(task.cost):
                    if not task.waited:  # one backpressure wait per range held back, not one per poll
                        task.waited = True
                        self.ledger.waits += 1
                    break
                pending.popleft()
                args = (*task.args, task.attempts) if task.method == "process_range" else task.args
                self.report.driver_message_bytes += _pickled_size(args)  # before the call: nothing between it and calls.append
                ref = getattr(actor.handle, task.method).remote(*args)
                if task.method == "process_range":
                    self._handed_out(task.cost)
                    if self.watch is not None:
                        self.watch.sent(actor, ref)
                actor.calls.append(ref)
                actor.exclusive = task.alone
                inflight[ref] = (task, actor)
            if not inflight:
                ray.wait([a.booted for a in self.actors], num_returns=1, timeout=1.0)  # a replacement is starting
                continue
            # With a timeout: a stop signal's handler runs between two waits.
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5 if self.watch is None else self.watch.every)
            if self.watch is not None:
                self._stop_stuck(inflight)
            for ref in ready:
                task, actor = inflight.pop(ref)
                if self.watch is not None:
                    self.watch.answered(actor, ref)
                more: list[_Task] = []
                try:
                    result = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
                    self.ledger.release(task.cost)
                    more = self._on_death(task, actor, ref, exc, on_crash)
                    pending.extendleft(reversed(more))
                    continue
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, FlowSchemaError):
                        raise cause from None
                    from .executor import _worker_error

                    raise _worker_error(exc)  # noqa: B904 - its __cause__ is the actor's traceback
                actor.calls.remove(ref)
                actor.exclusive = False
                task.result = result
                try:
                    self.report.driver_message_bytes += _pickled_size(result)
                    if on_result is not None:
                        more = on_result(task, result) or []  # before the credit goes back: the range is settled
                finally:
                    self.ledger.release(task.cost)
                pending.extendleft(reversed(more))

    def _pick(self, task: _Task, prefetch: int) -> _RangeActor | None:
        """The least busy ready actor that may take ``task``: a task under suspicion of
        killing actors runs alone, so that a death is charged to the right one."""
        ready = [a for a in self.actors if a.ready(self.ray) and not a.exclusive and len(a.calls) < (1 if task.alone else prefetch)]
        if task.alone:
            ready = [a for a in ready if not a.calls]
        return min(ready, key=lambda a: len(a.calls), default=None)

    def _handed_out(self, size: int) -> None:
        """Count ``size`` bytes of records as read (negative: a range given back to redo)."""
        self.report.bytes_read += size
        if self.source.read_progress is not None:
            self.source.read_progress.done += size

    def _on_death(self, task: _Task, actor: _RangeActor, ref: Any, exc: BaseException, on_crash: Any) -> list[_Task]:
        if task.method == "process_range":
            self._handed_out(-task.cost)  # it will be read again
        charged = actor.died(ref)
        if actor in self.actors:
            log.warning("a Ray actor died (%s); replacing it and redoing its ranges", type(exc).__name__)
            self._replace(actor)
        if task.timed_out:  # the watchdog stopped it on a record it marked: redo, uncharged
            task.timed_out = False
            return [task]
        if charged is None:  # it held several: which one killed it is not known; each runs alone next
            task.alone = True
            self.report.retries += 1
            return [task]
        if charged is not ref:
            return [task]  # queued behind the one that died with it: not its fault
        task.attempts += 1
        self.report.retries += 1
        if task.attempts < self.executor.max_attempts:
            return [task]
        if on_crash is None:
            raise WorkerCrashedError(f"{self.source.name}: {task.method} killed {task.attempts} Ray actors") from exc
        return list(on_crash(task, exc))

    def _stop_stuck(self, inflight: dict[Any, tuple[_Task, _RangeActor]]) -> None:
        """record_timeout (:mod:`.distributed_watch`): stop each actor whose record outlived
        the timeout; the range goes again with that record marked for the DLQ."""
        assert self.watch is not None
        for actor, ref, index in self.watch.check(self.actors):
            if ref is not None and ref in inflight and index is not None:
                task = inflight[ref][0]
                assert task.piece is not None
                piece = {**task.piece, "stuck": {**(task.piece.get("stuck") or {}), index: ["record_timeout", self.watch.reason()]}}
                task.piece, task.args = piece, (task.args[0], piece, *task.args[2:])
                task.timed_out = True
                actor.charge(ref)  # the calls queued behind it were not at fault
                self.report.record_timeouts += 1
            try:
                self.ray.kill(actor.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead: its calls say so
                pass

    # -- the ranges ----------------------------------------------------------------
    def _process(self, desc: dict[str, Any], ranges: list[dict[str, Any]]) -> None:
        report, ck = self.report, self.checkpoint
        run_id = self.run_id
        open_pieces = [0] * len(ranges)  # pieces of each range not settled yet (a range halved after crashes has several)
        settled: dict[int, list[int]] = collections.defaultdict(list)  # starts of the settled pieces, by range

        for index, outcomes in sorted(self.kept.items()):  # a resume: these ranges' parts are in staging already
            for out in outcomes:
                self._settled(out)
            self.complete[index] = [out["start"] for out in outcomes]
            self._handed_out(ranges[index]["end"] - ranges[index]["start"])
        self._advance_prefix()

        def process(piece: dict[str, Any]) -> _Task:
            open_pieces[piece["index"]] += 1
            return _Task("process_range", (desc, piece, self.staging, run_id), piece["end"] - piece["start"], piece)

        def settle(task: _Task, out: Any) -> list[_Task]:
            piece = task.piece
            assert piece is not None
            index = piece["index"]
            open_pieces[index] -= 1
            if task.method == "split_range":
                assert out is not None, "a range of several records came back unsplittable"
                return [process(half) for half in out]
            if out["seen"] != piece["records"] or out["seen"] != out["valid"] + out["invalid"] + out["filtered"]:
                raise AccountingError(f"{self.source.name} {range_work.where(desc, piece)}: planned {piece['records']} records, "
                                      f"came back as {out['seen']} = {out['valid']} valid + {out['invalid']} invalid + {out['filtered']} filtered")
            self._settled(out)
            settled[index].append(piece["start"])
            if open_pieces[index] == 0:  # the whole range is in its parts
                self.complete[index] = sorted(settled.pop(index))
                self._advance_prefix()
                if ck is not None and ck.due():
                    ck.save("running", self.run_id, report, self._ranges_state())
            return []

        def crashed(task: _Task, exc: BaseException) -> list[_Task]:
            # As the single-driver mode does with a chunk: halve the range until the
            # record responsible stands alone; it goes to the DLQ with stage "worker".
            piece = task.piece
            assert piece is not None
            if piece["records"] > 1:
                log.warning("a range of %s killed its Ray actor %d times; splitting it to find the record responsible", self.source.name, task.attempts)
                return [_Task("split_range", (desc, piece), task.cost, piece)]
            reason = f"the Ray actor died on this record {task.attempts} times ({type(exc).__name__})"
            log.warning("record %d of %s killed its Ray actor every time: to the DLQ", piece["first_record"] + 1, self.source.name)
            return [_Task("isolate", (desc, piece, self.staging, run_id, reason), task.cost, piece, alone=False)]

        report.chunks = len(ranges)
        self._run_tasks([process(r) for r in ranges if r["index"] not in self.kept], settle, crashed)
        for start in sorted(self.outcomes):  # in file order, as the single-driver mode counts them
            for stage, kind, field, count in self.outcomes[start]["reasons"]:
                report.invalid_by_stage[stage] = report.invalid_by_stage.get(stage, 0) + count
                self.error_groups.add([{"reason": (stage, kind, field)}] * count)
        if not report.balanced:
            raise AccountingError(f"read {report.rows_read} != valid {report.rows_valid} + invalid {report.rows_invalid} + "
                                  f"filtered {report.rows_filtered}")

    def _settled(self, out: dict[str, Any]) -> None:
        """Count a settled piece of a range (its parts are written)."""
        report = self.report
        self.outcomes[out["start"]] = out
        report.rows_read += out["seen"]
        report.rows_valid += out["valid"]
        report.rows_invalid += out["invalid"]
        report.rows_filtered += out["filtered"]

    def _advance_prefix(self) -> None:
        """Extend the settled prefix (the ranges settled from the first on, in file order)
        one range at a time, judging the error budget on its exact counts after each, as
        the single-driver mode judges it after each chunk written in order. Ranges settle
        out of order, so only the prefix has counts a single-driver run could have seen."""
        budget, prefix = self.pipeline.error_budget, self.prefix
        while prefix.ranges in self.complete:
            for start in self.complete[prefix.ranges]:
                out = self.outcomes[start]
                prefix.read += out["seen"]
                prefix.invalid += out["invalid"]
                for stage, kind, field, count in out["reasons"]:
                    prefix.reasons[(stage, kind, field)] += count
            prefix.ranges += 1
            if budget is not None:
                budget.check(prefix.read, prefix.invalid, prefix.reasons, self.source.name, self.errors.name)

    def _commit_dlq_prefix(self) -> None:
        """The DLQ parts of the settled prefix (up to the range that broke the error
        budget) under the DLQ's final name: the refused records so far, in file order."""
        starts = sorted(start for i in range(self.prefix.ranges) for start in self.complete[i])
        parts = [self.outcomes[s]["dlq_part"] for s in starts if self.outcomes[s]["dlq_part"]]
        assert self.plan_state is not None
        self._commit_outputs([("dlq", self.errors, b"", parts)], self._mode_limit(self.plan_state["desc"]))

    def _commit(self, desc: dict[str, Any]) -> None:
        """The sink and the DLQ, each whole under its final name or not at all: a local
        file by the kernel's concatenation and a rename, an S3 object by a multipart upload."""
        fields = list(self.pipeline.model.model_fields)
        outcomes = [self.outcomes[start] for start in sorted(self.outcomes)]
        # The CSV header is what the sink itself writes first (its own encoding of the names).
        head = self.sink._header(fields) if isinstance(self.sink, CSVSink) else b""
        # The DLQ first: a failure between the two publications leaves at worst a DLQ without
        # its sink, never a sink whose refused records are nowhere.
        self._commit_outputs([(key, sink, first, [o[f"{key}_part"] for o in outcomes if o[f"{key}_part"]])
                              for key, sink, first in (("dlq", self.errors, b""), ("sink", self.sink, head))], self._mode_limit(desc))

    @staticmethod
    def _mode_limit(desc: dict[str, Any]) -> int | None:
        """Local outputs are no more readable than a local input file (an SQL source or a URL: no limit)."""
        return range_io.mode_limit(desc["path"]) if "path" in desc else None

    def _commit_outputs(self, outputs: list[tuple[str, Any, bytes, list[str]]], mode: int | None) -> None:
        """Each ``(key, sink, head, parts)`` as ``head`` + ``parts`` under the sink's final
        name. In two phases: every output is first made whole out of sight (a local file
        joined under a temporary name, an S3 multipart upload with all its parts), then each
        is published, in order (a rename, the upload's completion, or the PutObject of an
        output with no part). An output that fails to be made leaves none published; only a
        failure between two publications can leave one output without the other."""
        pending: list[_Pending] = []
        try:
            for key, sink, head, parts in outputs:
                pending.append(self._prepare_output(range_io.place(self.staging[key]), sink, head, parts, mode))
            while pending:
                pending[0].publish()
                pending.pop(0)
        except BaseException:
            for output in pending:
                try:
                    output.discard()
                except Exception as exc:  # noqa: BLE001 - the failure being handled is the one to report
                    log.warning("could not remove an output that was not published: %s", exc)
            raise

    def _prepare_output(self, staging: range_io.Place, sink: Any, head: bytes, parts: list[str], mode: int | None) -> _Pending:
        if not range_io.is_multipart(sink.path):
            tmp = range_io.join_parts(sink.path, head, staging, parts, mode)
            return _Pending(lambda: range_io.publish(tmp, sink.path), lambda: range_io.remove_path(tmp))
        final = range_io.Place(sink.path, sink.storage_options)
        if not parts:
            return _Pending(lambda: range_io.put_object(final, head), lambda: None)
        sizes = range_io.part_sizes(staging)
        missing = [name for name in parts if name not in sizes]
        if missing:
            raise SinkError(f"{final}: {len(missing)} committed part(s) are missing under {staging} (e.g. {missing[0]}); was the "
                            "staging prefix removed by another process or a lifecycle rule?")
        groups = range_io.upload_groups([(name, sizes[name]) for name in parts])
        upload = storage.MultipartUpload.begin(final.location, final.storage_options)
        try:
            tasks = [_Task("upload_group", (upload, k + 1, staging, group, head if k == 0 else b""), sum(size for _, size in group))
                     for k, group in enumerate(groups)]
            etags = self._run_tasks(tasks)
        except BaseException:
            self._settle_abandoned()  # an upload call still running could add a part after the abort
            upload.abort()
            raise
        copies = sum(range_io.copied(group, head if k == 0 else b"") for k, group in enumerate(groups))

        def complete() -> None:
            upload.complete(etags)
            self.report.notes.append(f"{final}: {len(parts)} range parts committed as a multipart upload of {len(groups)} parts "
                                     f"({copies} copied server-side)")

        return _Pending(complete, upload.abort)

    def _measure(self, sampler: Sampler, elapsed: float) -> None:
        report = self.report
        report.elapsed_s = elapsed
        report.rows_per_s = report.rows_read / elapsed if elapsed else 0.0
        report.peak_bytes_in_flight = self.ledger.peak
        report.backpressure_waits, report.blocked_s = self.ledger.waits, self.ledger.blocked_s
        report.peak_rss_bytes, report.timeline = sampler.peak_rss, sampler.samples
        report.error_groups = self.error_groups.top()
        # No record byte reaches the driver in this mode: it sends range descriptors and
        # receives counts, reasons and part names, whose size driver_message_bytes measures.
        report.bytes_through_driver = 0


class _Prefix:
    """The ranges settled from the first on, in file order, and their counts."""

    def __init__(self) -> None:
        self.ranges = self.read = self.invalid = 0
        self.reasons: collections.Counter[tuple[str, str, str]] = collections.Counter()


#: What an input description holds that its checkpoint does not: an SQL source object
#: (not JSON; rebuilt from the pipeline's) and storage options (they may hold credentials).
_UNSAVED = ("source", "storage_options")


def _unsaved(source: Any) -> dict[str, Any]:
    """The description's unsaved entries, from the resumed run's own source."""
    if isinstance(source, SQLSource):
        return {"source": source}
    return {"storage_options": dict(getattr(source, "storage_options", None) or {})}


def _input_version(path: str, options: Any) -> Any:
    """The input's version as the driver sees it, compared with the actors' view
    (range_io.identity) and with itself after the last range. A store's errors are raised
    here (the driver's own are the user's to see); an actor's only make it differ."""
    return sorted(storage.identity(path, options).items()) if storage.is_remote(path) else range_io.identity(path)


class _Pending:
    """An output made whole out of sight: ``publish()`` gives it its final name,
    ``discard()`` removes it (see DistributedRun._commit_outputs)."""

    def __init__(self, publish: Any, discard: Any) -> None:
        self.publish, self.discard = publish, discard


def _pickled_size(value: Any) -> int:
    """The bytes of a call's arguments or answer as Ray pickles them (cloudpickle): what
    RunReport.driver_message_bytes adds up. A few microseconds per range."""
    from ray import cloudpickle

    return len(cloudpickle.dumps(value, protocol=5))


class _Task:
    """One call to make on some actor: ``method(*args)``, ``cost`` bytes of the budget."""

    def __init__(self, method: str, args: tuple[Any, ...], cost: int, piece: dict[str, Any] | None = None, *, alone: bool = False) -> None:
        self.method, self.args, self.cost, self.piece = method, args, cost, piece
        self.attempts = 0
        self.alone = alone  # run with no other call on its actor (it was on one that died)
        self.waited = False  # held back by the byte budget at least once (counted as one wait)
        self.timed_out = False  # its actor was stopped by record_timeout (a record of it is marked)
        self.result: Any = None


class _RangeActor:
    """An actor handle, its ready() call, and its calls in the order it runs them."""

    def __init__(self, handle: Any, booted: Any) -> None:
        self.handle, self.booted = handle, booted
        self.calls: list[Any] = []
        self.exclusive = False  # running a task that must be alone on it
        self._ready = False
        self._charged: Any = None
        self.pid: int | None = None

    def ready(self, ray: Any) -> bool:
        if not self._ready:
            done, _ = ray.wait([self.booted], timeout=0)
            if done:
                self._ready = True
                try:
                    self.pid = ray.get(self.booted)
                except Exception:  # noqa: BLE001 - it died starting: its calls will say so
                    pass
        return self._ready

    def charge(self, ref: Any) -> None:
        """Charge the coming death to ``ref`` (the watchdog kills the actor for it)."""
        self._charged = ref

    def died(self, ref: Any) -> Any:
        """Record that ``ref`` failed because this actor died; return the call charged
        with the death: the only one it held, or None when it held several (an actor
        that dies just after a call may take that call's reply with it, so the oldest
        unanswered call is not surely the one that killed it)."""
        if self._charged is None:
            self._charged = self.calls[0] if len(self.calls) == 1 else False
        self.calls.remove(ref)
        return self._charged or None



