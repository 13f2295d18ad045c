"""Models for the null-policy tests (importable by worker processes and Ray actors)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator


class Address(BaseModel):
    city: str


class Policy(BaseModel):
    """One field per row of the null-policy table."""

    model_config = ConfigDict(extra="allow")

    optional_int: int | None  # admits None → None
    with_default: int = 7  # has a default → not given, the default applies
    text: str  # accepts "" → ""
    literal_empty: Literal["", "x"]  # accepts "" → ""
    amount: Decimal  # anything else → not given → "missing"
    day: dt.date  # idem
    nested: Address | None = None  # a nested model that admits None → None


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    order_id: int = Field(alias="Order ID")
    note: str = Field(validation_alias=AliasChoices("Note", "Remark"))
    qty: int | None = Field(default=None, alias="Qty")


class BeforeValidator(BaseModel):
    """A model that rewrites its input first: it must see the record after the policy."""

    name: str
    score: int = 0

    @model_validator(mode="before")
    @classmethod
    def upper(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            data = {**data, "name": data["name"].upper()}
        return data


class Order(BaseModel):
    """The new user's model from the issue: notes is empty in about one row in five."""

    order_id: int
    email: str
    amount: Decimal
    notes: str
