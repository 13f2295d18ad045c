"""Name → implementation lookups, fsspec-style: dotted paths imported on first use.

One table per kind of component (executors by name; sources and sinks by a path's
extension or URL scheme), each entry with the extra to install when its import fails and
the constructor defaults it implies (``.tsv`` means a tab delimiter). A storage URL
(``s3://bucket/orders.csv``, ``file:///…``, an ``https://`` URL whose path ends in a data
extension: :func:`flowschema_core.storage.is_file_url`) goes by its extension too. Names the tables do
not know are looked up in the entry-point groups ``flowschema.executors``,
``flowschema.sources`` and ``flowschema.sinks``, read on the first lookup of an unknown
name, never at import. A plugin registers a source or sink under its extension without
the dot (``avro``) or its URL scheme (``kafka``)::

    [project.entry-points."flowschema.sources"]
    avro = "my_package:AvroSource"
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import storage
from .errors import ConfigError, MissingDependencyError
from .sources.compression import SUFFIXES as COMPRESSION_SUFFIXES


@dataclass(frozen=True)
class Entry:
    """A registered component: where it lives, what it needs, how its key configures it."""

    target: str  # "package.module:Class"
    extra: str | None = None  # the `pip install "flowschema[extra]"` it needs, if any
    defaults: Mapping[str, Any] = field(default_factory=dict)


EXECUTORS: dict[str, Entry] = {
    "inline": Entry("flowschema_core.executors.inline:InlineExecutor"),
    "process": Entry("flowschema_core.executors.process:MultiprocessingExecutor"),
    "multiprocessing": Entry("flowschema_core.executors.process:MultiprocessingExecutor"),
}
#: Plugins FlowSchema ships as extras (registered by their own entry points), for a
#: helpful error when the extra is missing.
KNOWN_PLUGINS: dict[str, str] = {"ray": "ray"}

SOURCES: dict[str, Entry] = {
    ".csv": Entry("flowschema_core.sources.csv:CSVSource"),
    ".tsv": Entry("flowschema_core.sources.csv:CSVSource", defaults={"delimiter": "\t"}),
    ".jsonl": Entry("flowschema_core.sources.jsonl:JSONLSource"),
    ".ndjson": Entry("flowschema_core.sources.jsonl:JSONLSource"),
    ".json": Entry("flowschema_core.sources.json:JSONSource"),
    ".parquet": Entry("flowschema_core.sources.parquet:ParquetSource", extra="parquet"),
    "sqlite://": Entry("flowschema_core.sources.sql:SQLSource", extra="sql"),
    "postgresql://": Entry("flowschema_core.sources.sql:SQLSource", extra="postgres"),
    "mysql://": Entry("flowschema_core.sources.sql:SQLSource", extra="mysql"),
    "mariadb://": Entry("flowschema_core.sources.sql:SQLSource", extra="mysql"),
    ".xlsx": Entry("flowschema_core.sources.excel:ExcelSource", extra="excel"),
    ".xlsm": Entry("flowschema_core.sources.excel:ExcelSource", extra="excel"),
    "http://": Entry("flowschema_core.sources.http:HTTPSource", extra="http"),
    "https://": Entry("flowschema_core.sources.http:HTTPSource", extra="http"),
    "dlq://": Entry("flowschema_core.sources.dlq:DLQSource"),  # a DLQ to replay: dlq://errors.jsonl
}
SINKS: dict[str, Entry] = {
    ".jsonl": Entry("flowschema_core.sinks.jsonl:JSONLSink"),
    ".ndjson": Entry("flowschema_core.sinks.jsonl:JSONLSink"),
    ".csv": Entry("flowschema_core.sinks.csv:CSVSink"),
    ".parquet": Entry("flowschema_core.sinks.parquet:ParquetSink", extra="parquet"),
    "sqlite://": Entry("flowschema_core.sinks.sql:SQLSink", extra="sql"),
    "postgresql://": Entry("flowschema_core.sinks.sql:SQLSink", extra="postgres"),
    "mysql://": Entry("flowschema_core.sinks.sql:SQLSink", extra="mysql"),
    "mariadb://": Entry("flowschema_core.sinks.sql:SQLSink", extra="mysql"),
}

GROUPS = {"executor": "flowschema.executors", "source": "flowschema.sources", "sink": "flowschema.sinks"}
_entry_points: dict[str, dict[str, Any]] = {}


def import_object(dotted: str) -> Any:
    """Import ``"package.module:Name"``."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def plugins(kind: str) -> dict[str, Any]:
    """The entry points of ``kind`` ("executor", "source", "sink"), read once."""
    if kind not in _entry_points:
        from importlib.metadata import entry_points

        _entry_points[kind] = {ep.name: ep for ep in entry_points(group=GROUPS[kind])}
    return _entry_points[kind]


