"""Models and a messy file for the inspect / replay tests (importable by worker processes).

``write_orders_csv`` writes an orders file with known mistakes; ``Order`` refuses them,
``FixedOrder`` is the user's fix (a decimal comma is accepted), and ``oracle_valid_ids``
says, with plain Python (csv + pydantic, no FlowSchema), which records a model accepts.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from pydantic import BaseModel, Field, ValidationError, field_validator

import flowschema_core as fs

FIELDS = ["id", "name", "price", "qty", "note"]


class Order(BaseModel):
    id: int = Field(gt=0)
    name: str
    price: Decimal = Field(ge=0)
    qty: int | None = None
    note: str | None = None


class FixedOrder(Order):
    """The fix: prices written with a decimal comma (``"12,5"``) are read."""

    @field_validator("price", mode="before")
    @classmethod
    def _decimal_comma(cls, value: object) -> object:
        return value.replace(",", ".") if isinstance(value, str) else value


class LenientOrder(BaseModel):
    """Accepts every well-formed row (no types beyond str), for a replay of a replay."""

    id: str
    name: str
    price: str
    qty: str | None = None
    note: str | None = None


class Explode(fs.Hook):
    """A hook that raises for records named ``boom*`` (stage ``transform``)."""

    def before_validate(self, record):
        if str(record.get("name", "")).startswith("boom"):
            raise RuntimeError("boom")
        return record


def write_orders_csv(path, rows: int) -> None:
    """Record number ``i`` holds ``id == i``. Mistakes, by ``i``: ``% 10 == 3`` a decimal
    comma in price (and an empty qty when ``% 20 == 3``); ``% 10 == 5`` qty ``x0``..``x3``;
    ``% 50 == 7`` a negative price; ``% 30 == 13`` qty ``bad``; ``% 100 == 19`` a Latin-1
    byte in the name (not UTF-8: a parse error); ``% 100 == 9`` a ragged row."""
    with open(path, "wb") as f:
        f.write(b"id,name,price,qty,note\n")
        for i in range(1, rows + 1):
            if i % 100 == 9:
                f.write(f"{i},ragged\n".encode())
                continue
            name, price, qty, note = f"item {i}".encode(), f"{i}.10".encode(), str(i % 7).encode(), b"" if i % 2 else b"n"
            if i % 10 == 3:
                price = f'"{i},5"'.encode()
                qty = b"" if i % 20 == 3 else qty
            if i % 10 == 5:
                qty = f"x{i % 4}".encode()
            if i % 50 == 7:
                price = f"-{i}".encode()
            if i % 30 == 13:
                qty = b"bad"
            if i % 100 == 19:
                name = b"caf\xe9 " + str(i).encode()
            f.write(b",".join([str(i).encode(), name, price, qty, note]) + b"\n")


def oracle_valid_ids(path, model: type[BaseModel], encoding: str) -> set[int]:
    """The ids of the records ``model`` accepts, read with plain csv: a row that is not
    valid ``encoding`` or not 5 fields is refused; an empty cell is None (the null policy
    for these Optional fields; price has its own validator in FixedOrder, and is never empty)."""
    valid = set()
    with open(path, "rb") as f:
        next(f)
        for raw in f:
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                continue
            row = next(csv.reader(io.StringIO(text)))
            if len(row) != len(FIELDS):
                continue
            record = {k: (None if v == "" and k in ("qty", "note") else v) for k, v in zip(FIELDS, row)}
            try:
                valid.add(int(model.model_validate(record).id))  # type: ignore[attr-defined]
            except ValidationError:
                pass
    return valid
