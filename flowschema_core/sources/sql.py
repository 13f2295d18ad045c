"""SQL input on SQLAlchemy 2: a whole table, or a query with bound parameters, streamed.

Without a key, one query, streamed::

    engine.connect() ─► execution_options(stream_results=True, yield_per=batch_rows)
        ─► result.partitions()  (batch_rows rows at a time, from a server-side cursor
                                 on PostgreSQL and MySQL; SQLite steps its cursor lazily)
        ─► rows as value lists (``fields`` = the result's column names)

With ``key`` (a unique column), keyset pages that survive a dropped connection::

    SELECT ... WHERE key > :last ORDER BY key LIMIT batch_rows   (first page: no WHERE)
        ─► rows ─► last = the key of the last row handed on ─► next page ...
    a lost connection ─► back off (0.1 s, 0.2 s, ... ≤ 5 s) and reconnect, up to
        reconnect_attempts failures in a row ─► the same page again, after ``last``:
        no gap, no duplicate; then SourceConnectionError naming the (redacted) URL

The key of the last row handed on is also this source's checkpoint :meth:`position`:
a checkpointed run resumes by key (:meth:`seek`) instead of reading and skipping.

Rows are never fetched all at once, so memory does not grow with the table. A value
the wire format cannot carry (an interval, a network address, ...) is handed on as
something the model can parse: a timedelta as seconds, anything else as its text.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConfigError, SourceConnectionError, SourceError
from ..redact import redact_url
from ..sql_engine import create_engine, import_sqlalchemy, is_disconnect
from .base import RecordSource

log = logging.getLogger("flowschema")

_WIRE_SAFE = frozenset({
    type(None), bool, int, float, str, bytes, dict, list,
    dt.datetime, dt.date, dt.time, decimal.Decimal, uuid.UUID,
})
_MAX_DELAY_S = 5.0


class SQLSource(RecordSource):
    """Read rows from a database ``url`` (``sqlite:///legacy.db``, ``postgresql://user@host/db``,
    ``mysql://user:pw@host/db``).

    Give exactly one of ``table`` (every row and column of that table; the name is
    quoted, never spliced into SQL) or ``query`` (SQL text; pass values in ``params`` as
    ``:name`` placeholders, never by formatting them into the text).

    :param key: a unique, non-null column of the table or query: rows are read in its
        order, a page at a time, and a dropped connection is resumed after the last key
        read. Without it a dropped connection ends the read (SourceConnectionError).
    :param schema: the database schema holding ``table`` (PostgreSQL), if not the default.
    :param batch_rows: rows fetched per round trip (per page with ``key``).
    :param reconnect_attempts: failed reconnections in a row before giving up.
    :param engine_options: extra keyword arguments for ``sqlalchemy.create_engine``.
    """

    def __init__(
        self,
        url: str,
        *,
        table: str | None = None,
        query: str | None = None,
        params: Mapping[str, Any] | None = None,
        key: str | None = None,
        schema: str | None = None,
        batch_rows: int = 10_000,
        reconnect_attempts: int = 8,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if (table is None) == (query is None):
            raise ConfigError("SQLSource needs exactly one of table= or query=")
        if params and query is None:
            raise ConfigError("params= goes with query=")
        batch_rows, reconnect_attempts = int(batch_rows), int(reconnect_attempts)  # the CLI passes options as text
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be at least 1, not {batch_rows}")
        if reconnect_attempts < 0:
            raise ConfigError(f"reconnect_attempts must be 0 or more, not {reconnect_attempts}")
        if key is not None and not key:
            raise ConfigError("key= names a column; it cannot be empty")
        self.url, self.table, self.query, self.params = url, table, query, dict(params or {})
        self.key, self.schema, self.batch_rows, self.reconnect_attempts = key, schema, batch_rows, reconnect_attempts
        self.engine_options = dict(engine_options or {})
        self.shown_url = redact_url(url)
        self.name = f"{self.shown_url} table {table}" if table is not None else f"{self.shown_url} query"
        #: reconnections made after a lost connection (for the report and tests)
        self.reconnects = 0
        self.notes: list[str] = []
        self._engine: Any = None
        self._last: Any = _NOTHING  # key of the last row handed on
        self._after: Any = _NOTHING  # where the next read starts (set by seek)
        self._upto: Any = _NOTHING  # the last key to read (a distributed-mode unit, see bounded)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "sql", "name": self.name, "table": self.table, "query": self.query, "params": repr(sorted(self.params.items())),
                "key": self.key}

    # -- checkpoint position -----------------------------------------------------------
    def position(self) -> Any:
        """The key of the last row handed on (JSON-safe), or None without a key."""
        if self.key is None:
            return None
        return {"after": None if self._last is _NOTHING else _encode_key(self._last)}

    def seek(self, position: Any) -> None:
        """Start the next read after the row whose key :meth:`position` returned."""
        if self.key is None or not isinstance(position, dict):
            raise ConfigError(f"{self.name}: cannot seek without key=")
        after = position.get("after")
        self._after = self._last = _NOTHING if after is None else _decode_key(after)

    def bounded(self, after: Any, upto: Any) -> SQLSource:
        """A copy that reads only the rows whose key is after ``after`` and at most ``upto``
        (keys as :meth:`position` encodes them; None: no bound), in key order: one key range
        of distributed mode (:mod:`flowschema_core.range_sql`)."""
        if self.key is None:
            raise ConfigError(f"{self.name}: key ranges need key=")
        part = copy.copy(self)
        part.notes, part.reconnects = [], 0
        part._after = part._last = _NOTHING if after is None else _decode_key(after)
        part._upto = _NOTHING if upto is None else _decode_key(upto)
        return part

    # -- reading -----------------------------------------------------------------------
    def records(self) -> Iterator[tuple[int | None, Any]]:
        if self._engine is None:
            self._engine = create_engine(self.url, **self.engine_options)
        self.notes = []
        self._last, self._after = self._after, _NOTHING  # a fresh read starts at the top, or where seek() said
        if self.key is None:
            yield from self._stream()
        else:
            yield from self._keyset()
        if self.reconnects:
            self.notes.append(f"{self.name}: reconnected {self.reconnects} time(s) after a lost connection and read on after the last key")

    def _stream(self) -> Iterator[tuple[int | None, Any]]:
        """One streamed query. A connection lost before the first row is retried (nothing
        was handed on yet); after it, the read cannot resume and says what would let it."""
        sa = import_sqlalchemy()
        done, failures = 0, 0
        while True:
            result: Any = None
            try:
                with self._engine.connect() as conn:
                    stmt, params = self._statement(conn)
                    streaming = conn.execution_options(stream_results=True, yield_per=self.batch_rows)
                    result = streaming.execute(stmt, params)
                    self.fields = list(result.keys())
                    # An explicit size: without one, SQLAlchemy 2.1's partitions() may call the
                    # cursor's fetchall() (seen with a connection-level yield_per on psycopg).
                    for part in result.yield_per(self.batch_rows).partitions(self.batch_rows):
                        for row in part:
                            done += 1
                            yield None, [v if type(v) in _WIRE_SAFE else _wire_value(v) for v in row]
                return
            except sa.exc.SQLAlchemyError as exc:
                if not is_disconnect(exc):
                    raise self._failed(exc, done) from exc
                _forget_unread_rows(result)
                if done:
                    raise SourceConnectionError(
                        f"{self.name}: lost the connection to {self.shown_url} after {done} rows ({_message(exc)}); "
                        "the read cannot resume without a key: pass key=<a unique column> (CLI: --key COLUMN) to read in key "
                        "order and resume after the last row read"
                    ) from exc
                failures = self._back_off(exc, failures, done)

    def _keyset(self) -> Iterator[tuple[int | None, Any]]:
        """Keyset pages (see the module docstring); reconnects after a lost connection."""
        sa = import_sqlalchemy()
        done, failures = 0, 0
        conn: Any = None
        page: Any = None
        try:
            while True:
                try:
                    if conn is None:
                        conn = self._engine.connect()
                        page = self._page_statement(conn)
                    params = {**self.params, "flowschema_limit": self.batch_rows}
                    if self._upto is not _NOTHING:
                        params["flowschema_upto"] = self._upto
                    if self._last is not _NOTHING:
                        params["flowschema_after"] = self._last
                    result = conn.execute(page[self._last is _NOTHING], params)
                    self.fields = list(result.keys())
                    rows = result.fetchall()
                    conn.rollback()  # end the read's transaction: no snapshot or lock held between pages
                except sa.exc.SQLAlchemyError as exc:
                    if conn is not None:
                        _close_quietly(conn)
                        conn = None
                    if not is_disconnect(exc):
                        raise self._failed(exc, done) from exc
                    failures = self._back_off(exc, failures, done)
                    continue
                failures = 0
                at = self._key_index()
                for row in rows:
                    value = row[at]
                    self._check_order(value)
                    self._last = value
                    done += 1
                    yield None, [v if type(v) in _WIRE_SAFE else _wire_value(v) for v in row]
                if len(rows) < self.batch_rows:
                    return
        finally:
            if conn is not None:
                _close_quietly(conn)

    def _statement(self, conn: Any) -> tuple[Any, dict[str, Any]]:
        sa = import_sqlalchemy()
        if self.query is not None:
            return sa.text(self.query), self.params
        return sa.select(self._reflect(conn)), {}

    def _reflect(self, conn: Any) -> Any:
        sa = import_sqlalchemy()
        try:
            return sa.Table(self.table, sa.MetaData(), schema=self.schema, autoload_with=conn)
        except sa.exc.NoSuchTableError as exc:
            raise SourceError(f"{self.name}: no such table {self.table!r}") from exc

    def _page_statement(self, conn: Any) -> tuple[Any, Any]:
        """The page query (after a key, first page) — both bound, names quoted."""
        sa = import_sqlalchemy()
        limit = sa.bindparam("flowschema_limit", type_=sa.Integer())
        if self.query is None:
            table = self._reflect(conn)
            if self.key not in table.c:
                raise ConfigError(f"{self.name}: key {self.key!r} is not a column of {self.table!r}; its columns are {list(table.c.keys())}")
            self._check_unique(conn, table)
            column = table.c[self.key]
            first = sa.select(table).order_by(column).limit(limit)
            if self._upto is not _NOTHING:
                first = first.where(column <= sa.bindparam("flowschema_upto"))
            return first.where(column > sa.bindparam("flowschema_after")), first
        quoted = conn.dialect.identifier_preparer.quote(self.key)
        base = f"SELECT * FROM ({self.query}) AS flowschema_page"
        upto = [f"{quoted} <= :flowschema_upto"] if self._upto is not _NOTHING else []
        tail = f" ORDER BY {quoted} LIMIT :flowschema_limit"
        after, first = [f"{quoted} > :flowschema_after", *upto], upto
        return (sa.text(f"{base} WHERE {' AND '.join(after)}{tail}"),
                sa.text(f"{base}{' WHERE ' + first[0] if first else ''}{tail}"))

    def _check_unique(self, conn: Any, table: Any) -> None:
        """Keyset pages skip rows whose key repeats across a page boundary: refuse a key
        that the table does not declare unique."""
        sa = import_sqlalchemy()
        inspector = sa.inspect(conn)
        unique = [inspector.get_pk_constraint(self.table, schema=self.schema).get("constrained_columns") or []]
        unique += [u["column_names"] for u in inspector.get_unique_constraints(self.table, schema=self.schema)]
        unique += [ix["column_names"] for ix in inspector.get_indexes(self.table, schema=self.schema) if ix.get("unique")]
        if [self.key] not in [list(cols) for cols in unique]:
            raise ConfigError(f"{self.name}: key {self.key!r} must be the primary key or a unique column of {self.table!r} "
                              "(reading in key order after the last key seen would skip rows that share a key)")

    def _key_index(self) -> int:
        assert self.fields is not None
        try:
            return self.fields.index(self.key)  # type: ignore[arg-type]
        except ValueError:
            raise ConfigError(f"{self.name}: key {self.key!r} is not a column of the query's result; its columns are {self.fields}") from None

    def _check_order(self, value: Any) -> None:
        if value is None:
            raise SourceError(f"{self.name}: a row has no value in the key column {self.key!r}; the key must be unique and NOT NULL")
        if self._last is not _NOTHING and not value > self._last:
            raise SourceError(f"{self.name}: the key {self.key!r} repeats ({value!r} after {self._last!r}); the key must be unique")

    def _back_off(self, exc: BaseException, failures: int, done: int) -> int:
        """Sleep before the next attempt; raise SourceConnectionError once the attempts are spent."""
        failures += 1
        if failures > self.reconnect_attempts:
            raise SourceConnectionError(
                f"{self.name}: lost the connection to {self.shown_url} after {done} rows and could not reconnect "
                f"in {self.reconnect_attempts} attempts: {_message(exc)}"
            ) from exc
        delay = min(0.1 * 2 ** (failures - 1), _MAX_DELAY_S)
        log.warning("%s: lost the connection after %d rows (%s); reconnecting in %.1f s (attempt %d of %d)",
                    self.name, done, _message(exc), delay, failures, self.reconnect_attempts)
        time.sleep(delay)
        self.reconnects += 1
        return failures

    def _failed(self, exc: BaseException, done: int) -> SourceError:
        where = f"after {done} rows" if done else "before the first row"
        return SourceError(f"{self.name}: reading failed {where}: {_message(exc)}")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


_NOTHING = object()


def _message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {str(orig).strip()}"


def _forget_unread_rows(result: Any) -> None:
    """A lost connection's unbuffered PyMySQL result would try to read its remaining rows
    from the dead socket when collected, and print a traceback: there are none to read."""
    cursor = getattr(result, "cursor", None)
    candidates: tuple[Any, ...] = (getattr(cursor, "_result", None), getattr(getattr(cursor, "connection", None), "_result", None))
    for unread in candidates:
        if getattr(unread, "unbuffered_active", False):
            unread.unbuffered_active = False


def _close_quietly(conn: Any) -> None:
    """Drop a connection that failed: invalidated, so the pool does not try to roll it
    back (which fails again on a dead socket and logs a traceback)."""
    try:
        conn.invalidate()
        conn.close()
    except Exception:  # noqa: BLE001 - the connection is already broken: nothing to release
        pass


#: Key types a checkpoint stores as they are, and those it tags (JSON has no such type).
_TAGGED: dict[str, Any] = {
    "decimal": decimal.Decimal, "uuid": uuid.UUID,
    "datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat, "time": dt.time.fromisoformat,
}


_KEY_TYPES = (("datetime", dt.datetime), ("date", dt.date), ("time", dt.time), ("decimal", decimal.Decimal), ("uuid", uuid.UUID))  # datetime first: a date too


def _encode_key(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"type": "bytes", "value": value.hex()}
    for name, cls in _KEY_TYPES:
        if isinstance(value, cls):
            return {"type": name, "value": value.isoformat() if hasattr(value, "isoformat") else str(value)}
    raise ConfigError(f"a key of type {type(value).__name__} cannot be checkpointed; use an integer, text, date or decimal key")


def _decode_key(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if value["type"] == "bytes":
        return bytes.fromhex(value["value"])
    return _TAGGED[value["type"]](value["value"])


def _wire_value(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, (bool, int, float, str, bytes, dict, list, tuple, dt.date, dt.time, decimal.Decimal, uuid.UUID)):
        return list(value) if isinstance(value, tuple) else value  # subclasses of the safe types
    return str(value)
