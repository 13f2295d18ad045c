"""``flowschema inspect errors.jsonl [--json]``: what a DLQ holds, grouped and counted.

A table (rich) of the groups ``(stage, error type, field)`` with exact counts, first and
last record numbers and a few varied examples; ``--json`` prints
:meth:`~flowschema_core.dlq_summary.DLQSummary.to_dict` for machines. The counting rules
are :mod:`flowschema_core.dlq_summary`'s.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..cli import UsageError
from ..dlq_summary import EXAMPLES, MAX_GROUPS, DLQSummary, inspect_dlq
from ..errors import SourceError


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("inspect", help="summarise a DLQ: errors grouped by stage, type and field")
    parser.add_argument("dlq", help="the DLQ file (JSON Lines, may be .gz/.bz2/.xz/.zst)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--examples", type=int, default=EXAMPLES, help=f"varied examples per group (default {EXAMPLES})")
    parser.add_argument("--max-groups", type=int, default=MAX_GROUPS,
                        help=f"groups kept; errors of further groups are counted as 'other' (default {MAX_GROUPS})")
    parser.set_defaults(handler=inspect_command)


def inspect_command(args: argparse.Namespace) -> int:
    if args.examples < 0 or args.max_groups < 1:
        raise UsageError("--examples must be 0 or more and --max-groups 1 or more")
    if not os.path.exists(args.dlq):
        raise UsageError(f"DLQ file not found: {args.dlq}")
    try:
        summary = inspect_dlq(args.dlq, max_groups=args.max_groups, examples=args.examples)
    except SourceError as exc:  # not a DLQ, a directory, unreadable: the command's mistake
        raise UsageError(str(exc)) from exc
    if args.json:
        print(summary.to_json())
    else:
        show(summary)
    return 0


def show(summary: DLQSummary) -> None:
    """The summary as a table on stdout (rich; plain text when rich is not installed)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(plain(summary))
        return
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a log or a pipe: no terminal to fit, so wrap less
    console.print(_headline(summary), markup=False, highlight=False)
    if not summary.groups:
        return
    table = Table(show_lines=False)
    for name, justify in (("stage", "left"), ("error type", "left"), ("field", "left"), ("records", "right"),
                          ("errors", "right"), ("first", "right"), ("last", "right"), ("examples (record: input)", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "examples (record: input)")  # type: ignore[arg-type]
    for g in summary.groups:
        table.add_row(g.stage, g.type or "-", g.field or "(record)", f"{g.records:,}", f"{g.errors:,}", str(g.first_record),
                      str(g.last_record), "\n".join(_example(e.record, e.input) for e in g.examples), end_section=False)
    console.print(table, markup=False, highlight=False)
    for line in _footer(summary):
        console.print(line, markup=False, highlight=False)


def plain(summary: DLQSummary) -> str:
    lines = [_headline(summary)]
    for g in summary.groups:
        examples = "; ".join(_example(e.record, e.input) for e in g.examples)
        lines.append(f"  {g.stage:9} {g.type or '-':24} {g.field or '(record)':20} records {g.records:>9,} errors {g.errors:>9,} "
                     f"first {g.first_record} last {g.last_record}  {examples}")
    return "\n".join(lines + _footer(summary))


def _headline(summary: DLQSummary) -> str:
    stages = ", ".join(f"{stage} {n:,}" for stage, n in sorted(summary.by_stage.items())) or "none"
    sources = ", ".join(f"{name} ({n:,})" for name, n in sorted(summary.sources.items(), key=lambda kv: -kv[1])[:5])
    return (f"{summary.path}: {summary.records:,} records ({stages}), {summary.errors:,} errors in {len(summary.groups):,} groups"
            + (f"; from {sources}" if sources else ""))


def _footer(summary: DLQSummary) -> list[str]:
    lines = ["records: DLQ records with an error in the group (a record with errors in several groups counts in each); "
             "errors: error entries"]
    if summary.other:
        lines.append(f"other: {summary.other['records']:,} records, {summary.other['errors']:,} errors in groups past the first "
                     f"{summary.max_groups:,} (--max-groups)")
    if summary.bad_lines:
        lines.append(f"{summary.bad_lines:,} lines are not DLQ records (not counted above), e.g. line(s) "
                     f"{', '.join(map(str, summary.bad_line_numbers))}")
    return lines


def _example(record: int, value: Any) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)
    return f"{record}: {shown!r}" if isinstance(value, str) else f"{record}: {shown}"
