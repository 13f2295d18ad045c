"""The ``Order`` model used by the demo, the benchmarks and the Ray job example."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

Currency = Literal["USD", "EUR", "GBP", "JPY", "CHF"]
Status = Literal["new", "paid", "shipped", "delivered", "cancelled", "returned"]


class Order(BaseModel):
    """One line of an e-commerce orders export (12 fields)."""

    order_id: int = Field(gt=0)
    customer_id: int = Field(gt=0)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", max_length=254)
    order_date: dt.date
    ship_date: dt.date | None = None
    sku: str = Field(pattern=r"^[A-Z]{3}-\d{4}$")
    quantity: int = Field(ge=1, le=10_000)
    unit_price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    currency: Currency
    country: str = Field(min_length=2, max_length=2)
    status: Status
    notes: str | None = Field(default=None, max_length=2000)
