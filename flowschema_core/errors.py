"""FlowSchema's error hierarchy.

Every error FlowSchema raises on purpose derives from :class:`FlowSchemaError`, so callers
can catch one class. Errors are *transient* (worth a retry: a lost connection, a dead
worker) or *terminal* (retrying cannot help: a bad file, a bad config).

Errors survive pickling: they cross process and Ray boundaries, so every subclass keeps
its constructor arguments in ``args`` (the default ``__reduce__`` rebuilds from them).
"""

from __future__ import annotations


class FlowSchemaError(Exception):
    """Root of every error FlowSchema raises on purpose."""

    transient: bool = False


class ConfigError(FlowSchemaError, ValueError):
    """The pipeline, a source, sink or executor was configured wrongly."""


class SourceError(FlowSchemaError):
    """A source could not be read as a whole (missing, unreadable or malformed file)."""


class SinkError(FlowSchemaError):
    """A sink could not write or commit its output."""


class CodecError(FlowSchemaError):
    """A chunk could not be encoded or decoded."""


class MissingDependencyError(FlowSchemaError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, feature: str, extra: str, package: str | None = None) -> None:
        self.feature, self.extra, self.package = feature, extra, package
        super().__init__(
            f"{feature} needs the optional dependency {package or extra!r}: "
            f'pip install "flowschema[{extra}]"'
        )

    def __reduce__(self):  # type: ignore[override]
        return (type(self), (self.feature, self.extra, self.package))


class WorkerCrashedError(FlowSchemaError):
    """A worker process died while it held a chunk (killed, segfault, ``os._exit``)."""

    transient = True

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        self.exit_code = exit_code
        super().__init__(message)

    def __reduce__(self):  # type: ignore[override]
        return (type(self), (str(self), self.exit_code))


class WorkerPoolError(FlowSchemaError):
    """The workers keep dying (restart budget spent) or could not start at all."""


class AccountingError(FlowSchemaError):
    """A run's counts broke ``read == valid + invalid + filtered``: a bug, never ignored."""


class CheckpointError(FlowSchemaError):
    """A checkpoint is unreadable or belongs to a different source, model or config."""


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


class WorkerError(FlowSchemaError):
    """A worker raised while processing a chunk; the worker's traceback is the ``__cause__``."""
