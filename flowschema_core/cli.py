"""``flowschema run SOURCE --model pkg.module:Model --sink PATH --errors PATH ...``

Source and sink kinds come from the extension or URL scheme. Every error ends with one
line on stderr, never a traceback, and an exit code that says whose move it is:

====  =================================================================================
0     the run finished (bad records are in the DLQ: that is a finished run)
1     the run failed: a source or sink could not be read or written, the workers failed,
      more records were invalid than --max-invalid allows
2     a mistake to fix in the command: a missing module, class or file, a bad option or
      configuration, a checkpoint that belongs to another run
70    an accounting breach (read != valid + invalid + filtered): a bug in FlowSchema,
      please report it
130   interrupted (Ctrl-C)
143   stopped by SIGTERM (a clean stop: nothing under the final output names)
====  =================================================================================
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from . import storage
from .errors import FlowSchemaError, exit_code_for

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UsageError(Exception):
    """A mistake in the command line: printed as one line, exit code 2."""


def load_model(spec: str) -> type:
    """Import ``"package.module:ClassName"`` (the current directory is importable)."""
    from pydantic import BaseModel

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--model must look like package.module:ClassName, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"cannot import module {module_name!r} for --model ({exc}); run from the directory that contains it or set PYTHONPATH") from exc
    except Exception as exc:
        raise UsageError(f"importing {module_name!r} for --model failed: {type(exc).__name__}: {exc}") from exc
    model = module
    for part in attr.split("."):
        if not hasattr(model, part):
            raise UsageError(f"module {module_name!r} has no attribute {attr!r} (for --model)")
        model = getattr(model, part)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise UsageError(f"--model {spec} is not a pydantic.BaseModel subclass")
    return model


def _options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--source-option / --sink-option takes key=value, got {pair!r}")
        out[key.replace("-", "_")] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowschema", description="Validate messy records with a Pydantic model, within a byte budget.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline")
    run.add_argument("source", nargs="?", help="input path or URL (.csv .tsv .json .jsonl .parquet .xlsx, s3:// gs:// az:// URLs; sqlite:/// postgresql:// http(s)://)")
    run.add_argument("--config", metavar="FILE", help="read the options from a TOML file (keys named like the flags); flags override it")
    add_run_options(run, required=False)  # --model and --sink may come from --config
    run.set_defaults(handler=run_command, run_parser=run)
    for command in _more_commands():
        command.add_parser(sub)
    return parser


def add_run_options(run: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The options of ``flowschema run`` after SOURCE (``flowschema replay`` takes them too)."""
    run.add_argument("--model", required=required, help="pydantic model as package.module:ClassName")
    run.add_argument("--sink", required=required, help="output path or URL (.jsonl .csv .parquet, also as s3:// gs:// az:// URLs; sqlite:/// postgresql:// mysql://)")
    run.add_argument("--errors", help="dead-letter queue path (default: beside the sink, *.errors.jsonl)")
    run.add_argument("--executor", default="process", help="process (default), inline, ray, or a plugin name")
    run.add_argument("--workers", type=int, help="worker processes / Ray actors (default: the executor's own)")
    run.add_argument("--max-bytes-in-flight", default="256MB", help="byte budget, e.g. 64MiB or 500MB (default 256MB)")
    run.add_argument("--chunk-bytes", default="1MiB", help="target msgpack bytes per chunk (default 1MiB)")
    run.add_argument("--report", help="write the run report as JSON to this path")
    run.add_argument("--sink-table", help="SQL sink: the table to write (created from the model if missing)")
    run.add_argument("--upsert-key", help="SQL sink: column(s) to upsert on, comma-separated")
    run.add_argument("--sink-option", action="append", default=[], metavar="KEY=VALUE", help="extra sink option (repeatable)")
    run.add_argument("--checkpoint", metavar="DIR", help="record progress in DIR; running again with the same DIR after a crash resumes exactly")
    run.add_argument("--resume", action="store_true", help="require an existing checkpoint in --checkpoint DIR (error if there is none)")
    run.add_argument("--max-invalid", metavar="N_OR_PCT", help="stop once more records than this are invalid: a count (1000) or a share (5%%)")
    run.add_argument("--record-timeout", type=float, metavar="SECONDS",
                     help="a record whose hooks and validation take longer goes to the DLQ and its worker is replaced (default: no limit)")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors (no progress line, no summary)")
    add_source_options(run)


#: The flags of add_source_options that name a source option (their dest is the option's name).
SOURCE_FLAGS = ("delimiter", "encoding", "sheet", "table", "query", "key", "records_path")


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """How to read SOURCE: the flags ``run``, ``replay`` and ``infer`` share, defined once."""
    parser.add_argument("--delimiter", help="CSV delimiter")
    parser.add_argument("--encoding", help="CSV encoding")
    parser.add_argument("--sheet", help="Excel sheet name or 0-based index")
    parser.add_argument("--table", help="SQL source: the table to read")
    parser.add_argument("--query", help="SQL source: the query to read (instead of --table)")
    parser.add_argument("--key", help="SQL source: a unique column to read in order of, so a dropped connection resumes after the last row read")
    parser.add_argument("--records-path", help="dotted path to the records in an HTTP JSON body")
    parser.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE", help="extra source option (repeatable)")


