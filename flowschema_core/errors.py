"""FlowSchema's error tree: one root, and branches a caller can act on.

::

    FlowSchemaError
    ├── ConfigError (also ValueError)        the pipeline or a component is set up wrongly
    │   └── MissingDependencyError (also ImportError)   names the extra to install
    ├── SourceError                           an input cannot be read as a whole
    │   └── SourceConnectionError (transient) a database connection was lost and not regained
    ├── SinkError                             an output cannot be written or committed
    ├── CheckpointError                       a checkpoint is unreadable or not this run's
    ├── InvalidRecordsError                   more records refused than max_invalid allows
    ├── ExecutionError                        the workers could not process the chunks
    │   ├── WorkerCrashedError  (transient)   a worker died holding a chunk
    │   ├── WorkerPoolError                   workers keep dying, or cannot start
    │   ├── WorkerError                       a worker raised; its traceback is the __cause__
    │   └── CodecError                        a chunk could not be encoded or decoded
    └── AccountingError                       read != valid + invalid + filtered: a bug

An error is :class:`Transient` (worth retrying: a lost connection, a dead worker) or
:class:`Terminal` (retrying cannot help: a bad file, a bad config), as dlt marks its
exceptions; ``error.transient`` says which for any FlowSchemaError. The CLI maps the
branches to exit codes (see :data:`EXIT_CODES`).

Errors cross process and Ray boundaries, so every one survives pickling: the root's
``__reduce__`` rebuilds an error from its message and attributes without calling the
subclass's constructor, whatever arguments that takes.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class Transient:
    """Mixin: retrying the same operation may succeed."""

    transient = True


class Terminal:
    """Mixin: retrying the same operation cannot succeed."""

    transient = False


class FlowSchemaError(Terminal, Exception):
    """Root of every error FlowSchema raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(FlowSchemaError, ValueError):
    """The pipeline, a source, sink or executor was configured wrongly."""


class MissingDependencyError(ConfigError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, feature: str, extra: str, package: str | None = None) -> None:
        self.feature, self.extra, self.package = feature, extra, package
        super().__init__(f'{feature} needs the optional dependency {package or extra!r}: pip install "flowschema[{extra}]"')


class SourceError(FlowSchemaError):
    """A source could not be read as a whole (missing, unreadable or malformed file)."""


class SourceConnectionError(Transient, SourceError):
    """A database source lost its connection mid-read and could not resume: no ``key`` to
    resume after, or every reconnection attempt failed. The message names the (redacted) URL."""


class SinkError(FlowSchemaError):
    """A sink could not write or commit its output."""


class CheckpointError(FlowSchemaError):
    """A checkpoint is unreadable or belongs to a different source, model or config."""


class InvalidRecordsError(FlowSchemaError):
    """The run refused more records than ``max_invalid`` allows; the DLQ keeps them."""


class ExecutionError(FlowSchemaError):
    """The executor could not process the chunks."""


class WorkerCrashedError(Transient, ExecutionError):
    """A worker process died while it held a chunk (killed, segfault, ``os._exit``)."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        self.exit_code = exit_code
        super().__init__(message)


class WorkerPoolError(ExecutionError):
    """The workers keep dying (restart budget spent) or could not start at all."""


class WorkerError(ExecutionError):
    """A worker raised while processing a chunk; the worker's traceback is the ``__cause__``."""


class CodecError(ExecutionError):
    """A chunk could not be encoded or decoded."""


class AccountingError(FlowSchemaError):
    """A run's counts broke ``read == valid + invalid + filtered``: a bug, never ignored."""


#: Exit codes of the ``flowschema`` command, by branch (the first match wins).
EXIT_CODES: tuple[tuple[type[FlowSchemaError], int], ...] = (
    (AccountingError, 70),  # EX_SOFTWARE: a bug in FlowSchema, to be reported, not a usage error
    (ConfigError, 2),
    (CheckpointError, 2),
    (FlowSchemaError, 1),  # the run failed: a source, sink or the workers
)


def exit_code_for(error: FlowSchemaError) -> int:
    """The CLI's exit code for ``error``."""
    return next(code for cls, code in EXIT_CODES if isinstance(error, cls))


def describe_exit(exit_code: int | None) -> str:
    """Say how a process ended, in words: ``"killed by signal SIGKILL"``, ``"exit code 3"``."""
    import signal

    if exit_code is None:
        return "ended for an unknown reason"
    if exit_code < 0:
        try:
            return f"killed by signal {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"
