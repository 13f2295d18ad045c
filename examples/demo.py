"""What ``make demo`` runs: a messy 200k-row orders CSV through FlowSchema.

::

    python examples/demo.py          # from the repository root

1. Generates ``build/demo/orders.csv`` (200,000 rows, about 2% bad in varied ways),
   unless it is already there with the same row count.
2. Validates every row against :class:`examples.orders_model.Order` in worker processes,
   within a 64 MB byte budget: valid rows to ``build/demo/orders.clean.jsonl``, the rest
   to the dead-letter queue ``build/demo/orders.errors.jsonl`` with the reason.
3. Prints the run report, the most common reasons in the DLQ, the speed and the peak
   bytes in flight against the budget, and checks that no row was lost.
"""

from __future__ import annotations

import collections
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import flowschema_core as fs  # noqa: E402
from examples.generate_orders import generate_orders_csv  # noqa: E402
from examples.orders_model import Order  # noqa: E402

ROWS = 200_000
OUT_DIR = os.path.join("build", "demo")
CSV_PATH = os.path.join(OUT_DIR, "orders.csv")
META_PATH = CSV_PATH + ".meta.json"
BUDGET = "64MB"


def ensure_input() -> dict[str, int]:
    """Generate the CSV unless it exists with the same row count; return bad-row counts."""
    if os.path.exists(CSV_PATH) and os.path.exists(META_PATH):
        with open(META_PATH) as f:
            meta = json.load(f)
        if meta.get("rows") == ROWS and meta.get("size") == os.path.getsize(CSV_PATH):
            print(f"using {CSV_PATH} ({ROWS:,} rows, already generated)")
            return dict(meta["bad"])
    os.makedirs(OUT_DIR, exist_ok=True)
    print(f"generating {ROWS:,} messy orders into {CSV_PATH} ...")
    bad = generate_orders_csv(CSV_PATH, ROWS)
    with open(META_PATH, "w") as f:
        json.dump({"rows": ROWS, "size": os.path.getsize(CSV_PATH), "bad": bad}, f)
    return bad


def dlq_reasons(path: str) -> collections.Counter[tuple[str, str]]:
    """Count DLQ records by (stage, error type of their first error)."""
    reasons: collections.Counter[tuple[str, str]] = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            errors = record.get("errors") or [{}]
            first = errors[0]
            where = ".".join(str(p) for p in first.get("loc") or [])
            if record["stage"] == "parse":  # e.g. "expected 12 fields, found 8"
                kind = f"{first.get('type', '?')}: {str(first.get('msg', ''))[:40]}"
            else:
                kind = first.get("type", "?") + (f" ({where})" if where else "")
            reasons[(record["stage"], kind)] += 1
    return reasons


def show(report: fs.RunReport, reasons: collections.Counter[tuple[str, str]], expected_bad: int) -> None:
    budget, peak = report.max_bytes_in_flight, report.peak_bytes_in_flight
    speed = [
        ("rows/s", f"{report.rows_per_s:,.0f}"),
        ("wall time", f"{report.elapsed_s:.2f} s"),
        ("peak bytes in flight", f"{peak / 2**20:.1f} MiB of {budget / 2**20:.1f} MiB ({100 * peak / budget:.0f}%)"),
        ("reader blocked by backpressure", f"{report.blocked_s:.2f} s"),
        ("peak RSS, whole process tree", f"{report.peak_rss_bytes / 2**20:.0f} MiB"),
        ("rows bad on purpose / in the DLQ", f"{expected_bad:,} / {report.rows_invalid:,}"),
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print("\nDLQ reasons (stage, first error):")
        for (stage, kind), n in reasons.most_common(12):
            print(f"  {n:>7,}  {stage:<9} {kind}")
        print()
        for name, value in speed:
            print(f"  {name:<34} {value}")
        return
    console = Console()
    table = Table(title="Dead-letter queue: why rows were rejected")
    table.add_column("rows", justify="right")
    table.add_column("stage")
    table.add_column("first error (field)")
    for (stage, kind), n in reasons.most_common(12):
        table.add_row(f"{n:,}", stage, kind)
    console.print(table)
    perf = Table(title="Speed and memory")
    perf.add_column("measure")
    perf.add_column("value", justify="right")
    for name, value in speed:
        perf.add_row(name, value)
    console.print(perf)


def main() -> int:
    bad = ensure_input()
    report = fs.Pipeline(
        fs.CSVSource(CSV_PATH),
        Order,
        fs.JSONLSink(os.path.join(OUT_DIR, "orders.clean.jsonl")),
        errors=fs.JSONLSink(os.path.join(OUT_DIR, "orders.errors.jsonl")),
        executor=fs.MultiprocessingExecutor(),
        max_bytes_in_flight=BUDGET,
    ).run()
    print()
    print(report.summary())
    print()
    show(report, dlq_reasons(os.path.join(OUT_DIR, "orders.errors.jsonl")), sum(bad.values()))
    # The accounting identity: every row read is valid, in the DLQ, or filtered.
    assert report.rows_read == report.rows_valid + report.rows_invalid + report.rows_filtered, report.summary()
    assert report.rows_read == ROWS, f"read {report.rows_read:,} rows, the file holds {ROWS:,}"
    assert report.rows_invalid == sum(bad.values()), f"{report.rows_invalid:,} rows in the DLQ, {sum(bad.values()):,} bad on purpose"
    assert report.peak_bytes_in_flight <= report.max_bytes_in_flight
    print(f"\nOK: read {report.rows_read:,} = valid {report.rows_valid:,} + invalid {report.rows_invalid:,}"
          f" + filtered {report.rows_filtered:,}; clean rows in {OUT_DIR}/orders.clean.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
