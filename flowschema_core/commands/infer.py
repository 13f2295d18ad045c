"""``flowschema infer FILE [-o model.py]``: print a Pydantic model that fits a file.

The logic is :mod:`flowschema_core.infer`; this module is its command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .. import infer
from ..errors import SourceError


def add_parser(sub: Any) -> None:
    from ..cli import add_source_options

    parser = sub.add_parser("infer", help="write a Pydantic model that fits a file (a first draft of --model)",
                            description="Sample a file (any kind flowschema run reads) and print a runnable Pydantic v2 module.")
    parser.add_argument("source", help="input path or URL (.csv .tsv .json .jsonl .parquet .xlsx sqlite:/// postgresql:// ...)")
    parser.add_argument("-o", "--output", metavar="PATH", help="write the module here (default: print it)")
    parser.add_argument("--class-name", default="Record", help="the model's class name (default Record)")
    parser.add_argument("--sample-size", type=int, default=infer.DEFAULT_SAMPLE_SIZE, help=f"records in the sample (default {infer.DEFAULT_SAMPLE_SIZE:,})")
    parser.add_argument("--max-records", type=int, default=infer.DEFAULT_MAX_RECORDS,
                        help=f"stop scanning after this many records; 0 reads everything (default {infer.DEFAULT_MAX_RECORDS:,})")
    parser.add_argument("--threshold", type=float, default=infer.DEFAULT_THRESHOLD,
                        help="share of a column's non-empty sampled values its type must fit (default 0.95)")
    parser.add_argument("--enums", action="store_true", help="text columns with few distinct values become Literal[...]")
    parser.add_argument("--max-enum-values", type=int, default=infer.DEFAULT_MAX_ENUM_VALUES,
                        help=f"most distinct values an enum may have (default {infer.DEFAULT_MAX_ENUM_VALUES})")
    parser.add_argument("--seed", type=int, default=0, help="the sample's random seed (default 0)")
    add_source_options(parser)
    parser.set_defaults(handler=infer_command)


def infer_command(args: argparse.Namespace) -> int:
    from ..cli import UsageError, _source_options

    if "://" not in args.source and not os.path.exists(args.source):
        raise UsageError(f"source file not found: {args.source}")
    if args.sample_size < 1:
        raise UsageError(f"--sample-size must be at least 1, not {args.sample_size}")
    if args.max_records < 0:
        raise UsageError(f"--max-records must be 0 (no cap) or more, not {args.max_records}")
    if not 0 < args.threshold <= 1:
        raise UsageError(f"--threshold is a share in (0, 1], such as 0.95, not {args.threshold}")
    if not args.class_name.isidentifier():
        raise UsageError(f"--class-name must be a Python identifier, not {args.class_name!r}")
    try:
        found = infer.infer_model(args.source, class_name=args.class_name, sample_size=args.sample_size, max_records=args.max_records or None,
                                  threshold=args.threshold, enums=args.enums, max_enum_values=args.max_enum_values, seed=args.seed,
                                  **_source_options(args))
    except SourceError as exc:
        # Nothing was written and no run failed: the file is what needs fixing (exit 2).
        raise UsageError(str(exc)) from exc
    sample = found.sample
    if not sample.records:
        why = f"none of its {sample.unparsed:,} records could be parsed" if sample.unparsed else "it has a header and no records"
        print(f"flowschema: {args.source}: {why}: every field is str | None", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(found.module)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(found.module)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from exc
    refused = sum(1 for c in found.columns if c.misfits)
    print(f"wrote {args.output}: class {args.class_name}, {len(found.columns)} fields from {len(sample.records):,} sampled of {sample.scanned:,} records"
          + (f"; {refused} fields saw values that did not fit (see their comments)" if refused else ""))
    return 0
