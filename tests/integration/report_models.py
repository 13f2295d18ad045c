"""A model and a file for the HTML report tests: a column whose name is markup, so that
the report's error groups carry it (importable by worker processes)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field

#: A column name an attacker could put in a file's header.
HOSTILE = "<script>alert(1)</script>"


class HostileItem(BaseModel):
    id: int = Field(gt=0)
    name: str
    price: Decimal = Field(ge=0, alias=HOSTILE)


def write_hostile_csv(path: Path, rows: int, *, bad_every: int = 10) -> None:
    """``rows`` records; every ``bad_every``-th has a price that is not a number, and the
    one after it a negative price (two error groups on the hostile column)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(f"id,name,{HOSTILE}\n")
        for i in range(1, rows + 1):
            price = "abc" if i % bad_every == 0 else f"-{i}" if i % bad_every == 1 and i > 1 else f"{i}.50"
            f.write(f"{i},item {i} with a longer name to make chunks,{price}\n")
