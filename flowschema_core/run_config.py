"""``flowschema run --config pipeline.toml``: the options of ``run`` in a TOML file.

The keys are the long flags of ``run`` with underscores (``max_bytes_in_flight`` for
``--max-bytes-in-flight``), read from the ``run`` parser itself, so a new flag is a new
key with nothing to add here. Two keys may also be tables, for the options of the source
and the sink's constructors (what ``--source-option`` / ``--sink-option`` give on the
command line, but typed)::

    model = "models:Order"
    max_bytes_in_flight = "64MiB"
    workers = 2

    [source]                      # or: source = "orders.csv"
    path = "orders.csv"
    delimiter = ";"
    null_values = ["NA", "-"]

    [sink]                        # or: sink = "clean/orders.parquet"
    path = "sqlite:///shop.db"
    table = "orders"

Relative paths (``source``, ``sink``, ``errors``, ``report``, ``checkpoint``, and
``path`` in the tables) are relative to the file's directory, so a config means the same
from any working directory; URLs are taken as written. The model is imported from the
file's directory too (then the working directory). Flags on the command line override
the file. A key the ``run`` command does not know, or a value of the wrong type, is a
:class:`~flowschema_core.cli.UsageError` naming the key (and the close matches).
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from .cli import UsageError

#: Keys whose relative values are paths (relative to the config file's directory).
PATH_KEYS = ("source", "sink", "errors", "report", "checkpoint")
#: Flags that have a table instead (typed constructor options), not a key of their own.
TABLE_FLAGS = {"source_option": "source", "sink_option": "sink"}
#: Keys that take more TOML types than the flag's text: they are turned back into it.
_ALSO = {"max_bytes_in_flight": (int,), "chunk_bytes": (int,), "max_invalid": (int,), "sheet": (int,), "upsert_key": (list,)}
_NOT_KEYS = {"help", "config"}


def load(path: str) -> dict[str, Any]:
    """Parse the TOML file at ``path`` (tomllib; tomli before Python 3.11)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise UsageError(f"config file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"--config {path} is a directory, not a TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from exc


def defaults_from(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """What the config at ``path`` gives, as ``parser.set_defaults(**...)`` takes it (the
    flags' own text and types), so that flags on the command line override it. The
    tables come back as ``source_options`` / ``sink_options`` dicts."""
    config = load(path)
    base = os.path.dirname(os.path.abspath(path))
    actions = {a.dest: a for a in parser._actions if a.dest not in _NOT_KEYS and a.dest not in TABLE_FLAGS}
    values: dict[str, Any] = {"config_dir": base}
    for key, value in config.items():
        if key in TABLE_FLAGS.values() and isinstance(value, dict):
            location, options = _table(path, key, value)
            values[key], values[f"{key}_options"] = _resolve(base, location), options
            continue
        action = actions.get(key)
        if action is None:
            raise UsageError(f"{path}: unknown key {key!r}{_close(key, actions)}")
        value = _check(path, key, value, action)
        values[key] = _resolve(base, value) if key in PATH_KEYS else value
    return values


def _table(path: str, key: str, table: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    options = dict(table)
    location = options.pop("path", None)
    if not isinstance(location, str) or not location:
        raise UsageError(f"{path}: the [{key}] table needs path = \"...\" (the file or URL to {'read' if key == 'source' else 'write'})")
    return location, options


def _check(path: str, key: str, value: Any, action: argparse.Action) -> Any:
    """``value`` in the form the flag gives it, or a UsageError saying what it should be."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        wanted: tuple[type, ...] = (bool,)
    elif action.type in (int, float):
        wanted = (int,) if action.type is int else (int, float)
    else:
        wanted = (str, *_ALSO.get(key, ()))
    if (isinstance(value, bool) and bool not in wanted) or not isinstance(value, wanted):
        names = " or ".join({bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list of strings"}[t] for t in wanted)
        raise UsageError(f"{path}: {key} must be {names}, not {_toml_type(value)} {value!r}")
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise UsageError(f"{path}: {key} must be a list of strings, not {value!r}")
        return ",".join(value)
    if isinstance(value, int) and str in wanted and not isinstance(value, bool):
        return str(value)  # a size or count given as a number: the flag's text
    return value


def _resolve(base: str, value: str) -> str:
    if "://" in value or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def _close(key: str, known: Iterable[str]) -> str:
    matches = difflib.get_close_matches(key, list(known), n=3)
    return f" (did you mean {' or '.join(repr(m) for m in matches)}?)" if matches else ""


def _toml_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(type(value), type(value).__name__)


def check_options(cls: type, options: Mapping[str, Any], what: str) -> None:
    """Refuse an option ``cls`` does not take, naming the close matches (instead of a
    ``TypeError`` from deep inside the constructor)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]  # not the path
    for key in options:
        if key not in names:
            raise UsageError(f"unknown {what} option {key!r} for {cls.__name__}{_close(key, names)}; it takes: {', '.join(names)}")
