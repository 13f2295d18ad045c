# ruff: noqa: I001  (kept exactly as the README quickstart, whose imports are not isort-ordered)
# quickstart.py
from decimal import Decimal
from pydantic import BaseModel, Field
import flowschema_core as fs


class Order(BaseModel):
    order_id: int
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    amount: Decimal = Field(ge=0)


with open("orders.csv", "w") as f:
    f.write("order_id,email,amount\n1,ann@example.com,12.50\n2,not-an-email,3\n3,bob@example.com,-1\n4,cy@example.com\n")

report = fs.Pipeline(
    source=fs.CSVSource("orders.csv"),
    model=Order,
    sink=fs.JSONLSink("clean/orders.jsonl"),
    errors=fs.JSONLSink("clean/orders.errors.jsonl"),   # the DLQ
    max_bytes_in_flight="64MB",
).run()
print(report.summary())
assert report.rows_read == report.rows_valid + report.rows_invalid + report.rows_filtered
