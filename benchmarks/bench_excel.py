"""Excel contenders, same workbook, same run: the whole FlowSchema pipeline (fast reader and
openpyxl reader, 2 workers, validation and DLQ) against pandas.read_excel and python-calamine.

    .venv/bin/python benchmarks/bench_excel.py                  # 60k rows x 12 columns, + a 4x sheet for memory
    .venv/bin/python benchmarks/bench_excel.py --rows 20000 --large-rows 0

Each contender runs in a fresh interpreter; its whole process tree's peak RSS is sampled
from outside (``benchmarks/harness.py``). The sheet (openpyxl write-only, cached under
the temp dir) holds one ``#DIV/0!`` error cell every 100 rows, so "error cells refused"
is measured too: FlowSchema must send exactly those rows to the DLQ.

* ``flowschema-fast``: ``ExcelSource(reader="fast")``, 2 worker processes, a typed model;
* ``flowschema-openpyxl``: the same with ``reader="openpyxl"`` (the reader before this one);
* ``pandas.read_excel``: openpyxl engine, reading only (no validation);
* ``python-calamine``: ``CalamineWorkbook.from_path(...).get_sheet_by_index(0).to_python()``,
  reading only: the speed the fast reader aims at.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydantic import BaseModel

from benchmarks import harness

ERROR_EVERY = 100

COLUMNS = ["id", "customer", "email", "amount", "qty", "price", "discount", "country", "status", "created", "shipped", "note"]


class Order(BaseModel):
    """The typed model the pipeline contenders validate against."""

    id: int
    customer: str
    email: str
    amount: float
    qty: int
    price: float
    discount: bool
    country: str
    status: str
    created: dt.datetime
    shipped: dt.date
    note: str | None = None


def make_sheet(path: str, rows: int) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("orders")
    ws.append(COLUMNS)
    r = random.Random(1)
    base = dt.datetime(2024, 1, 1)
    for i in range(rows):
        ws.append([
            i, f"cust{r.randrange(5000)}", f"u{i}@ex.com", "#DIV/0!" if i % ERROR_EVERY == 7 else round(r.random() * 1000, 2), r.randrange(1, 50),
            round(r.random() * 100, 2), r.random() < 0.1, r.choice(["DE", "FR", "US", "GB"]), r.choice(["new", "paid", "shipped"]),
            base + dt.timedelta(minutes=i), (base + dt.timedelta(days=i % 365)).date(), "x" * r.randrange(0, 20),
        ])
    wb.save(path)
    add_dimension(path, f"A1:{chr(64 + len(COLUMNS))}{rows + 1}")


def add_dimension(path: str, ref: str) -> None:
    """Write the sheet's <dimension> element, as Excel, LibreOffice and xlsxwriter do.

    openpyxl's write-only mode leaves it out, and without it openpyxl's read-only mode
    (used by FlowSchema and by pandas alike) parses the whole sheet once more at load
    just to look for it: the file would be slower to read than any real-world workbook.
    """
    import zipfile

    with zipfile.ZipFile(path) as src:
        parts = [(info, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in parts:
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<sheetViews>", f'<dimension ref="{ref}" /><sheetViews>'.encode(), 1)
            out.writestr(info, data)


def run_contender(kind: str, path: str, out_dir: str) -> dict[str, Any]:
    """In the child: one contender's work; what it read and refused."""
    if kind.startswith("flowschema-"):
        import flowschema_core as fs

        report = fs.Pipeline(fs.ExcelSource(path, reader=kind.split("-", 1)[1]), Order, fs.JSONLSink(os.path.join(out_dir, f"{kind}.jsonl")),
                             fs.JSONLSink(os.path.join(out_dir, f"{kind}.errors.jsonl")),
                             executor=fs.MultiprocessingExecutor(workers=2), max_bytes_in_flight="64MB").run()
        assert report.balanced, report.summary()
        return {"rows": report.rows_read, "valid": report.rows_valid, "refused": report.invalid_by_stage.get("parse", 0),
                "notes": report.notes, "peak_bytes_in_flight": report.peak_bytes_in_flight}
    if kind == "pandas":
        import pandas as pd

        frame = pd.read_excel(path, engine="openpyxl")
        return {"rows": len(frame), "valid": len(frame), "refused": 0, "errors_read_as": repr(frame["amount"].iloc[7])}
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(path).get_sheet_by_index(0).to_python()
    return {"rows": len(rows) - 1, "valid": len(rows) - 1, "refused": 0, "errors_read_as": repr(rows[8][3])}