def _load(kind: str, name: str, table: Mapping[str, Entry], plugin_name: str) -> tuple[Any, Entry]:
    """The class registered under ``name`` in ``table``, else the plugin ``plugin_name``."""
    entry = table.get(name)
    if entry is not None:
        try:
            return import_object(entry.target), entry
        except ImportError as exc:
            raise MissingDependencyError(f"the {name!r} {kind}", entry.extra or "all", getattr(exc, "name", None)) from exc
    found = plugins(kind).get(plugin_name)
    if found is None:
        return None, Entry("")
    try:
        return found.load(), Entry(found.value)
    except ImportError as exc:
        extra = KNOWN_PLUGINS.get(plugin_name, plugin_name) if kind == "executor" else plugin_name
        raise MissingDependencyError(f"the {plugin_name!r} {kind}", extra, getattr(exc, "name", None)) from exc


def executor_class(name: str) -> type:
    """Return the executor class registered under ``name``."""
    cls, _ = _load("executor", name, EXECUTORS, name)
    if cls is not None:
        return cls  # type: ignore[no-any-return]
    if name in KNOWN_PLUGINS:
        raise MissingDependencyError(f"the {name!r} executor", KNOWN_PLUGINS[name])
    known = sorted(set(EXECUTORS) | set(plugins("executor")))
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


def _kind_key(location: str, kind: str) -> str:
    if "://" in location:
        if not storage.is_file_url(location):  # a database, an HTTP API, dlq://, a plugin's scheme
            scheme = location.split("://", 1)[0].lower()
            return scheme.split("+", 1)[0] + "://"
        location = storage.url_path(location)  # s3://bucket/orders.csv is a CSV file
    stem, ext = os.path.splitext(location)
    if ext.lower() in COMPRESSION_SUFFIXES:
        if kind == "sink":  # writing compressed is not supported: refuse rather than lie
            raise ConfigError(f"cannot write a compressed sink ({location!r}): FlowSchema writes plain files; compress the output afterwards")
        ext = os.path.splitext(stem)[1]  # orders.csv.gz is a CSV file, read decompressed
    return ext.lower()


def is_sql_source(location: str) -> bool:
    """True when ``location`` is a database URL read by the SQL source (``--table`` / ``--query`` apply)."""
    entry = SOURCES.get(_kind_key(location, "source")) if "://" in location else None
    return entry is not None and entry.target.startswith("flowschema_core.sources.sql:")


def _lookup(kind: str, table: Mapping[str, Entry], location: str) -> tuple[Any, Entry]:
    key = _kind_key(location, kind)
    cls, entry = _load(kind, key, table, key.strip(".").removesuffix("://"))
    if cls is None:
        known = sorted(set(table) | set(plugins(kind)))
        raise ConfigError(f"cannot tell what kind of {kind} {location!r} is (by extension or URL scheme); known: {', '.join(known)}")
    return cls, entry


def _build(kind: str, table: Mapping[str, Entry], location: str, options: dict[str, Any]) -> Any:
    cls, entry = _lookup(kind, table, location)
    return cls(location, **{**entry.defaults, **options})


def source_class(location: str) -> type:
    """The source class a path or URL calls for (without building one)."""
    return _lookup("source", SOURCES, location)[0]  # type: ignore[no-any-return]


def sink_class(location: str) -> type:
    """The sink class a path or URL calls for (without building one)."""
    return _lookup("sink", SINKS, location)[0]  # type: ignore[no-any-return]


def source_for(location: str, **options: Any) -> Any:
    """Build the source a path or URL calls for, from its extension or scheme."""
    return _build("source", SOURCES, location, options)


def sink_for(location: str, **options: Any) -> Any:
    """Build the sink a path or URL calls for, from its extension or scheme."""
    return _build("sink", SINKS, location, options)
