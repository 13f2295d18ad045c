"""Records from a JSON HTTP API, page by page, with retries (httpx, imported on first use).

::

    request page ──► 2xx + JSON ──► records at records_path ──► next page? (pagination style)
         ▲    │
         │    ├─ timeout / connection error / 429 / 5xx / body not JSON ─► wait, retry
         │    │     (exponential backoff, Retry-After honoured, at most max_retries times)
         │    ├─ other 4xx ─► SourceError at once (retrying cannot help)
         └────┘  retries spent ─► SourceError, or with on_bad_page="dlq" (body not JSON
                                   or records_path missing) one ``parse`` DLQ record

Pagination styles and when they stop:

* ``None``: one request.
* :class:`NextLink`: follow the URL at ``path`` in the body, or the ``Link: <…>; rel="next"``
  header when ``path`` is None; stop when there is none, or it points back to the same URL.
* :class:`PageNumber`: ``?page=1, 2, …``; stop on an empty page.
* :class:`Offset`: ``?offset=0&limit=100``, offset advancing by the records received; stop
  on an empty page.

A page shorter than the size asked for does not end PageNumber / Offset pagination: many
APIs cap the page size below what was asked, and stopping there would lose records; the
price is one more request, for the empty page.
* :class:`Cursor`: send ``?cursor=<value at cursor_path>``; stop when the body has no
  cursor (missing, null, ``""``) or the same cursor comes back.

``max_pages`` stops any style after that many pages.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, MissingDependencyError, SourceError
from ..redact import redact_text, redact_url
from .base import ParseFailure, RecordSource

#: A page that fails to parse goes to the DLQ with at most this much of its body.
MAX_RAW_TEXT = 64 * 1024
# After this many bad pages in a row (on_bad_page="dlq"), pagination ends.
_MAX_BAD_PAGES_IN_A_ROW = 3


@dataclass(frozen=True)
class NextLink:
    """Follow a next-page URL: at the dotted ``path`` in the body (e.g. ``"links.next"``),
    or in the ``Link`` header (``rel="next"``) when ``path`` is None."""

    path: str | None = None


@dataclass(frozen=True)
class PageNumber:
    """``?page=start, start+1, …`` (plus ``size_param=size`` when both are given)."""

    param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Offset:
    """``?offset=0&limit=100``, then ``offset=100``, … (the offset grows by the records received)."""

    param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100


@dataclass(frozen=True)
class Cursor:
    """Send back the opaque cursor found at the dotted ``cursor_path`` of each page."""

    param: str = "cursor"
    cursor_path: str = "next_cursor"


Pagination = NextLink | PageNumber | Offset | Cursor


class _BadPage(Exception):
    """A 2xx page whose body is not what we expect (not JSON, no records at the path)."""

    def __init__(self, reason: str, body: str, response: Any) -> None:
        super().__init__(reason)
        self.reason, self.body, self.response = reason, body, response


class HTTPSource(RecordSource):
    """GET a JSON API and yield the objects found at ``records_path`` of every page.

    :param records_path: dotted path to the list of records in the body (``"data"``,
        ``"result.items"``); ``""`` when the body itself is the list.
    :param pagination: ``None`` (one page), :class:`NextLink`, :class:`PageNumber`,
        :class:`Offset` or :class:`Cursor`.
    :param timeout: seconds for connect / read / write / pool, per request.
    :param max_retries: retries per page after the first attempt (timeouts, connection
        errors, 429, 5xx, a body that is not JSON).
    :param backoff: the first wait in seconds; doubled at each retry, at most ``max_backoff``.
        A ``Retry-After`` header (seconds or an HTTP date) replaces the computed wait,
        also capped at ``max_backoff``.
    :param on_bad_page: ``"raise"`` (a :class:`SourceError`) or ``"dlq"``: a page still
        not JSON after the retries becomes one ``parse`` DLQ record holding the body
        (first 64 KiB). Pagination then goes on when the next request does not depend on
        the body (PageNumber, Offset, NextLink via the Link header) and stops otherwise.
    :param max_pages: stop after this many pages.
    :param sleep: how to wait between retries (``time.sleep``; tests pass a recorder).
    """

    def __init__(
        self,
        url: str,
        *,
        records_path: str = "data",
        pagination: Pagination | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        on_bad_page: str = "raise",
        max_pages: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"HTTPSource needs an http:// or https:// URL, not {url!r}")
        if pagination is not None and not isinstance(pagination, (NextLink, PageNumber, Offset, Cursor)):
            raise ConfigError(f"pagination must be None, NextLink, PageNumber, Offset or Cursor, not {pagination!r}")
        if on_bad_page not in ("raise", "dlq"):
            raise ConfigError(f"on_bad_page must be 'raise' or 'dlq', not {on_bad_page!r}")
        if max_retries < 0 or backoff < 0 or timeout <= 0:
            raise ConfigError("max_retries and backoff must be >= 0 and timeout > 0")
        self.url, self.name = url, redact_url(url)  # the name shows in reports and the DLQ
        self.records_path = records_path
        self.pagination = pagination
        self.params = dict(params or {})
        self.headers = dict(headers or {})
        self.timeout, self.max_retries, self.backoff, self.max_backoff = timeout, max_retries, backoff, max_backoff
        self.on_bad_page, self.max_pages = on_bad_page, max_pages
        self._sleep = sleep
        self._client: Any = None
        self.fields = None
        #: Requests retried so far (for tests and reports).
        self.retries = 0
        #: Pages fetched so far.
        self.pages = 0

    def fingerprint(self) -> dict[str, Any]:
        # The checkpoint file must not hold the secrets either: a digest tells URLs apart.
        secret_free = {"url_sha256": hashlib.sha256(self.url.encode()).hexdigest()[:16], "params": _digest(self.params)}
        return {"kind": "http", "name": self.name, "records_path": self.records_path, **secret_free}

    # -- the page loop -------------------------------------------------------------------
    def records(self) -> Iterator[tuple[int | None, Any]]:
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError("HTTP support", "http", "httpx") from exc
        try:
            self._client = httpx.Client(timeout=self.timeout, headers=self.headers, follow_redirects=True)
        except (TypeError, ValueError) as exc:  # e.g. a header value that is not ASCII
            raise ConfigError(redact_text(f"{self.url}: bad headers or client options: {exc}")) from exc
        try:
            yield from self._pages(httpx)
        finally:
            self.close()

    def _pages(self, httpx: Any) -> Iterator[tuple[int | None, Any]]:
        p = self.pagination
        url: str | None = self.url
        params = dict(self.params)
        if isinstance(p, PageNumber):
            params[p.param] = p.start
            if p.size_param and p.size is not None:
                params[p.size_param] = p.size
        elif isinstance(p, Offset):
            params[p.param] = 0
            params[p.limit_param] = p.limit
        seen: set[Any] = set()
        bad_in_a_row = 0
        while url is not None:
            if self.max_pages is not None and self.pages >= self.max_pages:
                return
            self.pages += 1
            current = str(httpx.URL(url, params=params)) if params else url
            try:
                response, body, items = self._fetch(httpx, url, params, current)
            except _BadPage as bad:
                if self.on_bad_page == "raise":
                    raise SourceError(redact_text(f"{current}: {bad.reason} (after {self.max_retries} retries)")) from None
                bad_in_a_row += 1
                yield None, ParseFailure(redact_text(f"page {self.pages} ({current}): {bad.reason}"), bad.body[:MAX_RAW_TEXT])
                if bad_in_a_row >= _MAX_BAD_PAGES_IN_A_ROW:
                    return
                # Go on only where the next request does not depend on the unreadable body.
                if isinstance(p, PageNumber):
                    params[p.param] += 1
                elif isinstance(p, Offset):
                    params[p.param] += p.limit
                elif isinstance(p, NextLink) and p.path is None:
                    url, params = self._link_header(bad.response, url, seen)
                else:
                    return
                continue
            bad_in_a_row = 0
            for index, item in enumerate(items, 1):
                if isinstance(item, dict):
                    yield None, item
                else:
                    reason = f"page {self.pages} record {index} is a {_json_type(item)}, not an object"
                    yield None, ParseFailure(reason, json.dumps(item, ensure_ascii=False)[:MAX_RAW_TEXT])
            # -- where next? -------------------------------------------------------------
            if p is None:
                return
            # PageNumber and Offset stop on an empty page only: a short page is no proof
            # of the end (many APIs cap the page size below what was asked).
            if isinstance(p, PageNumber):
                if not items:
                    return
                params[p.param] += 1
            elif isinstance(p, Offset):
                if not items:
                    return
                params[p.param] += len(items)
            elif isinstance(p, Cursor):
                cursor = _lookup(body, p.cursor_path)
                if cursor in (None, "") or not isinstance(cursor, (str, int, float)) or cursor in seen:
                    return
                seen.add(cursor)
                params = {**self.params, p.param: cursor}
            elif p.path is None:
                url, params = self._link_header(response, url, seen)
            else:
                link = _lookup(body, p.path)
                if not isinstance(link, str) or not link:
                    return
                nxt = str(httpx.URL(current).join(link))
                if nxt == current or nxt in seen:
                    return
                seen.add(current)
                url, params = nxt, {}

    def _link_header(self, response: Any, url: str, seen: set[Any]) -> tuple[str | None, dict[str, Any]]:
        link = response.links.get("next", {}).get("url")
        if not link:
            return None, {}
        nxt = str(response.url.join(link))
        if nxt in seen or nxt == str(response.url):
            return None, {}
        seen.add(str(response.url))
        return nxt, {}

    # -- one page, with retries ----------------------------------------------------------
    def _fetch(self, httpx: Any, url: str, params: dict[str, Any], shown: str) -> tuple[Any, Any, list[Any]]:
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
            wait: float | None = None
            try:
                response = self._client.get(url, params=params or None)
                content = response.content  # reads the whole body; a short body raises here
            except httpx.TimeoutException as exc:
                problem = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
            except (httpx.TooManyRedirects, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise SourceError(redact_text(f"{shown}: {type(exc).__name__}: {exc}")) from exc  # retrying cannot help
            except (httpx.TransportError, httpx.DecodingError) as exc:
                problem = f"connection error: {type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    problem = f"HTTP {status} {response.reason_phrase}"
                    wait = _retry_after(response.headers.get("Retry-After"))
                elif status >= 400:
                    raise SourceError(redact_text(f"{shown}: HTTP {status} {response.reason_phrase}: {_snippet(response)}"))
                elif status >= 300:
                    raise SourceError(redact_text(f"{shown}: HTTP {status} redirect without a usable Location"))
                else:
                    try:
                        body = json.loads(content)
                    except (ValueError, UnicodeDecodeError) as exc:
                        problem = f"the body is not valid JSON ({exc})"
                    else:
                        items = _lookup(body, self.records_path)
                        if isinstance(items, list):
                            return response, body, items
                        where = f"at {self.records_path!r}" if self.records_path else "at the top level"
                        problem = f"expected a list of records {where}, found {'nothing' if items is None else 'a ' + _json_type(items)}"
                    if attempt == self.max_retries:
                        text = content[:MAX_RAW_TEXT].decode(response.encoding or "utf-8", "replace")
                        raise _BadPage(problem, text, response)
            if attempt < self.max_retries:
                delay = self.backoff * (2**attempt) if wait is None else wait
                self._sleep(min(delay, self.max_backoff))
        raise SourceError(redact_text(f"{shown}: {problem}; gave up after {self.max_retries} retries"))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _lookup(body: Any, path: str) -> Any:
    """Follow a dotted path (``"a.b.0.c"``); None when any step is missing."""
    value = body
    for key in path.split(".") if path else ():
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.lstrip("-").isdigit() and -len(value) <= int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def _retry_after(header: str | None) -> float | None:
    """``Retry-After`` as seconds to wait: a number of seconds or an HTTP date."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def _snippet(response: Any) -> str:
    text = response.content[:200].decode(response.encoding or "utf-8", "replace").strip()
    return text or "(empty body)"


def _digest(params: Mapping[str, Any]) -> str:
    """Tells parameter sets apart without storing their values (they may be secrets)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
