"""A hand-made Excel sheet: a title block, an error cell, a merged cell, a totals row.

::

    python examples/excel_error_cells.py          # from the repository root

Spreadsheets made by people are not tables: the header is not on row 1, a formula shows
``#DIV/0!``, a region is typed once in a merged cell that spans two rows, a date is typed
as text, a totals row sits under the data. This example builds such a workbook with
openpyxl (``build/examples/excel_error_cells/sales.xlsx``) and reads it with
:class:`ExcelSource`:

* ``header_row=4`` skips the title block (``skip_rows=3`` says the same);
* the ``#DIV/0!`` row goes to the DLQ at the ``parse`` stage, naming the cell (``E7``);
* the row under the merged cell has no region (only the top-left cell of a merged range
  holds the value); ``min_length=1`` makes that a DLQ record (``missing``) instead of
  a sale with region ``""``;
* the text date fails validation; real date cells arrive as ``datetime.date``;
* a ``before_validate`` hook drops the totals row on purpose: it is counted as filtered.

Needs ``pip install "flowschema[excel]"`` (openpyxl).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from show import print_dlq

import flowschema_core as fs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "examples", "excel_error_cells")
WORKBOOK = os.path.join(OUT_DIR, "sales.xlsx")
CLEAN = os.path.join(OUT_DIR, "sales.clean.jsonl")
DLQ = os.path.join(OUT_DIR, "sales.errors.jsonl")


class Sale(BaseModel):
    """One row of the sales sheet."""

    region: str = Field(min_length=1)  # an empty cell would otherwise be read as "" and pass
    rep: str = Field(min_length=1)
    units: int = Field(ge=0)
    revenue: Decimal = Field(ge=0)
    price_per_unit: Decimal = Field(gt=0)
    sold_on: dt.date


def make_workbook(path: str) -> None:
    """The sheet as a person would make it; the comments say what each row tests."""
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Font
    except ImportError:
        sys.exit('this example needs openpyxl: pip install "flowschema[excel]"')
    wb = Workbook()
    ws = wb.active
    ws.title = "March"
    ws.append(["Regional sales, March 2024"])                                   # row 1: title ...
    ws.merge_cells("A1:F1")                                                      # ... merged across the table
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(["Prepared by the finance team. Figures in EUR."])                # row 2
    ws.append([])                                                                # row 3: blank
    ws.append(["region", "rep", "units", "revenue", "price_per_unit", "sold_on"])  # row 4: the header
    ws.append(["North", "Ada", 10, 125.0, 12.5, dt.date(2024, 3, 1)])             # row 5: valid
    ws.append([None, "Ben", 4, 50.0, 12.5, dt.date(2024, 3, 2)])                  # row 6: region merged from row 5
    ws.merge_cells("A5:A6")
    ws.append(["South", "Cy", 0, 0, "#DIV/0!", dt.date(2024, 3, 4)])             # row 7: an Excel error cell (E7)
    ws.append(["South", "Dee", 7, 70.0, 10, dt.date(2024, 3, 5)])                 # row 8: valid
    ws.append([])                                                                # row 9: empty, skipped
    ws.append(["West", "Eve", 3, 36.0, 12, "05/03/2024"])                         # row 10: a date typed as text
    ws.append(["West", "Fay", 12, 150.0, 12.5, dt.date(2024, 3, 7)])              # row 11: valid
    ws.append(["East", "Gus", 5, 60.0, 12, dt.date(2024, 3, 8)])                  # row 12: valid
    ws.append(["Total", None, 41, 491.0, None, None])                            # row 13: totals, filtered
    wb.save(path)


def drop_totals(record: dict[str, Any]) -> dict[str, Any] | None:
    """A ``before_validate`` hook: the totals row is not a sale (None = filtered on purpose)."""
    return None if record.get("region") == "Total" else record


def main() -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)  # every run starts from the same workbook
    os.makedirs(OUT_DIR)
    make_workbook(WORKBOOK)
    print(f"wrote a hand-made workbook: {os.path.relpath(WORKBOOK)} (title block, #DIV/0!, merged cell, totals row)")

    report = fs.Pipeline(
        source=fs.ExcelSource(WORKBOOK, sheet="March", header_row=4),
        model=Sale,
        sink=fs.JSONLSink(CLEAN),
        errors=fs.JSONLSink(DLQ),
        hooks=[fs.before_validate(drop_totals)],
        max_bytes_in_flight="16MB",
    ).run()

    print(f"read {report.rows_read} rows: {report.rows_valid} valid, {report.rows_invalid} invalid, {report.rows_filtered} filtered")
    print(f"invalid by stage: {json.dumps(report.invalid_by_stage, sort_keys=True)}")
    print(f"clean rows: {os.path.relpath(CLEAN)}")
    with open(CLEAN, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            print(f"  {row['region']:<6} {row['rep']:<4} units={row['units']:<3} sold_on={row['sold_on']}")
    print_dlq(DLQ, where=lambda rec: f"sheet row {rec['line']}")
    assert report.rows_read == report.rows_valid + report.rows_invalid + report.rows_filtered  # nothing lost
    return 0


if __name__ == "__main__":
    sys.exit(main())