def measure(kind: str, path: str) -> dict[str, Any]:
    out_dir = tempfile.mkdtemp(prefix="flowschema-bench-excel-")
    try:
        result = harness.run_child([sys.executable, os.path.abspath(__file__), "--_child", kind, path, out_dir])
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    result["rows_per_s"] = result["rows"] / result["wall_s"]
    return result


def ensure_sheet(rows: int) -> str:
    path = os.path.join(tempfile.gettempdir(), f"flowschema-bench-{rows}-e{ERROR_EVERY}.xlsx")
    if not os.path.exists(path):
        make_sheet(path, rows)
    return path


LABELS = {
    "flowschema-fast": "FlowSchema pipeline, fast reader (2 workers)",
    "flowschema-openpyxl": "FlowSchema pipeline, openpyxl reader (2 workers)",
    "pandas": "pandas.read_excel (openpyxl), read only",
    "calamine": "python-calamine, read only",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        with harness.timed({}) as result:
            result.update(run_contender(argv[1], argv[2], argv[3]))
        harness.report_result(result)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--large-rows", type=int, default=None, help="a larger sheet for the memory check (default 4x --rows; 0: skip)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each contender's best is reported")
    parser.add_argument("--json", metavar="OUT", help="also save the results as JSON")
    args = parser.parse_args(argv)
    path = ensure_sheet(args.rows)
    errors = sum(1 for i in range(args.rows) if i % ERROR_EVERY == 7)
    print(f"{args.rows:,} rows x {len(COLUMNS)} columns ({os.path.getsize(path) / 1e6:.1f} MB), {errors} rows with an error cell; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}", flush=True)
    kinds = list(LABELS)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for round_ in range(args.repeat):
        for kind in kinds if round_ % 2 == 0 else kinds[::-1]:
            r = measure(kind, path)
            print(f"  round {round_ + 1}: {LABELS[kind]:<52} {r['rows_per_s']:>10,.0f} rows/s  {harness.mib(r['peak_rss'])}", flush=True)
            if r["rows"] != args.rows:
                raise SystemExit(f"{kind}: read {r['rows']} rows, expected {args.rows}")
            if kind.startswith("flowschema-") and (r["refused"], r["valid"]) != (errors, args.rows - errors):
                raise SystemExit(f"{kind}: {r['valid']} valid, {r['refused']} refused; expected {args.rows - errors} / {errors}")
            runs[kind].append(r)
    best = {k: max(v, key=lambda r: r["rows_per_s"]) for k, v in runs.items()}
    calamine = best["calamine"]["rows_per_s"]
    table = []
    for kind in kinds:
        r = best[kind]
        refused = f"{r['refused']} of {errors}" if kind.startswith("flowschema-") else f"0 of {errors} (read as {r['errors_read_as']})"
        table.append([LABELS[kind], f"{r['rows_per_s']:,.0f}", f"{r['rows_per_s'] / calamine:.2f}x", f"{r['wall_s']:.2f}",
                      f"{r['cpu_s']:.1f}", harness.mib(r["peak_rss"]), refused])
    print()
    print(harness.table(["contender", "rows/s", "vs calamine", "wall s", "CPU s", "peak tree RSS", "error rows refused"], table))
    print(f"\nfast reader / calamine read alone: {best['flowschema-fast']['rows_per_s'] / calamine:.2f}x; "
          f"fast reader / openpyxl reader: {best['flowschema-fast']['rows_per_s'] / best['flowschema-openpyxl']['rows_per_s']:.2f}x")
    large_rows = 4 * args.rows if args.large_rows is None else args.large_rows
    flat: dict[str, Any] = {}
    if large_rows:
        large = measure("flowschema-fast", ensure_sheet(large_rows))
        flat = {"rows": large_rows, "peak_rss": large["peak_rss"], "rows_per_s": large["rows_per_s"],
                "ratio": large["peak_rss"] / best["flowschema-fast"]["peak_rss"]}
        print(f"memory (fast reader): {args.rows:,} rows {harness.mib(best['flowschema-fast']['peak_rss'])}, "
              f"{large_rows:,} rows {harness.mib(large['peak_rss'])} (ratio {flat['ratio']:.2f}; 1.00 = flat), "
              f"{large['rows_per_s']:,.0f} rows/s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": args.rows, "best": best, "flatness": flat}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
