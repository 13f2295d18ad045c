"""The loop after a run on a messy file: inspect the DLQ, fix the model, replay the DLQ.

::

    python examples/messy_csv_loop.py          # from the repository root

An orders export of 40 records, with the mess a real one has (see ``MESS`` below):
amounts with a decimal comma (``"12,50"``), dates written ``DD.MM.YYYY`` as well as ISO,
a ragged row, an unknown currency and a negative amount.

1. A first, strict model: ``Decimal`` amounts, ISO dates. 11 records go to the DLQ.
2. ``fs.inspect_dlq`` (what ``flowschema inspect`` prints) groups them by stage, error
   type and field, with the record numbers: most of them are the model's fault (it does
   not read a decimal comma nor the second date format), three are the data's.
3. The fixed model reads both; nothing else changes (a negative amount is still refused).
4. The DLQ is replayed with it (``fs.DLQSource``, what ``flowschema replay`` runs): the
   recovered records go to their own sink, what still fails to a new DLQ, each keeping
   its original record number. The counts balance at every step.

Everything is written under ``build/examples/messy_csv_loop/``, cleared first.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import sys
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

import flowschema_core as fs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "examples", "messy_csv_loop")
CSV_PATH = os.path.join(OUT_DIR, "orders.csv")
CLEAN = os.path.join(OUT_DIR, "orders.clean.jsonl")
DLQ = os.path.join(OUT_DIR, "orders.errors.jsonl")
RECOVERED = os.path.join(OUT_DIR, "orders.recovered.jsonl")
STILL_BAD = os.path.join(OUT_DIR, "orders.still-bad.jsonl")

RECORDS = 40
HEADER = ["order_id", "email", "ordered_on", "amount", "currency"]
#: Record number -> what is wrong with it. The others are clean.
MESS = {
    4: "decimal comma", 11: "decimal comma", 23: "decimal comma", 30: "decimal comma",
    7: "day-first date", 15: "day-first date", 28: "day-first date",
    37: "decimal comma and day-first date",
    19: "ragged row",          # the data's fault: two cells missing
    26: "unknown currency",    # the data's fault: BTC
    34: "negative amount",     # the data's fault
}


def write_messy_csv(path: str) -> None:
    """Write the export: RECORDS rows after the header, messy where MESS says."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for n in range(1, RECORDS + 1):
            day = dt.date(2024, 3, 1) + dt.timedelta(days=n % 28)
            ordered_on, amount, currency = day.isoformat(), f"{n * 1.25:.2f}", ("EUR", "USD", "GBP")[n % 3]
            mess = MESS.get(n, "")
            if "decimal comma" in mess:
                amount = amount.replace(".", ",")  # csv.writer quotes it: "12,50"
            if "day-first date" in mess:
                ordered_on = day.strftime("%d.%m.%Y")
            if mess == "unknown currency":
                currency = "BTC"
            if mess == "negative amount":
                amount = "-" + amount
            if mess == "ragged row":
                f.write(f"{n},customer{n}@example.com,{ordered_on}\r\n")
                continue
            writer.writerow([n, f"customer{n}@example.com", ordered_on, amount, currency])


class Order(BaseModel):
    """The first model: strict about the formats it reads."""

    order_id: int = Field(gt=0)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    ordered_on: dt.date
    amount: Decimal = Field(ge=0, decimal_places=2)
    currency: Literal["EUR", "USD", "GBP"]


def decimal_comma(value: Any) -> Any:
    """``"12,50"`` -> ``"12.50"``; a value with both separators is left to fail (ambiguous)."""
    if isinstance(value, str) and value.count(",") == 1 and "." not in value:
        return value.replace(",", ".")
    return value


def day_first(value: Any) -> Any:
    """``"05.03.2024"`` (DD.MM.YYYY) -> ``2024-03-05``; anything else is left to pydantic."""
    if isinstance(value, str) and value.count(".") == 2:
        try:
            return dt.datetime.strptime(value, "%d.%m.%Y").date()
        except ValueError:
            return value
    return value


class FixedOrder(Order):
    """The model fixed for what the DLQ showed to be its own fault: the two formats."""

    ordered_on: Annotated[dt.date, BeforeValidator(day_first)]
    amount: Annotated[Decimal, BeforeValidator(decimal_comma), Field(ge=0, decimal_places=2)]


def counts(report: fs.RunReport) -> str:
    stages = ", ".join(f"{stage} {n}" for stage, n in sorted(report.invalid_by_stage.items()) if n)
    return (f"read {report.rows_read} = valid {report.rows_valid} + invalid {report.rows_invalid}"
            f" ({stages or 'none'}) + filtered {report.rows_filtered}")


def first_error(record: dict[str, Any]) -> str:
    error = (record.get("errors") or [{}])[0]
    field = ".".join(str(p) for p in error.get("loc") or []) or "-"
    return f"stage={record['stage']} field={field} type={error.get('type')}: {error.get('msg')}"


def main() -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    os.makedirs(OUT_DIR)
    write_messy_csv(CSV_PATH)

    first = fs.Pipeline(fs.CSVSource(CSV_PATH), Order, fs.JSONLSink(CLEAN), errors=fs.JSONLSink(DLQ), executor="inline").run()
    print(f"1. first run, strict model: {counts(first)}")

    summary = fs.inspect_dlq(DLQ)  # the same summary `flowschema inspect` prints
    print(f"2. inspect the DLQ ({os.path.relpath(DLQ, ROOT)}): {summary.records} records, "
          f"{summary.errors} errors in {len(summary.groups)} groups")
    for group in summary.groups:
        shown = ", ".join(f"{e.record}: {e.input!r}" for e in group.examples)
        print(f"   {group.stage} {group.type} {group.field or '(record)'}: {group.records} records "
              f"(first {group.first_record}, last {group.last_record}) e.g. {shown}")

    print("3. the model's fault: amount with a decimal comma, ordered_on as DD.MM.YYYY -> FixedOrder reads both")
    replay = fs.Pipeline(fs.DLQSource(DLQ), FixedOrder, fs.JSONLSink(RECOVERED), errors=fs.JSONLSink(STILL_BAD), executor="inline").run()
    print(f"4. replay the DLQ with FixedOrder: {counts(replay)}")
    with open(RECOVERED, encoding="utf-8") as f:
        recovered = [json.loads(line)["order_id"] for line in f]
    print(f"   recovered {replay.rows_valid}: order_id {', '.join(map(str, recovered))}")
    with open(STILL_BAD, encoding="utf-8") as f:
        still_bad = [json.loads(line) for line in f]
    print(f"   still failing {replay.rows_invalid} (the data's fault):")
    for record in still_bad:  # the original record and line numbers in orders.csv, not the DLQ's
        print(f"   record {record['record']} (line {record['line']}): {first_error(record)}")

    # Every record of the input ends exactly once: valid in the first run, recovered by
    # the replay, or still in the (new) DLQ.
    assert first.rows_read == first.rows_valid + first.rows_invalid + first.rows_filtered == RECORDS
    assert replay.rows_read == first.rows_invalid == replay.rows_valid + replay.rows_invalid + replay.rows_filtered
    total_valid = first.rows_valid + replay.rows_valid
    print(f"5. in all: {first.rows_read} records = {total_valid} valid ({first.rows_valid} + {replay.rows_valid} recovered)"
          f" + {replay.rows_invalid} in {os.path.relpath(STILL_BAD, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
