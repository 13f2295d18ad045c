"""A real HTTP server on loopback for HTTPSource tests: paginated JSON plus faults on demand.

Serves a dataset of ``N`` records ``{"id": i, "name": "item-i"}`` in several pagination
styles, and injects faults planned by the test before the request arrives::

    server.fail("/page", times=2, status=500)               # the next 2 requests get a 500
    server.fail("/page", times=1, status=429, retry_after="1")
    server.fail("/page", times=1, slow=2.0)                  # answer after 2 s (client times out)
    server.fail("/page", times=1, truncate=True)             # Content-Length longer than the body
    server.fail("/page", times=1, body=b"{not json")         # a 200 whose body is not JSON
    server.fail("/page", times=1, when={"page": "2"})        # only when the query matches

Routes (``size`` records per page, default 10):

* ``/page?page=N&size=S``      → ``{"data": [...]}`` (empty past the end)
* ``/offset?offset=O&limit=L`` → ``{"data": [...]}``
* ``/cursor?cursor=C``         → ``{"data": [...], "next_cursor": "c<next>" | null}``
* ``/next?start=K``            → ``{"data": [...], "links": {"next": "/next?start=K+S"}}``
* ``/link?start=K``            → ``[...]`` with a ``Link: <...>; rel="next"`` header
* ``/status/<code>``           → that status
* ``/raw``                     → the bytes set in ``server.raw``
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    path: str
    times: int
    status: int | None = None
    retry_after: str | None = None
    slow: float = 0.0
    truncate: bool = False
    body: bytes | None = None
    when: dict[str, str] = field(default_factory=dict)


class FaultyServer:
    def __init__(self, n_records: int = 95, page_size: int = 10) -> None:
        self.n_records, self.page_size = n_records, page_size
        self.faults: list[Fault] = []
        self.requests: list[str] = []
        self.raw: bytes = b"[]"
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultyServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def reset(self, n_records: int = 95, page_size: int = 10) -> None:
        with self.lock:
            self.n_records, self.page_size = n_records, page_size
            self.faults.clear()
            self.requests.clear()
            self.raw = b"[]"

    def fail(self, path: str, times: int = 1, **kwargs: Any) -> None:
        with self.lock:
            self.faults.append(Fault(path, times, **kwargs))

    def take_fault(self, path: str, query: dict[str, str]) -> Fault | None:
        with self.lock:
            self.requests.append(path + ("?" + "&".join(f"{k}={v}" for k, v in sorted(query.items())) if query else ""))
            for fault in self.faults:
                if fault.times > 0 and fault.path == path and all(query.get(k) == v for k, v in fault.when.items()):
                    fault.times -= 1
                    return fault
        return None

    def rows(self, start: int, count: int) -> list[dict[str, Any]]:
        return [{"id": i, "name": f"item-{i}"} for i in range(start, min(start + count, self.n_records))]


def _handler(server: FaultyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            fault = server.take_fault(parts.path, query)
            if fault is not None:
                if fault.slow:
                    time.sleep(fault.slow)
                if fault.status is not None:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    return self.send(fault.status, b'{"error": "injected"}', headers)
                if fault.truncate:
                    body = json.dumps({"data": server.rows(0, 5)}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                if fault.body is not None:
                    return self.send(200, fault.body)
            return self.route(parts.path, query)

        def route(self, path: str, q: dict[str, str]) -> None:
            size = int(q.get("size", q.get("limit", server.page_size)))
            if path == "/page":
                page = int(q.get("page", 1))
                return self.json({"data": server.rows((page - 1) * size, size)})
            if path == "/offset":
                return self.json({"data": server.rows(int(q.get("offset", 0)), size)})
            if path == "/cursor":
                start = int(q.get("cursor", "c0")[1:])
                nxt = start + size
                return self.json({"data": server.rows(start, size), "next_cursor": f"c{nxt}" if nxt < server.n_records else None})
            if path in ("/next", "/link"):
                start = int(q.get("start", 0))
                nxt = start + size
                link = f"/{path[1:]}?start={nxt}" if nxt < server.n_records else None
                if path == "/next":
                    return self.json({"data": server.rows(start, size), "links": {"next": link}})
                headers = {"Link": f'<{link}>; rel="next"'} if link else {}
                return self.json(server.rows(start, size), headers)
            if path.startswith("/status/"):
                return self.send(int(path.rsplit("/", 1)[1]), b'{"error": "as asked"}')
            if path == "/raw":
                return self.send(200, server.raw)
            if path in ("/loop", "/loop2"):  # two pages redirecting to each other forever
                return self.send(302, b"", {"Location": "/loop2" if path == "/loop" else "/loop"})
            if path == "/badgzip":  # says gzip, is not
                return self.send(200, b'{"data": []}', {"Content-Encoding": "gzip"})
            return self.send(404, b'{"error": "no such route"}')

        def json(self, obj: Any, headers: dict[str, str] | None = None) -> None:
            self.send(200, json.dumps(obj).encode(), headers)

        def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve() -> Iterator[FaultyServer]:
    """Start a server, yield it, stop it (for a pytest fixture)."""
    server = FaultyServer().start()
    try:
        yield server
    finally:
        server.stop()