def _more_commands() -> list[Any]:
    """The subcommands beside ``run``: each module has ``add_parser(sub)``, which sets ``handler``."""
    from .commands import infer, inspect, replay, report

    return [report, infer, inspect, replay]


def _source_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {**getattr(args, "source_options", {}), **_options(args.source_option)}  # the config's [source] table, then flags
    for name in SOURCE_FLAGS:
        if name != "sheet" and getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.sheet is not None:
        options["sheet"] = int(args.sheet) if args.sheet.isdigit() else args.sheet
    return options


def _sink_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {**getattr(args, "sink_options", {}), **_options(args.sink_option)}  # the config's [sink] table, then flags
    if "://" in args.sink and not storage.is_file_url(args.sink):  # a database
        if args.sink_table:
            options["table"] = args.sink_table
        if "table" not in options:
            raise UsageError(f"--sink-table is needed to write to {args.sink.split('://')[0]}://")
    if args.upsert_key:
        options["upsert_key"] = [k.strip() for k in args.upsert_key.split(",")]
    return options


def run_command(args: argparse.Namespace) -> int:
    from . import registry, run_config

    missing = [name for name, value in (("SOURCE", args.source), ("--model", args.model), ("--sink", args.sink)) if not value]
    if missing:
        raise UsageError(f"{', '.join(missing)} missing: give {'it' if len(missing) == 1 else 'them'} on the command line "
                         "or in --config FILE (keys source, model, sink)")
    if getattr(args, "config_dir", None) and args.config_dir not in sys.path:
        sys.path.insert(0, args.config_dir)  # a model module beside the config file
    model = load_model(args.model)
    if "://" not in args.source and not os.path.exists(args.source):
        raise UsageError(f"source file not found: {args.source}")
    source_options = _source_options(args)
    if (args.table or args.query or args.key) and not registry.is_sql_source(args.source):
        raise UsageError("--table / --query / --key apply to an SQL source (sqlite:///…, postgresql://…, mysql://… or mariadb://…)")
    run_config.check_options(registry.source_class(args.source), source_options, "source")
    try:
        source = registry.source_for(args.source, **source_options)
    except TypeError as exc:  # an option of the wrong type, e.g. delimiter = 5 in the config
        raise UsageError(f"a source option has the wrong type: {exc}") from exc
    return run_pipeline(args, model, source)


def _check_resume(args: argparse.Namespace) -> None:
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint DIR")
    if args.resume and not os.path.exists(os.path.join(args.checkpoint, "state.json")):
        raise UsageError(f"--resume: there is no checkpoint in {args.checkpoint}")


def run_pipeline(args: argparse.Namespace, model: type, source: Any) -> int:
    """Run ``model`` over ``source`` with the sink, DLQ, executor, budget and checkpoint
    options of ``args`` (:func:`add_run_options`); print the summary; the exit status."""
    from . import registry, run_config
    from .pipeline import Pipeline

    _check_resume(args)
    sink_options = _sink_options(args)
    run_config.check_options(registry.sink_class(args.sink), sink_options, "sink")
    try:
        sink = registry.sink_for(args.sink, **sink_options)
    except TypeError as exc:  # an option of the wrong type, e.g. upsert_key = 5 in the config
        raise UsageError(f"a sink option has the wrong type: {exc}") from exc
    errors = registry.sink_for(args.errors) if args.errors else None
    executor = registry.make_executor(args.executor, **({"workers": args.workers} if args.workers is not None else {}))
    report = Pipeline(source, model, sink, errors, executor=executor, max_bytes_in_flight=args.max_bytes_in_flight, chunk_bytes=args.chunk_bytes,
                      checkpoint=args.checkpoint, max_invalid=args.max_invalid, record_timeout=args.record_timeout,
                      progress=not args.quiet).run()
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(report.to_json())
    if not args.quiet:
        print(report.summary())
        for note in report.notes:
            print(f"  note: {note}")
    if not report.interrupted:
        return 0
    return EXIT_TERMINATED if report.stop_signal == "SIGTERM" else EXIT_INTERRUPTED


def _log_to_stderr(quiet: bool) -> None:
    """Show FlowSchema's warnings (a poison record, a stop signal, stale temp files removed)."""
    logger = logging.getLogger("flowschema")
    logger.setLevel(logging.ERROR if quiet else logging.WARNING)
    if not any(getattr(h, "flowschema_cli", False) for h in logger.handlers):  # main() may run more than once in a process
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("flowschema: %(message)s"))
        handler.flowschema_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each record: while the progress line is up,
    that is rich's proxy, which prints the warning above the line instead of through it."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _with_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """Parse again with the config file's values as defaults: flags override the file."""
    from . import run_config

    args.run_parser.set_defaults(**run_config.defaults_from(args.config, args.run_parser))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "config", None):
            args = _with_config(parser, args, argv)
        _log_to_stderr(getattr(args, "quiet", False))
        return int(args.handler(args))
    except UsageError as exc:
        print(f"flowschema: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FlowSchemaError as exc:
        print(f"flowschema: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("flowschema: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    # Run as ``python -m flowschema_core.cli`` this module is __main__; the commands raise
    # flowschema_core.cli.UsageError, so main must be that module's to catch it.
    from flowschema_core.cli import main as _main

    sys.exit(_main())
