"""A pool of Ray actors behind the core's :class:`~flowschema_core.executors.base.Executor`.

::

    submit(blob) ─► pending deque ─► dispatch (≤ prefetch calls per actor) ─► actor.process.remote(blob)
                                                                                      │ ObjectRef
    future.set_result ◄── handler thread ◄── queue ◄── ObjectRef.future() callback ◄──┘

Each actor builds the model and hooks once, in its constructor, and takes chunk blobs
(LZ4 msgpack ``bytes``) one at a time, in the order they were sent. The driver keeps at
most ``prefetch`` calls outstanding per actor (``ray.util.ActorPool`` would keep an
unbounded pending list), so the byte budget of the core's ``ByteLedger`` also bounds
what sits in Ray's queues and object store.

Faults: an actor runs its calls in order, so when it dies the chunk it was working on is
the oldest call not yet answered *by the actor*, which the driver cannot always see: an
actor that dies just after finishing a call can take the reply with it, and Ray reports
that call as failed too. So a death is charged only to a chunk that was alone on its
actor; when the dead actor held several, each is retried alone on an idle actor first
(``exact_deaths=False`` in :mod:`flowschema_core.executors.pool`), and no good chunk is
blamed for its neighbour. A charged chunk is resubmitted to a replacement actor; chunks
queued behind it go back to the front of the queue uncharged.
After ``max_attempts`` deaths on the same chunk its future fails with
:class:`~flowschema_core.errors.WorkerCrashedError`, and the pipeline splits the chunk
to isolate the record responsible (it lands in the DLQ with stage ``worker``). After
``max_restarts`` replacements the run stops with
:class:`~flowschema_core.errors.WorkerPoolError` rather than loop forever.

Connecting: with ``address=None`` and no ``RAY_ADDRESS`` a private local Ray is started
(``num_cpus`` defaults to ``num_actors``, dashboard and usage stats off) and shut down
again by :meth:`RayExecutor.shutdown`; ``address="auto"``, an explicit address or
``RAY_ADDRESS`` (set by ``ray job submit``) join an existing cluster, and shutting down
only disconnects. When Ray is already initialised in this process it is used as is and
left running.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import queue
import re
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any

from flowschema_core.errors import ConfigError, MissingDependencyError, WorkerError, WorkerPoolError
from flowschema_core.plugin import PooledExecutor, RemoteTraceback, Slot, Task, WorkerSpec, resolve
from flowschema_core.units import parse_size
from flowschema_core.watchdog import RecordClock, mark_stuck, timeout_reason

__all__ = ["RayExecutor"]

log = logging.getLogger("flowschema")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Call:
    """One attempt of a task on one actor; ``outcome`` is set when Ray answers."""

    __slots__ = ("outcome", "task", "worker")

    def __init__(self, task: Task, worker: _Actor) -> None:
        self.task, self.worker = task, worker
        self.outcome: concurrent.futures.Future[bytes] | None = None


class _Actor(Slot):
    """An actor handle and the calls sent to it, oldest first."""

    def __init__(self, handle: Any) -> None:
        super().__init__()
        self.handle = handle
        self.pid: int | None = None
        self.booted: concurrent.futures.Future[Any] | None = None  # its ready() call
        # record_timeout: calls sent, the outstanding where() poll and when it was sent,
        # how long it has been on one record, and whether the watchdog stopped it.
        self.sent = 0
        self.poll: concurrent.futures.Future[int] | None = None
        self.polled_at = 0.0
        self.clock = RecordClock()
        self.stuck = False


class RayExecutor(PooledExecutor):
    """Process chunks in ``num_actors`` Ray actors, locally or on a cluster.

    :param address: ``None`` to start a private local Ray (or join ``RAY_ADDRESS`` when it
        is set), ``"auto"`` or ``"ray://…"`` / ``"host:port"`` to join a running cluster.
    :param num_actors: how many actors process chunks.
    :param num_cpus: CPUs of the local Ray this executor starts (default: ``num_actors``);
        ignored when joining a cluster, whose size is the cluster's.
    :param actor_options: passed to ``.options()`` of each actor, e.g. ``{"num_cpus": 2,
        "memory": 2 << 30, "resources": {...}}``; the default reserves one CPU per actor.
    :param max_attempts: deaths of actors on the same chunk before its future fails with
        :class:`WorkerCrashedError` (the pipeline then isolates the poison record).
    :param max_restarts: replacement actors started before giving up with
        :class:`WorkerPoolError`.
    :param prefetch: calls outstanding per actor; 2 keeps every actor busy while its next
        chunk travels.
    :param runtime_env: Ray runtime environment for a Ray this executor connects or starts.
    :param init_options: any other ``ray.init`` keyword (e.g. ``object_store_memory``).
    :param start_timeout: seconds to wait for the actors to build the model.
    :param workers: another name for ``num_actors``, the one every pooled executor takes.
    :param distributed: ``"auto"`` (the default): when the source is a CSV or JSON Lines
        file or Parquet file(s) every node can open and the sinks are JSON Lines / CSV
        files, the actors read their own byte ranges (Parquet: row groups) and write their
        own parts, and the driver only coordinates
        (see :mod:`flowschema_ray.distributed`); otherwise the single-driver mode.
        ``True``: distributed mode or a :class:`ConfigError` saying why not; ``False``:
        always the single-driver mode.
    :param range_bytes: bytes of input per range in distributed mode (default: the
        pipeline's ``chunk_bytes``); each counts against ``max_bytes_in_flight``.
    """

    noun, nouns = "Ray actor", "Ray actors"
    # An actor that dies right after a call may take the call's reply with it: a death is
    # charged only to a chunk that was alone on its actor (see flowschema_core.executors.pool).
    exact_deaths = False
    enforces_record_timeout = True

    def __init__(
        self,
        address: str | None = None,
        num_actors: int = 2,
        num_cpus: int | None = None,
        actor_options: dict[str, Any] | None = None,
        max_attempts: int = 2,
        max_restarts: int = 100,
        *,
        prefetch: int = 2,
        runtime_env: dict[str, Any] | None = None,
        init_options: dict[str, Any] | None = None,
        start_timeout: float = 120.0,
        workers: int | None = None,
        distributed: bool | str = "auto",
        range_bytes: int | str | None = None,
    ) -> None:
        if workers is not None:  # the name every pooled executor takes (the CLI's --workers)
            if num_actors not in (2, workers):
                raise ConfigError(f"give workers or num_actors, not both ({workers} != {num_actors})")
            num_actors = workers
        if num_actors < 1:
            raise ConfigError(f"num_actors must be at least 1, got {num_actors}")
        super().__init__(num_actors, prefetch=prefetch, max_attempts=max_attempts, max_restarts=max_restarts)
        if num_cpus is not None and num_cpus < 1:
            raise ConfigError(f"num_cpus must be at least 1, got {num_cpus}")
        self.address, self.num_actors, self.num_cpus = address, num_actors, num_cpus
        self.actor_options = {"num_cpus": 1, **(actor_options or {})}
        self.runtime_env, self.init_options = runtime_env, dict(init_options or {})
        self.start_timeout = start_timeout
        if distributed not in (True, False, "auto"):
            raise ConfigError(f"distributed must be True, False or 'auto', got {distributed!r}")
        self.distributed = distributed
        self.distributed_run: Any = None  # the DistributedRun under way, if any
        self.range_bytes = parse_size(range_bytes, name="range_bytes") if range_bytes is not None else None
        self._events: queue.SimpleQueue[tuple[_Call, concurrent.futures.Future[bytes]] | None] = queue.SimpleQueue()
        self._handler: threading.Thread | None = None
        self._connected_here = False
        self._actor_cls: Any = None
        self._spec_ref: Any = None
        self._sys_path: list[str] = []
        self._ray: Any = None
        self._record_timeout: float | None = None
        self._watchdog: threading.Thread | None = None

    # -- distributed mode --------------------------------------------------------------
    def run_pipeline(self, pipeline: Any) -> Any:
        """Run ``pipeline`` in distributed mode when it can (see ``distributed``); None
        lets the driver run it in the single-driver mode."""
        if self.distributed is False:
            return None
        from .distributed import DistributedRun, unsupported

        reason = unsupported(pipeline)
        if reason is not None:
            if self.distributed is True:
                raise ConfigError(f"distributed=True: {reason}; use distributed='auto' to run such a pipeline in the single-driver mode")
            return None
        self._check_startable()
        return DistributedRun(pipeline, self, explicit=self.distributed is True, range_bytes=self.range_bytes).execute()

    def connect_ray(self) -> Any:
        """Import Ray and connect (or start a local Ray), as :meth:`start` does."""
        self._ray = _import_ray()
        self._connect(self._ray)
        return self._ray

    # -- lifecycle -------------------------------------------------------------------
    def start(self, spec: WorkerSpec) -> None:
        self._check_startable()
        ray = _import_ray()
        self._ray = ray
        import cloudpickle

        try:
            spec_blob = cloudpickle.dumps(spec)
        except Exception as exc:
            raise ConfigError(f"the model or a hook cannot be sent to Ray actors: {exc}") from exc
        self._connect(ray)
        from .actor import ChunkActor

        self._record_timeout = spec.record_timeout
        # where() answers in a thread of its own while process() runs (record_timeout).
        actor_cls = ray.remote(ChunkActor) if self._record_timeout is None else ray.remote(concurrency_groups={"watch": 1})(ChunkActor)
        # The actors restart nothing themselves (max_restarts=0): the executor replaces
        # them, because only it knows which chunk to charge for the death.
        self._actor_cls = actor_cls.options(max_restarts=0, max_task_retries=0, **self.actor_options)
        self._spec_ref = ray.put(spec_blob)
        self._sys_path = _user_paths()
        self._pool = [self._new_actor() for _ in range(self.num_actors)]
        self.stats.workers = self.num_actors
        self._wait_ready()
        self._handler = threading.Thread(target=self._handle_loop, name="flowschema-ray-handler", daemon=True)
        self._handler.start()
        if self._record_timeout is not None:
            self._watchdog = threading.Thread(target=self._watch_loop, args=(self._record_timeout,), name="flowschema-ray-watchdog", daemon=True)
            self._watchdog.start()
        self._started = True

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return  # someone else's Ray: use it, leave it running
        options: dict[str, Any] = {"logging_level": logging.WARNING, **self.init_options}
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        if self.address is not None or os.environ.get("RAY_ADDRESS"):
            # Joining: the cluster's size is fixed; ray.init raises if given num_cpus.
            ray.init(address=self.address, **options)
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            options.setdefault("include_dashboard", False)
            # "local" starts a private Ray even when `ray start` runs one on this machine.
            ray.init(address="local", num_cpus=self.num_cpus or self.num_actors, **options)
        self._connected_here = True

    def _new_actor(self) -> _Actor:
        return _Actor(self._actor_cls.remote(self._spec_ref, self._sys_path))

    def _spawn(self) -> _Actor:
        # A replacement: learn its pid once it is up (for worker_pids()); its chunks queue meanwhile.
        actor = self._new_actor()
        actor.booted = actor.handle.ready.remote().future()
        actor.booted.add_done_callback(functools.partial(self._on_ready, actor))
        return actor

    def _wait_ready(self) -> None:
        # Fail fast when the actors cannot even build the model: that is a config problem.
        ray = self._ray
        refs = [a.handle.ready.remote() for a in self._pool]
        try:
            pids = ray.get(refs, timeout=self.start_timeout)
        except ray.exceptions.GetTimeoutError:
            self.shutdown(wait=False)
            raise WorkerPoolError(
                f"Ray actors did not start within {self.start_timeout:.0f} s (does the cluster have "
                f"{self.num_actors} x {self.actor_options} free?)"
            ) from None
        except ray.exceptions.RayError as exc:
            self.shutdown(wait=False)
            raise WorkerPoolError(f"a Ray actor could not start: {exc}") from exc
        for actor, pid in zip(self._pool, pids):
            actor.pid, actor.ready = pid, True

    def worker_pids(self) -> list[int]:
        """Process ids of the live actors that have answered (for fault-injection tests)."""
        run = self.distributed_run
        ranged = [a.pid for a in list(run.actors) if a.ready(self._ray) and a.pid is not None] if run is not None else []
        with self._lock:
            return [a.pid for a in self._pool if a.alive and a.pid is not None] + ranged

    def actor_handles(self) -> list[Any]:
        """Handles of the live actors (e.g. to ``ray.kill`` one in a test)."""
        with self._lock:
            return [a.handle for a in self._pool if a.alive]

    def _held(self, slot: Any) -> list[Task]:
        return [call.task for call in slot.assigned]

    def _stop_workers(self, pool: list[Any], graceful: bool) -> None:
        for actor in pool:
            actor.alive = False
            self._kill(actor)
        self._events.put(None)
        if self._handler is not None and self._handler is not threading.current_thread():
            self._handler.join(timeout=10)
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=10)
        if self._connected_here and self._ray is not None:
            self._ray.shutdown()
            self._connected_here = False

    def _kill(self, actor: _Actor) -> None:
        try:
            self._ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead or Ray already down: nothing to stop
            pass

    # -- sending -------------------------------------------------------------------
    def _send(self, actor: Slot, task: Task) -> None:
        assert isinstance(actor, _Actor)
        call = _Call(task, actor)
        actor.sent += 1
        task.ordinal = actor.sent
        actor.assigned.append(call)
        try:
            ray_future = actor.handle.process.remote(task.blob).future()
        except Exception as exc:  # noqa: BLE001 - Ray refused the call (shut down, client gone): fail it, never hang
            ray_future = concurrent.futures.Future()
            ray_future.set_exception(exc)
        # Ray runs this callback on its own thread: hand the event to ours.
        ray_future.add_done_callback(lambda f, c=call: self._events.put((c, f)))

    # -- collecting ------------------------------------------------------------------
    def _handle_loop(self) -> None:
        while (event := self._events.get()) is not None:
            try:
                self._handle(*event)
            except Exception as exc:  # noqa: BLE001 - a bug or Ray failing under us: fail every chunk, never hang
                self._fail_all(WorkerPoolError(f"the Ray result handler failed: {type(exc).__name__}: {exc}"))

    def _handle(self, call: _Call, outcome: concurrent.futures.Future[bytes]) -> None:
        settled: list[tuple[Future[bytes], bytes | None, BaseException | None]] = []
        failure: BaseException | None = None
        with self._lock:
            call.outcome = outcome
            actor = call.worker
            if self._closing or not actor.alive:
                return  # an answer for an actor already written off
            # Settle in the order the actor ran its calls: a death is charged to the
            # oldest unanswered one, whatever order Ray reported them in.
            while actor.assigned and actor.assigned[0].outcome is not None:
                head = actor.assigned[0]
                exc = head.outcome.exception()  # type: ignore[union-attr]
                if exc is not None and isinstance(exc, self._deaths()):
                    failure = self._on_death(actor, exc, settled)
                    break
                actor.assigned.popleft()
                if exc is None:
                    settled.append((head.task.future, head.outcome.result(), None))  # type: ignore[union-attr]
                else:
                    settled.append((head.task.future, None, _worker_error(exc)))
            if failure is None:
                self._dispatch()
        for future, result, error in settled:
            resolve(future, result=result, error=error)
        if failure is not None:
            self._fail_all(failure)

    def _deaths(self) -> tuple[type[BaseException], ...]:
        """Ray's errors that mean the actor's process is gone: a dead actor, an actor
        killed by Ray's memory monitor (OutOfMemoryError), a lost node or worker."""
        errors = self._ray.exceptions
        return (errors.RayActorError, errors.OutOfMemoryError, errors.NodeDiedError, errors.WorkerCrashedError)

    def _on_death(self, actor: _Actor, exc: BaseException, settled: list[Any]) -> BaseException | None:
        # Called with the lock held; returns a pool failure, if the restart budget is spent.
        self._kill(actor)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        how = f"died ({type(exc).__name__}: {first_line})" if first_line else f"died ({type(exc).__name__})"
        # An actor that died before it was up is not blamed for the chunks queued on it.
        # (Its ready() call ran before any chunk, so its future is settled by now if it did.)
        booted = actor.booted
        started = actor.ready or (booted is not None and booted.done() and booted.exception() is None)
        crashed, failure = self._worker_died(actor, how, None, started=started, stuck=actor.stuck)
        settled.extend((task.future, None, error) for task, error in crashed)
        return failure

    # -- record_timeout ------------------------------------------------------------
    def _watch_loop(self, timeout: float) -> None:
        """Poll each busy actor's beacon; stop an actor whose record outlived ``timeout``.

        A where() poll is answered by a thread of the actor, so it waits for the
        interpreter lock: a record that holds it (a C extension spinning, a catastrophic
        regex) leaves the poll unanswered. The record is then not known exactly, so the
        actor is killed as if it had crashed: its chunk is retried and, if it hangs
        again, split until the record is alone (one timeout per halving)."""
        while not self._closing:
            time.sleep(min(0.2, timeout / 4))
            with self._lock:
                for actor in list(self._pool):
                    if not (actor.alive and actor.ready and actor.assigned) or actor.stuck:
                        actor.poll = None
                        continue
                    self._watch(actor, timeout)

    def _watch(self, actor: _Actor, timeout: float) -> None:
        # Called with the lock held.
        poll = actor.poll
        if poll is None:
            actor.poll, actor.polled_at = actor.handle.where.options(concurrency_group="watch").remote().future(), time.monotonic()
            return
        if not poll.done():
            if time.monotonic() - actor.polled_at > timeout:
                log.warning("a Ray actor has not answered for %g s (record_timeout): a record holds it; stopping it", timeout)
                actor.poll = None
                self._kill(actor)  # its calls fail as a death: charged, retried, split (see above)
            return
        actor.poll = None
        if poll.exception() is not None:
            return  # the actor is dying: its calls report that
        stuck = actor.clock.stuck(poll.result(), timeout)
        if stuck is None:
            return
        ordinal, index = stuck
        call = next((c for c in actor.assigned if c.task.ordinal == ordinal and c.outcome is None), None)
        if call is None:
            return  # that chunk has been answered meanwhile
        log.warning("a record ran longer than record_timeout=%g s (record %d of a chunk); stopping its Ray actor", timeout, index + 1)
        call.task.blob = mark_stuck(call.task.blob, index, timeout_reason(timeout))
        actor.stuck = True
        self._kill(actor)

    def _on_ready(self, actor: _Actor, outcome: concurrent.futures.Future[Any]) -> None:
        # No lock: _spawn registers this callback with the lock held, and a callback on a
        # future that is already done runs at once, in that thread. Two plain attribute
        # writes need none (readers take the lock, or check the future itself).
        if outcome.exception() is None:
            actor.pid = outcome.result()
            actor.ready = True


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("the Ray executor", "ray") from exc
    return ray


def _user_paths() -> list[str]:
    """The driver's import paths that hold user code (not the interpreter's own dirs).

    Actors get these on ``sys.path`` so a model or hook defined in the user's modules
    can be unpickled; the interpreter's stdlib and site-packages are the actor's own.
    """
    prefixes = {os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    paths: list[str] = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        if not os.path.isdir(path) or "site-packages" in path or "dist-packages" in path:
            continue
        if any((path + os.sep).startswith(prefix) for prefix in prefixes) or path in paths:
            continue
        paths.append(path)
    return paths


def _worker_error(exc: BaseException) -> BaseException:
    """A chunk's failure as the core expects it: the actor's traceback as ``__cause__``."""
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError):  # the actor raised; str() holds its traceback
        cause = getattr(exc, "cause", None)
        name = type(cause).__name__ if cause is not None else "an error"
        error = WorkerError(f"worker raised {name}: {cause}")
        error.__cause__ = RemoteTraceback(_ANSI.sub("", str(exc)))
        return error
    error = WorkerError(f"Ray could not run the chunk: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
