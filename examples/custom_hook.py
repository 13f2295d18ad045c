"""Custom hooks: clean values before validation, drop records after it.

::

    python examples/custom_hook.py          # from the repository root

A payments export from a European system: amounts with a decimal comma (``"12,5"``),
stray spaces, lower-case currency codes, and test payments mixed in with real ones.
Two hooks, run in the worker processes around validation:

* ``NormaliseNumbers.before_validate`` trims every text cell, upper-cases the currency
  and turns ``"12,5"`` into ``"12.5"``. An amount with both separators (``"1,299.00"``)
  is ambiguous (thousands or decimals?): the hook raises, and that record goes to the
  DLQ at the ``transform`` stage with the hook's name, instead of being guessed.
* ``DropTestPayments.after_validate`` sees the validated model and returns ``None`` for
  test payments: they are *filtered* — counted, neither written nor in the DLQ.

The input is ``build/examples/custom_hook/payments.csv``; the run keeps
``read == valid + invalid + filtered``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field
from show import print_dlq

import flowschema_core as fs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "examples", "custom_hook")
CSV_PATH = os.path.join(OUT_DIR, "payments.csv")
CLEAN = os.path.join(OUT_DIR, "payments.clean.jsonl")
DLQ = os.path.join(OUT_DIR, "payments.errors.jsonl")

ROWS = [
    ("id", "customer", "amount", "currency", "status"),
    ("1", "  Ada Lovelace ", "12,5", "eur", "paid"),      # decimal comma, spaces, lower case → fixed, valid
    ("2", "Bob", "7.00 ", "USD", "paid"),                # trailing space → valid
    ("3", "Cy", "1,299.00", "USD", "paid"),              # ambiguous separators → DLQ, stage transform
    ("4", "QA bot", "3,0", "EUR", "test"),               # a test payment → filtered
    ("5", "Dee", "abc", "EUR", "paid"),                  # not a number → DLQ, stage validate
    ("6", "Eve", "-4,5", "EUR", "refund"),               # a refund, negative → valid
    ("7", "Fay", "99,99", "GBP", "paid"),                # valid
    ("8", "QA bot", "1", "usd", "test"),                 # a test payment → filtered
    ("9", "Gus", "5,5", "XXX", "paid"),                  # unknown currency → DLQ, stage validate
    ("10", "Hal", " 20 ", "usd", "paid"),                # valid
]


class Payment(BaseModel):
    id: int
    customer: str = Field(min_length=1)
    amount: Decimal = Field(max_digits=12, decimal_places=2)
    currency: Literal["EUR", "USD", "GBP"]
    status: Literal["paid", "refund", "test"]


class NormaliseNumbers(fs.Hook):
    """Trim text, upper-case currency codes, read a decimal comma as a decimal point."""

    def setup(self) -> None:  # once per worker: compile what every record needs
        self.decimal_comma = re.compile(r"^-?\d+,\d+$")

    def before_validate(self, record: dict[str, Any]) -> dict[str, Any] | None:
        record = {k: v.strip() if isinstance(v, str) else v for k, v in record.items()}
        if isinstance(record.get("currency"), str):
            record["currency"] = record["currency"].upper()
        amount = record.get("amount")
        if isinstance(amount, str):
            if "," in amount and "." in amount:
                # Raising sends the record to the DLQ (stage "transform"): better than a guess.
                raise ValueError(f"amount {amount!r} has both ',' and '.': thousands separator or decimal comma?")
            if self.decimal_comma.match(amount):
                record["amount"] = amount.replace(",", ".")
        return record


class DropTestPayments(fs.Hook):
    """Test payments are not business data: drop them on purpose (counted as filtered)."""

    def after_validate(self, model: BaseModel) -> BaseModel | None:
        return None if getattr(model, "status", None) == "test" else model


def main() -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    os.makedirs(OUT_DIR)
    with open(CSV_PATH, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(ROWS)
    print(f"wrote {len(ROWS) - 1} payments to {os.path.relpath(CSV_PATH)}")

    report = fs.Pipeline(
        source=fs.CSVSource(CSV_PATH),
        model=Payment,
        sink=fs.JSONLSink(CLEAN),
        errors=fs.JSONLSink(DLQ),
        hooks=[NormaliseNumbers(), DropTestPayments()],
        max_bytes_in_flight="16MB",
    ).run()

    print(f"read {report.rows_read} payments: {report.rows_valid} valid, {report.rows_invalid} invalid, "
          f"{report.rows_filtered} filtered (test payments dropped by DropTestPayments)")
    print(f"invalid by stage: {json.dumps(report.invalid_by_stage, sort_keys=True)}")
    print(f"clean rows: {os.path.relpath(CLEAN)}")
    with open(CLEAN, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            print(f"  id={row['id']:<3} {row['customer']!r:<16} amount={row['amount']:>6} {row['currency']}")
    print_dlq(DLQ)
    assert report.rows_read == report.rows_valid + report.rows_invalid + report.rows_filtered  # nothing lost
    return 0


if __name__ == "__main__":
    sys.exit(main())
