"""``flowschema report run.json [--html report.html]``: look at a run's report.

Without ``--html`` it prints the report's summary lines; with it, it writes the report as
one self-contained HTML page (see :mod:`flowschema_core.html_report`). A missing file, or a
file that is not a run report, is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("report", help="summarise a run report (flowschema run --report run.json), or write it as an HTML page")
    parser.add_argument("report", help="a run report written by flowschema run --report PATH")
    parser.add_argument("--html", metavar="PATH", help="write a self-contained HTML page (charts and tables) to PATH")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    from ..cli import UsageError
    from ..html_report import write_html_report
    from ..report import RunReport

    report = RunReport.load(args.report)  # a ConfigError: one line, exit 2
    if args.html:
        try:
            write_html_report(report, args.html)
        except OSError as exc:
            raise UsageError(f"cannot write {args.html}: {exc.strerror or exc}") from exc
        if not args.quiet:
            print(f"wrote {args.html}")
    elif not args.quiet:
        print(report.summary())
    return 0
