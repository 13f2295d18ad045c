"""The API for executor plugins, in one place: what ``flowschema_ray`` imports, and what
a third-party executor needs.

* :class:`Executor` (and :class:`ExecutorStats`): the interface to implement.
* :class:`WorkerSpec` and :class:`ChunkProcessor`: what a worker builds once and how it
  turns a chunk blob into a result blob (``ChunkProcessor(spec).process(blob)``).
* :class:`PooledExecutor`: the lifecycle of a pool of workers (submit, dispatch, deaths,
  replacements, shutdown), so that a pooled executor writes only its transport; with
  :class:`TaskPool`, :class:`Slot`, :class:`Task` and :func:`resolve` behind it.
* :class:`RemoteTraceback`: attach a worker's traceback as the ``__cause__`` of the error.
* :mod:`flowschema_core.testing`: the contract suite an executor must pass.

Everything else under ``flowschema_core`` not exported from the package is internal.
"""

from .executors.base import Executor, ExecutorStats, RemoteTraceback
from .executors.pool import Slot, Task, TaskPool, resolve
from .executors.pooled import PooledExecutor
from .worker import ChunkProcessor, WorkerSpec

__all__ = ["ChunkProcessor", "Executor", "ExecutorStats", "PooledExecutor", "RemoteTraceback", "Slot", "Task", "TaskPool", "WorkerSpec", "resolve"]
