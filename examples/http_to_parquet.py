"""A paginated JSON API → a typed Parquet file, bad records to the DLQ.

::

    python examples/http_to_parquet.py          # from the repository root: a local API
    python examples/http_to_parquet.py URL      # your API, if it pages the same way

Without a URL the example starts a small API of its own on loopback (the standard
library's ``http.server``, in a thread): ``GET /api/orders?page=N&per_page=10`` answers
``{"data": [...]}`` with 27 orders over 3 pages, then an empty page. Like real APIs it
has bad records (an e-mail without ``@``, an amount ``"12,5"``, an order without its
timestamp, a withdrawn order that is a string instead of an object) and a bad moment
(page 2 answers ``503`` once). :class:`HTTPSource` pages through it with
``PageNumber`` (stopping on the empty page), retries the 503 with backoff, and the
valid orders land in ``build/examples/http_to_parquet/orders.parquet``, typed from the
model (decimal, timestamp with time zone); the rest go to the DLQ with the reason.

Needs ``pip install "flowschema[http,parquet]"`` (httpx, pyarrow).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import AwareDatetime, BaseModel, Field
from show import print_dlq

import flowschema_core as fs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "examples", "http_to_parquet")
PARQUET = os.path.join(OUT_DIR, "orders.parquet")
DLQ = os.path.join(OUT_DIR, "orders.errors.jsonl")


class Order(BaseModel):
    """One order as the API returns it."""

    id: int = Field(gt=0)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
    amount: Decimal = Field(ge=0, max_digits=10, decimal_places=2)
    currency: Literal["EUR", "USD", "GBP"]
    placed_at: AwareDatetime


# -- the local API: what a real one looks like, warts included ---------------------------
def api_orders() -> list[Any]:
    """27 orders; 4 of them bad, each in its own way."""
    start = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
    orders: list[Any] = [
        {"id": i, "email": f"customer{i}@example.com", "amount": f"{10 + i}.{i % 100:02d}",
         "currency": ("EUR", "USD", "GBP")[i % 3], "placed_at": (start + dt.timedelta(hours=i)).isoformat()}
        for i in range(1, 28)
    ]
    orders[4]["email"] = "customer5.example.com"        # no @                       → validate
    orders[11]["amount"] = "12,5"                        # a decimal comma            → validate
    del orders[19]["placed_at"]                          # a field missing            → validate
    orders[17] = "order 18 was withdrawn"                # not an object at all       → parse
    return orders


class OrdersAPI(BaseHTTPRequestHandler):
    # http.server makes a handler per request: what lasts across requests is the class's.
    orders: ClassVar[list[Any]] = api_orders()
    fail_once: ClassVar[set[int]] = {2}  # pages that answer 503 Service Unavailable the first time
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_GET(self) -> None:  # the name http.server calls
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path != "/api/orders":
            self._send(404, {"error": "not found"})
            return
        page, per_page = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["10"])[0])
        with self.lock:
            if page in self.fail_once:
                self.fail_once.discard(page)
                self._send(503, {"error": "busy, try again"})
                return
        first = (page - 1) * per_page
        self._send(200, {"data": self.orders[first:first + per_page], "page": page})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the output is the example's own lines
        pass


def main(argv: list[str]) -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    os.makedirs(OUT_DIR)
    server: ThreadingHTTPServer | None = None
    if argv:
        url = argv[0]
        print(f"reading {url} (pages ?page=1,2,... &per_page=10, records under 'data')")
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), OrdersAPI)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/api/orders"
        print(f"started a local API at {url} (27 orders, 10 a page, 4 bad records, page 2 fails once with 503)")
    try:
        source = fs.HTTPSource(
            url,
            records_path="data",
            pagination=fs.PageNumber(param="page", size_param="per_page", size=10),  # stops on the empty page
            timeout=10.0, max_retries=3, backoff=0.1,
        )
        report = fs.Pipeline(
            source=source,
            model=Order,
            sink=fs.ParquetSink(PARQUET),
            errors=fs.JSONLSink(DLQ),
            max_bytes_in_flight="16MB",
        ).run()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()

    print(f"fetched {source.pages} pages ({source.retries} retried)")
    print(f"read {report.rows_read} records: {report.rows_valid} valid, {report.rows_invalid} invalid, {report.rows_filtered} filtered")
    print(f"invalid by stage: {json.dumps(report.invalid_by_stage, sort_keys=True)}")

    import pyarrow.parquet as pq

    table = pq.read_table(PARQUET)
    print(f"parquet: {os.path.relpath(PARQUET)}: {table.num_rows} rows")
    for column in table.schema:
        print(f"  {column.name}: {column.type}")
    print_dlq(DLQ)
    assert report.rows_read == report.rows_valid + report.rows_invalid + report.rows_filtered  # nothing lost
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
