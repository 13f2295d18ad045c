"""``flowschema replay errors.jsonl --model pkg.mod:Model --sink PATH --errors PATH``

Re-runs the records of a DLQ through the same machinery as ``flowschema run`` (hooks,
executors, byte budget, checkpoint, error budget: the same options, parsed by the same
code, :func:`flowschema_core.cli.add_run_options`): records that now pass go to the sink,
the rest to the new DLQ, each keeping its original source and record number. What a DLQ
record becomes is :class:`~flowschema_core.sources.dlq.DLQSource`'s business; what could
not be replayed is counted in the summary's notes and is in the new DLQ, never dropped.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .. import dlq_file
from ..cli import UsageError, add_run_options, load_model, run_pipeline
from ..errors import SourceError
from ..sources.dlq import DLQSource

#: --source-option keys a replay understands (the DLQSource's options).
SOURCE_OPTIONS = ("delimiter", "encoding", "null_values")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("replay", help="re-run a DLQ's records with a (fixed) model: passes to the sink, the rest to a new DLQ")
    parser.add_argument("source", metavar="dlq", help="the DLQ file to replay (JSON Lines, may be .gz/.bz2/.xz/.zst)")
    add_run_options(parser)
    parser.set_defaults(handler=replay_command)


def replay_command(args: argparse.Namespace) -> int:
    path = args.source.removeprefix("dlq://")
    for flag in ("table", "query", "key", "sheet", "records_path"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')} does not apply to replay (its source is a DLQ)")
    model = load_model(args.model)
    if not os.path.exists(path):
        raise UsageError(f"DLQ file not found: {path}")
    try:
        dlq_file.check(path)
    except SourceError as exc:
        raise UsageError(str(exc)) from exc
    for output, flag in ((args.sink, "--sink"), (args.errors, "--errors")):
        if output and "://" not in output and os.path.exists(output) and os.path.samefile(output, path):
            raise UsageError(f"{flag} {output} is the DLQ being replayed; write the replay's output to another file")
    return run_pipeline(args, model, DLQSource(path, **_source_options(args)))


def _source_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in args.source_option:
        key, sep, value = pair.partition("=")
        key = key.replace("-", "_")
        if not sep or key not in SOURCE_OPTIONS:
            raise UsageError(f"replay takes --source-option {' / '.join(k + '=...' for k in SOURCE_OPTIONS)}, got {pair!r}")
        options[key] = value
    if isinstance(options.get("null_values"), str):
        options["null_values"] = [token for token in options["null_values"].split(",") if token]
    for name in ("delimiter", "encoding"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options
