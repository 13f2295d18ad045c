"""HTTPSource against a real threaded HTTP server on loopback that injects faults (tests/http_server.py)."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

import flowschema_core as fs
from flowschema_core.registry import source_for
from flowschema_core.sources.base import ParseFailure
from tests.http_server import FaultyServer, serve


class Item(BaseModel):
    id: int
    name: str


@pytest.fixture(scope="module")
def _server() -> Iterator[FaultyServer]:
    yield from serve()


@pytest.fixture
def server(_server: FaultyServer) -> FaultyServer:
    _server.reset()
    return _server


def fast(url: str, **kwargs: Any) -> fs.HTTPSource:
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("timeout", 2.0)
    return fs.HTTPSource(url, **kwargs)


def ids(source: fs.HTTPSource) -> list[Any]:
    out = []
    for _, record in source.records():
        out.append(record if isinstance(record, ParseFailure) else record["id"])
    return out


def read_jsonl(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


# -- pagination styles ------------------------------------------------------------------

@pytest.mark.parametrize(
    "route, kwargs",
    [
        ("/page", {"pagination": fs.PageNumber(size_param="size", size=10)}),
        ("/page", {"pagination": fs.PageNumber()}),
        ("/offset", {"pagination": fs.Offset(limit=10)}),
        ("/cursor", {"pagination": fs.Cursor()}),
        ("/next", {"pagination": fs.NextLink("links.next")}),
        ("/link", {"pagination": fs.NextLink(), "records_path": ""}),
    ],
)
def test_each_pagination_style_reads_every_record_once(server: FaultyServer, route: str, kwargs: dict[str, Any]) -> None:
    assert ids(fast(server.url + route, **kwargs)) == list(range(95))


def test_page_number_stops_on_the_empty_page(server: FaultyServer) -> None:
    server.reset(n_records=30)
    source = fast(server.url + "/page", pagination=fs.PageNumber())
    assert ids(source) == list(range(30))
    assert server.requests == ["/page?page=1", "/page?page=2", "/page?page=3", "/page?page=4"]


def test_a_server_capping_the_page_size_loses_nothing(server: FaultyServer) -> None:
    # Asked for 50 a page, the server sends 10: a short page is not the end.
    assert ids(fast(server.url + "/offset", pagination=fs.Offset(limit=50), params={"size": 10})) == list(range(95))
    assert ids(fast(server.url + "/page", pagination=fs.PageNumber(size_param="limit", size=50), params={"size": 10})) == list(range(95))


def test_no_pagination_is_one_request_and_max_pages_caps(server: FaultyServer) -> None:
    assert ids(fast(server.url + "/page")) == list(range(10))
    assert len(server.requests) == 1
    assert ids(fast(server.url + "/offset", pagination=fs.Offset(limit=10), max_pages=3)) == list(range(30))


def test_extra_params_and_headers_are_sent(server: FaultyServer) -> None:
    source = fast(server.url + "/page", params={"size": 50}, headers={"X-Token": "t"}, pagination=fs.PageNumber(start=2))
    assert ids(source) == list(range(50, 95))


# -- retries ----------------------------------------------------------------------------

def test_500s_are_retried_without_duplicates_or_gaps(server: FaultyServer) -> None:
    server.fail("/cursor", times=2, status=500, when={"cursor": "c30"})
    server.fail("/cursor", times=1, status=503)
    source = fast(server.url + "/cursor", pagination=fs.Cursor())
    assert ids(source) == list(range(95))
    assert source.retries == 3


def test_429_honours_retry_after_seconds_and_http_date(server: FaultyServer) -> None:
    waits: list[float] = []
    server.fail("/page", times=1, status=429, retry_after="1.5")
    assert ids(fast(server.url + "/page", sleep=waits.append)) == list(range(10))
    assert waits == [1.5]

    waits.clear()
    later = email.utils.formatdate(time.time() + 3, usegmt=True)
    server.fail("/page", times=1, status=429, retry_after=later)
    assert ids(fast(server.url + "/page", sleep=waits.append)) == list(range(10))
    assert len(waits) == 1 and 1.0 <= waits[0] <= 3.5


def test_backoff_doubles_and_is_capped(server: FaultyServer) -> None:
    waits: list[float] = []
    server.fail("/page", times=4, status=502)
    ids(fast(server.url + "/page", backoff=1.0, max_backoff=3.0, sleep=waits.append))
    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_slow_response_times_out_and_is_retried(server: FaultyServer) -> None:
    server.fail("/offset", times=1, slow=1.0, when={"offset": "20"})
    source = fast(server.url + "/offset", pagination=fs.Offset(limit=10), timeout=0.3)
    assert ids(source) == list(range(95))
    assert source.retries == 1


def test_truncated_body_is_retried(server: FaultyServer) -> None:
    server.fail("/next", times=1, truncate=True, when={"start": "40"})
    source = fast(server.url + "/next", pagination=fs.NextLink("links.next"))
    assert ids(source) == list(range(95))
    assert source.retries == 1


def test_invalid_json_once_is_retried(server: FaultyServer) -> None:
    server.fail("/page", times=1, body=b'{"data": [1, 2', when={"page": "3"})
    assert ids(fast(server.url + "/page", pagination=fs.PageNumber())) == list(range(95))


# -- permanent failures ------------------------------------------------------------------

def test_404_fails_at_once_naming_status_and_url(server: FaultyServer) -> None:
    with pytest.raises(fs.SourceError, match=r"HTTP 404 .*") as info:
        ids(fast(server.url + "/status/404"))
    assert server.url + "/status/404" in str(info.value)
    assert len(server.requests) == 1


def test_permanent_5xx_gives_up_after_max_retries(server: FaultyServer) -> None:
    with pytest.raises(fs.SourceError, match=r"HTTP 503 .*gave up after 2 retries"):
        ids(fast(server.url + "/status/503", max_retries=2))
    assert len(server.requests) == 3


def test_unreachable_server_is_a_source_error() -> None:
    dead = FaultyServer().start()
    url = dead.url
    dead.stop()
    with pytest.raises(fs.SourceError, match="connection error"):
        ids(fast(url + "/page", max_retries=1))


def test_invalid_json_after_retries_raises(server: FaultyServer) -> None:
    server.fail("/page", times=10, body=b"<html>oops</html>", when={"page": "2"})
    with pytest.raises(fs.SourceError, match=r"page=2.*not valid JSON"):
        ids(fast(server.url + "/page", pagination=fs.PageNumber(), max_retries=2))


def test_missing_records_path_is_a_bad_page(server: FaultyServer) -> None:
    server.raw = b'{"items": []}'
    with pytest.raises(fs.SourceError, match="expected a list of records at 'data', found nothing"):
        ids(fast(server.url + "/raw", max_retries=0))


# -- DLQ ------------------------------------------------------------------------------------

def test_records_that_are_not_objects_go_to_the_dlq(server: FaultyServer, tmp_path: Any) -> None:
    server.raw = b'[{"id": 1, "name": "a"}, 5, "x", {"id": "bad", "name": "b"}]'
    report = fs.Pipeline(fast(server.url + "/raw", records_path=""), Item, fs.JSONLSink(tmp_path / "out.jsonl"),
                         fs.JSONLSink(tmp_path / "dlq.jsonl"), executor="inline").run()
    assert (report.rows_read, report.rows_valid, report.rows_invalid) == (4, 1, 3)
    dlq = read_jsonl(tmp_path / "dlq.jsonl")
    assert [(d["record"], d["stage"]) for d in dlq] == [(2, "parse"), (3, "parse"), (4, "validate")]
    assert "record 2 is a number, not an object" in dlq[0]["errors"][0]["msg"]
    assert dlq[1]["raw_text"] == '"x"'


def test_dlq_mode_keeps_going_after_a_bad_page(server: FaultyServer, tmp_path: Any) -> None:
    server.fail("/page", times=99, body=b'{"data": [truncated', when={"page": "2"})
    source = fast(server.url + "/page", pagination=fs.PageNumber(), on_bad_page="dlq", max_retries=1)
    report = fs.Pipeline(source, Item, fs.JSONLSink(tmp_path / "out.jsonl"), fs.JSONLSink(tmp_path / "dlq.jsonl"),
                         executor="inline").run()
    assert (report.rows_read, report.rows_valid, report.rows_invalid) == (86, 85, 1)
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == list(range(10)) + list(range(20, 95))
    (bad,) = read_jsonl(tmp_path / "dlq.jsonl")
    assert bad["stage"] == "parse" and bad["raw_text"] == '{"data": [truncated'
    assert "page 2" in bad["errors"][0]["msg"] and "not valid JSON" in bad["errors"][0]["msg"]


def test_dlq_mode_stops_a_cursor_after_a_bad_page(server: FaultyServer) -> None:
    server.fail("/cursor", times=99, body=b"nope", when={"cursor": "c20"})
    got = ids(fast(server.url + "/cursor", pagination=fs.Cursor(), on_bad_page="dlq", max_retries=0))
    assert got[:20] == list(range(20)) and len(got) == 21 and isinstance(got[20], ParseFailure)


def test_dlq_raw_text_is_truncated(server: FaultyServer) -> None:
    server.raw = b"x" * 200_000
    (failure,) = ids(fast(server.url + "/raw", on_bad_page="dlq", max_retries=0))
    assert isinstance(failure, ParseFailure) and len(failure.raw_text or "") == 64 * 1024


# -- wiring ---------------------------------------------------------------------------------

def test_registry_and_process_executor(server: FaultyServer, tmp_path: Any) -> None:
    source = source_for(server.url + "/offset", pagination=fs.Offset(limit=10), backoff=0.01)
    assert isinstance(source, fs.HTTPSource)
    server.fail("/offset", times=1, status=500, when={"offset": "50"})
    report = fs.Pipeline(source, Item, fs.JSONLSink(tmp_path / "out.jsonl"), fs.JSONLSink(tmp_path / "dlq.jsonl"),
                         executor="process").run()
    assert (report.rows_read, report.rows_valid) == (95, 95)
    assert sorted(r["id"] for r in read_jsonl(tmp_path / "out.jsonl")) == list(range(95))


def test_bad_config_is_refused() -> None:
    with pytest.raises(fs.ConfigError):
        fs.HTTPSource("ftp://example.com/x")
    with pytest.raises(fs.ConfigError):
        fs.HTTPSource("http://example.com/x", on_bad_page="ignore")
    with pytest.raises(fs.ConfigError):
        fs.HTTPSource("http://example.com/x", pagination="page")  # type: ignore[arg-type]
    with pytest.raises(fs.ConfigError, match="bad headers"):
        ids(fs.HTTPSource("http://127.0.0.1:9/x", headers={"Authorization": "Bearer \u2026"}))


def test_redirect_loop_is_a_clear_error_not_a_raw_httpx_one(server: FaultyServer) -> None:
    with pytest.raises(fs.SourceError, match="TooManyRedirects"):
        list(fast(f"{server.url}/loop").records())


def test_a_body_that_cannot_be_decoded_is_retried_then_refused(server: FaultyServer) -> None:
    source = fast(f"{server.url}/badgzip", max_retries=2)
    with pytest.raises(fs.SourceError):
        list(source.records())
    assert source.retries == 2


# -- secrets --------------------------------------------------------------------------

def test_secrets_in_the_url_never_reach_errors_reports_or_the_dlq(server: FaultyServer, tmp_path: Any) -> None:
    secret_url = server.url.replace("http://", "http://ann:hunter2@") + "/page?api_key=SECRET123&page_size=10"
    with pytest.raises(fs.SourceError) as info:
        ids(fast(server.url + "/status/500?api_key=SECRET123&token=T0KEN", max_retries=1))
    assert "SECRET123" not in str(info.value) and "T0KEN" not in str(info.value)
    assert "api_key=***" in str(info.value)

    server.fail("/page", times=10, body=b"<html>oops</html>", when={"page": "2"})
    sink, errors = tmp_path / "o.jsonl", tmp_path / "e.jsonl"
    report = fs.Pipeline(fast(secret_url, pagination=fs.PageNumber(), max_retries=0, on_bad_page="dlq"), Item, fs.JSONLSink(sink),
                         fs.JSONLSink(errors), executor="inline", checkpoint=tmp_path / "ckpt").run()
    assert report.rows_invalid == 1
    written = errors.read_text() + report.to_json() + (tmp_path / "ckpt" / "state.json").read_text()
    assert "SECRET123" not in written and "hunter2" not in written
    assert "api_key=***" in report.source and "ann:***@" in report.source
