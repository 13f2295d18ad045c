"""Excel reading speed: FlowSchema's ExcelSource against pandas.read_excel, same file, one run.

    .venv/bin/python benchmarks/bench_excel.py                 # 100k rows x 12 columns
    .venv/bin/python benchmarks/bench_excel.py --rows 20000    # quicker

The sheet is generated once (openpyxl write-only) and cached under ``--path``. Measured:

* ``ExcelSource records``: iterate the source's records (the driver-side cost);
* ``Pipeline -> JSONL``: the whole pipeline, permissive model, inline executor;
* ``pandas.read_excel``: openpyxl engine (pandas' default for .xlsx);
* ``pandas.read_excel calamine``: when python-calamine is installed (the speed ceiling).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydantic import BaseModel, ConfigDict

import flowschema_core as fs

COLUMNS = ["id", "customer", "email", "amount", "qty", "price", "discount", "country", "status", "created", "shipped", "note"]


class AnyRow(BaseModel):
    """Permissive: every column optional, any type."""

    model_config = ConfigDict(extra="allow")
    id: int | None = None


def make_sheet(path: str, rows: int) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("orders")
    ws.append(COLUMNS)
    r = random.Random(1)
    base = dt.datetime(2024, 1, 1)
    for i in range(rows):
        ws.append([
            i, f"cust{r.randrange(5000)}", f"u{i}@ex.com", round(r.random() * 1000, 2), r.randrange(1, 50),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds; each reader's best time is kept")
    parser.add_argument("--path", default=None, help="where the generated sheet is cached")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the full pipeline run")
    args = parser.parse_args()
    path = args.path or os.path.join(tempfile.gettempdir(), f"flowschema-bench-{args.rows}.xlsx")
    if not os.path.exists(path):
        started = time.perf_counter()
        make_sheet(path, args.rows)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s")
    print(f"{args.rows:,} rows x {len(COLUMNS)} columns, {os.path.getsize(path) / 1e6:.1f} MB: {path}", flush=True)

    tmp = tempfile.mkdtemp()

    def pipeline() -> int:
        report = fs.Pipeline(fs.ExcelSource(path), AnyRow, fs.JSONLSink(os.path.join(tmp, "out.jsonl")),
                             fs.JSONLSink(os.path.join(tmp, "dlq.jsonl")), executor="inline").run()
        return report.rows_valid

    readers: dict[str, Any] = {"ExcelSource records": lambda: sum(1 for _ in fs.ExcelSource(path).records())}
    if not args.no_pipeline:
        readers["Pipeline -> JSONL (inline)"] = pipeline
    try:
        import pandas as pd

        readers["pandas.read_excel (openpyxl)"] = lambda: len(pd.read_excel(path, engine="openpyxl"))
        try:
            import python_calamine  # noqa: F401

            readers["pandas.read_excel (calamine)"] = lambda: len(pd.read_excel(path, engine="calamine"))
        except ImportError:
            pass
    except ImportError:
        print("pandas not installed (pip install pandas): FlowSchema figures only")

    # Round-robin, best of --repeat: on a shared machine the load changes during a run,
    # and interleaving keeps one reader from getting all the quiet minutes.
    best: dict[str, float] = {}
    for round_ in range(1, args.repeat + 1):
        for label, fn in readers.items():
            started = time.perf_counter()
            n = fn()
            elapsed = time.perf_counter() - started
            if n != args.rows:
                raise SystemExit(f"{label}: read {n} rows, expected {args.rows}")
            best[label] = min(best.get(label, elapsed), elapsed)
            print(f"  round {round_}: {label:<30} {elapsed:8.2f} s", flush=True)

    print(f"\n{'reader':<32} {'best s':>8} {'rows/s':>12} {'vs pandas':>10}")
    baseline = best.get("pandas.read_excel (openpyxl)")
    for label, elapsed in best.items():
        ratio = f"{baseline / elapsed:9.2f}x" if baseline else ""
        print(f"{label:<32} {elapsed:8.2f} {args.rows / elapsed:12,.0f} {ratio:>10}")
    if baseline:
        print("(vs pandas: pandas.read_excel (openpyxl) time / this reader's time; higher is faster)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
