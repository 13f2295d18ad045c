"""Name → implementation lookups, fsspec-style: dotted paths imported on first use.

Executors come from the built-in table, then from the entry-point group
``flowschema.executors`` (read on the first lookup of an unknown name, never at import),
so ``executor="ray"`` works once ``flowschema[ray]`` is installed and any third party can
plug in the same way. Sources and sinks are chosen from a path's extension or URL scheme.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from .errors import ConfigError, MissingDependencyError

EXECUTORS: dict[str, str] = {
    "inline": "flowschema_core.executors.inline:InlineExecutor",
    "process": "flowschema_core.executors.process:MultiprocessingExecutor",
    "multiprocessing": "flowschema_core.executors.process:MultiprocessingExecutor",
}
#: Names known to come from an optional extra, for a helpful error when it is missing.
OPTIONAL_EXECUTORS = {"ray": "ray"}

#: extension or URL scheme → dotted path of the source / sink class
SOURCES: dict[str, str] = {
    ".csv": "flowschema_core.sources.csv:CSVSource",
    ".tsv": "flowschema_core.sources.csv:CSVSource",
    ".jsonl": "flowschema_core.sources.jsonl:JSONLSource",
    ".ndjson": "flowschema_core.sources.jsonl:JSONLSource",
    ".json": "flowschema_core.sources.json:JSONSource",
    ".parquet": "flowschema_core.sources.parquet:ParquetSource",
    "sqlite://": "flowschema_core.sources.sql:SQLSource",
    "postgresql://": "flowschema_core.sources.sql:SQLSource",
    ".xlsx": "flowschema_core.sources.excel:ExcelSource",
    ".xlsm": "flowschema_core.sources.excel:ExcelSource",
    "http://": "flowschema_core.sources.http:HTTPSource",
    "https://": "flowschema_core.sources.http:HTTPSource",
}
SINKS: dict[str, str] = {
    ".jsonl": "flowschema_core.sinks.jsonl:JSONLSink",
    ".ndjson": "flowschema_core.sinks.jsonl:JSONLSink",
    ".csv": "flowschema_core.sinks.csv:CSVSink",
    ".parquet": "flowschema_core.sinks.parquet:ParquetSink",
    "sqlite://": "flowschema_core.sinks.sql:SQLSink",
    "postgresql://": "flowschema_core.sinks.sql:SQLSink",
}

_entry_points: dict[str, Any] | None = None


def import_object(dotted: str) -> Any:
    """Import ``"package.module:Name"``."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def _executor_entry_points() -> dict[str, Any]:
    global _entry_points
    if _entry_points is None:
        from importlib.metadata import entry_points

        _entry_points = {ep.name: ep for ep in entry_points(group="flowschema.executors")}
    return _entry_points


def executor_class(name: str) -> type:
    """Return the executor class registered under ``name``."""
    if name in EXECUTORS:
        return import_object(EXECUTORS[name])  # type: ignore[no-any-return]
    found = _executor_entry_points().get(name)
    if found is not None:
        try:
            return found.load()  # type: ignore[no-any-return]
        except ImportError as exc:
            extra = OPTIONAL_EXECUTORS.get(name, name)
            raise MissingDependencyError(f"the {name!r} executor", extra, getattr(exc, "name", None)) from exc
    if name in OPTIONAL_EXECUTORS:
        raise MissingDependencyError(f"the {name!r} executor", OPTIONAL_EXECUTORS[name])
    known = sorted(set(EXECUTORS) | set(_executor_entry_points()))
    raise ConfigError(f"unknown executor {name!r}; known executors: {', '.join(known)}")


def make_executor(spec: Any = None, **options: Any) -> Any:
    """Turn ``None`` / a name / an instance into an executor instance."""
    from .executors.base import Executor

    if spec is None:
        spec = "process"
    if isinstance(spec, Executor):
        return spec
    if isinstance(spec, str):
        return executor_class(spec)(**options)
    raise ConfigError(f"executor must be a name such as 'process' or an Executor instance, not {type(spec).__name__}")


def _kind_key(location: str) -> str:
    if "://" in location:
        scheme = location.split("://", 1)[0].lower()
        return scheme.split("+", 1)[0] + "://"
    return os.path.splitext(location)[1].lower()


def source_for(location: str, **options: Any) -> Any:
    """Build the source a path or URL calls for, from its extension or scheme."""
    key = _kind_key(location)
    if key not in SOURCES:
        raise ConfigError(f"cannot tell what kind of source {location!r} is (by extension or URL scheme); known: {', '.join(sorted(SOURCES))}")
    if key == ".tsv":
        options.setdefault("delimiter", "\t")
    return import_object(SOURCES[key])(location, **options)


def sink_for(location: str, **options: Any) -> Any:
    """Build the sink a path or URL calls for, from its extension or scheme."""
    key = _kind_key(location)
    if key not in SINKS:
        raise ConfigError(f"cannot tell what kind of sink {location!r} is (by extension or URL scheme); known: {', '.join(sorted(SINKS))}")
    return import_object(SINKS[key])(location, **options)
