"""A pool of worker processes with exact crash recovery.

::

    submit(blob) ─► pending deque ─► dispatch ─► worker i's sender thread ─► pipe ─► process i
                                                                                    │
    future.set_result ◄── collector thread (waits on every worker's result pipe) ◄──┘

Each worker gets its own pipes and at most ``prefetch`` chunks at a time, and answers in
order, so when a worker dies the driver knows exactly which chunk it was processing (the
oldest one assigned to it). That chunk is retried up to ``max_attempts`` times, then its
future fails with :class:`WorkerCrashedError` so the pipeline can split it and isolate
the poison record. Chunks queued behind it go back to the front of the queue without
being charged an attempt. A replacement worker starts at once; after ``max_restarts``
replacements the run stops with :class:`WorkerPoolError` rather than loop forever. (These
rules live in :mod:`flowschema_core.executors.pool` and the lifecycle in
:mod:`flowschema_core.executors.pooled`, shared with the Ray plugin; this module is the
transport.)

``worker_memory_limit`` caps each worker's address space: a chunk that needs more gets a
MemoryError in the worker, is split like a crashing chunk, and the record responsible
goes to the DLQ with stage ``worker`` instead of the machine running out of memory.

Workers are fresh interpreters (``python -m flowschema_core.executors._process_worker``),
like multiprocessing's *spawn*, but the user's ``__main__`` is never re-run in them.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from multiprocessing.connection import Connection, wait
from typing import Any

from .. import codec
from ..errors import ConfigError, WorkerCrashedError, WorkerError, WorkerPoolError, describe_exit
from ..units import parse_size
from ..watchdog import Watch, mark_stuck, timeout_reason
from ..worker import WorkerSpec
from .base import RemoteTraceback
from .pool import Slot, Task, resolve
from .pooled import PooledExecutor

log = logging.getLogger("flowschema")


class _Worker(Slot):
    """One worker process, its two pipes, and the chunks assigned to it (in order)."""

    def __init__(self, spec_message: bytes, memory_limit: int | None, watched: bool) -> None:
        super().__init__()
        child_in, parent_out = os.pipe()
        parent_in, child_out = os.pipe()
        self.watch = Watch() if watched else None  # which record it is on (record_timeout)
        self.stuck = False  # stopped by the watchdog: its current record outlived record_timeout
        self.sent = 0
        fds = (child_in, child_out) if self.watch is None else (child_in, child_out, self.watch.fd)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flowschema_core.executors._process_worker", *map(str, fds)],
                pass_fds=fds,
                close_fds=True,
            )
        finally:
            os.close(child_in)
            os.close(child_out)
        self.inbox = Connection(parent_in, writable=False)
        self.outbox = Connection(parent_out, readable=False)
        self._sends: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        boot = codec.pack({"sys_path": [os.path.abspath(p) for p in sys.path], "memory_limit": memory_limit})
        self._sends.put(boot)
        self._sends.put(spec_message)
        self._sender = threading.Thread(target=self._send_loop, name=f"flowschema-send-{self.pid}", daemon=True)
        self._sender.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, task: Task) -> None:
        self.sent += 1
        task.ordinal = self.sent
        self.assigned.append(task)
        self._sends.put(task.blob)

    def _send_loop(self) -> None:
        # Sending may block while the worker is busy; a thread per worker keeps that
        # from ever blocking the reader or the collector.
        while (message := self._sends.get()) is not None:
            try:
                self.outbox.send_bytes(message)
            except OSError:
                return  # the worker died; the collector sees EOF and recovers
        self.outbox.close()

    def stop(self) -> None:
        self._sends.put(None)

    def kill(self) -> None:
        self.alive = False
        if self.process.poll() is None:
            self.process.kill()
        self._sends.put(None)


class MultiprocessingExecutor(PooledExecutor):
    """Process chunks in ``workers`` separate processes (default: one per CPU)."""

    noun, nouns = "worker process", "worker processes"
    enforces_record_timeout = True

    def __init__(
        self,
        workers: int | None = None,
        *,
        prefetch: int = 2,
        max_attempts: int = 2,
        max_restarts: int = 100,
        start_timeout: float = 120.0,
        worker_memory_limit: int | str | None = None,
    ) -> None:
        super().__init__(os.cpu_count() or 1 if workers is None else workers, prefetch=prefetch, max_attempts=max_attempts, max_restarts=max_restarts)
        self.worker_memory_limit = parse_size(worker_memory_limit, name="worker_memory_limit") if worker_memory_limit else None
        self.start_timeout = start_timeout
        self._spec_message = b""
        self._collector: threading.Thread | None = None
        self._record_timeout: float | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self, spec: WorkerSpec) -> None:
        self._check_startable()
        import cloudpickle

        try:
            self._spec_message = cloudpickle.dumps(spec)
        except Exception as exc:
            raise ConfigError(f"the model or a hook cannot be sent to worker processes: {exc}") from exc
        self._record_timeout = spec.record_timeout
        self._pool = [self._spawn() for _ in range(self.workers)]
        self.stats.workers = self.workers
        self._wait_ready()
        self._collector = threading.Thread(target=self._collect_loop, name="flowschema-collector", daemon=True)
        self._collector.start()
        self._started = True

    def _spawn(self) -> _Worker:
        # Watched whether or not record_timeout is set: the beacon also says which record
        # a worker died on (see flowschema_core.watchdog).
        return _Worker(self._spec_message, self.worker_memory_limit, watched=True)

    def _send(self, slot: Any, task: Task) -> None:
        slot.send(task)

    def _wait_ready(self) -> None:
        # Fail fast when workers cannot even build the model: that is a config problem.
        waiting = {w.inbox: w for w in self._pool}
        while waiting:
            ready = wait(list(waiting), timeout=self.start_timeout)
            if not ready:
                self.shutdown(wait=False)
                raise WorkerPoolError(f"worker processes did not start within {self.start_timeout:.0f} s")
            for conn in ready:
                worker = waiting.pop(conn)  # type: ignore[call-overload]
                try:
                    message = conn.recv_bytes()  # type: ignore[union-attr]
                except (EOFError, OSError):
                    message = b"F" + f"worker process {describe_exit(worker.process.wait())} while starting".encode()
                if message[:1] != b"K":
                    self.shutdown(wait=False)
                    raise WorkerPoolError(f"a worker could not start: {message[1:].decode('utf-8', 'replace')}")
                worker.ready = True

    def worker_pids(self) -> list[int]:
        """Process ids of the live, started workers (for monitoring and fault-injection tests)."""
        with self._lock:
            return [w.pid for w in self._pool if w.alive and w.ready]

    def _stop_workers(self, pool: list[Any], graceful: bool) -> None:
        for worker in pool:
            if graceful:
                worker.stop()
            else:
                worker.kill()
        # The collector sees _closing within one wait() timeout; it must be gone before
        # the pipes it waits on are closed (else it dies with a traceback on stderr).
        if self._collector is not None and self._collector is not threading.current_thread():
            self._collector.join()
        for worker in pool:
            try:
                worker.process.wait(timeout=10 if graceful else 2)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.inbox.close()
            if worker.watch is not None:
                worker.watch.close()

    # -- collecting ------------------------------------------------------------------
    def _collect_loop(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                conns = {w.inbox: w for w in self._pool if w.alive}
            try:
                ready = wait(list(conns), timeout=0.2)
            except (OSError, ValueError):
                if self._closing:
                    return  # a pipe was closed under us by shutdown
                raise
            for conn in ready:
                worker = conns[conn]  # type: ignore[index]
                try:
                    message = conn.recv_bytes()  # type: ignore[union-attr]
                except (EOFError, OSError):
                    self._on_death(worker)
                    continue
                self._on_message(worker, message)
            if self._record_timeout is not None:
                self._stop_stuck_workers(self._record_timeout)

    def _stop_stuck_workers(self, timeout: float) -> None:
        """Kill each worker whose current record outlived ``timeout``, after marking that
        record in its chunk; its death (seen as EOF) then puts the chunk back, blaming no one."""
        with self._lock:
            for worker in self._pool:
                if worker.stuck or not (worker.alive and worker.ready and worker.assigned) or worker.watch is None:
                    continue
                stuck = worker.watch.stuck(timeout)
                if stuck is None:
                    continue
                ordinal, index = stuck
                task = next((t for t in worker.assigned if t.ordinal == ordinal), None)
                if task is None:
                    continue  # that chunk's answer is already in the pipe: it was not stuck after all
                log.warning("a record ran longer than record_timeout=%g s (record %d of a chunk); stopping its worker process %d",
                            timeout, index + 1, worker.pid)
                task.blob = mark_stuck(task.blob, index, timeout_reason(timeout))
                worker.stuck = True
                _kill_tree(worker.process.pid)  # with what the stuck record started (a tool that never answers)

    def _on_message(self, worker: _Worker, message: bytes) -> None:
        tag = message[:1]
        if tag == b"K":
            worker.ready = True
            return
        if tag == b"F":
            self._fail_all(WorkerPoolError(f"a replacement worker could not start: {message[1:].decode('utf-8', 'replace')}"))
            return
        with self._lock:
            task = worker.assigned.popleft() if worker.assigned else None
            self._dispatch()
        if task is None:
            return
        if tag == b"R":
            resolve(task.future, result=message[1:])
        elif tag == b"C":
            # Deterministic, unlike a kill: no retry, the pipeline splits the chunk at once.
            resolve(task.future, error=WorkerCrashedError(message[1:].decode("utf-8", "replace")))
        else:
            info: dict[str, Any] = codec.unpack(message[1:])
            error = WorkerError(f"worker raised {info['type']}: {info['msg']}")
            error.__cause__ = RemoteTraceback(info["tb"])
            resolve(task.future, error=error)

    def _on_death(self, worker: _Worker) -> None:
        exit_code = worker.process.wait()
        with self._lock:
            worker.kill()
            worker.inbox.close()
            at = None
            if worker.watch is not None:
                at = worker.watch.where()
                worker.watch.close()
            if self._closing:
                return
            crashed, failure = self._worker_died(worker, describe_exit(exit_code), exit_code, started=worker.ready, stuck=worker.stuck, at=at)
        for task, error in crashed:
            resolve(task.future, error=error)
        if failure is not None:
            self._fail_all(failure)


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker process, then its descendants (the worker first: a hook whose
    child dies first would return, and its record's outcome would race the kill)."""
    import psutil

    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return  # gone already
    for process in family:
        try:
            process.kill()
        except psutil.Error:
            pass
