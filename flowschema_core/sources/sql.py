"""SQL input on SQLAlchemy 2: a whole table, or a query with bound parameters, streamed.

::

    engine.connect() ─► execution_options(stream_results=True, yield_per=batch_rows)
        ─► result.partitions()  (batch_rows rows at a time, from a server-side cursor
                                 on PostgreSQL; SQLite steps its cursor lazily)
        ─► rows as value lists (``fields`` = the result's column names)

Rows are never fetched all at once, so memory does not grow with the table. A value
the wire format cannot carry (an interval, a network address, ...) is handed on as
something the model can parse: a timedelta as seconds, anything else as its text.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConfigError, SourceError
from ..redact import redact_url
from ..sql_engine import create_engine, import_sqlalchemy
from .base import RecordSource

_WIRE_SAFE = frozenset({
    type(None), bool, int, float, str, bytes, dict, list,
    dt.datetime, dt.date, dt.time, decimal.Decimal, uuid.UUID,
})


class SQLSource(RecordSource):
    """Read rows from a database ``url`` (``sqlite:///legacy.db``, ``postgresql://user@host/db``).

    Give exactly one of ``table`` (every row and column of that table; the name is
    quoted, never spliced into SQL) or ``query`` (SQL text; pass values in ``params`` as
    ``:name`` placeholders, never by formatting them into the text).

    :param schema: the database schema holding ``table`` (PostgreSQL), if not the default.
    :param batch_rows: rows fetched per round trip.
    :param engine_options: extra keyword arguments for ``sqlalchemy.create_engine``.
    """

    def __init__(
        self,
        url: str,
        *,
        table: str | None = None,
        query: str | None = None,
        params: Mapping[str, Any] | None = None,
        schema: str | None = None,
        batch_rows: int = 10_000,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if (table is None) == (query is None):
            raise ConfigError("SQLSource needs exactly one of table= or query=")
        if params and query is None:
            raise ConfigError("params= goes with query=")
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be at least 1, not {batch_rows}")
        self.url, self.table, self.query, self.params = url, table, query, dict(params or {})
        self.schema, self.batch_rows = schema, batch_rows
        self.engine_options = dict(engine_options or {})
        shown = redact_url(url)
        self.name = f"{shown} table {table}" if table is not None else f"{shown} query"
        self._engine: Any = None

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "sql", "name": self.name, "table": self.table, "query": self.query, "params": repr(sorted(self.params.items()))}

    def records(self) -> Iterator[tuple[int | None, Any]]:
        sa = import_sqlalchemy()
        if self._engine is None:
            self._engine = create_engine(self.url, **self.engine_options)
        done = 0
        try:
            with self._engine.connect() as conn:
                if self.table is not None:
                    try:
                        table = sa.Table(self.table, sa.MetaData(), schema=self.schema, autoload_with=conn)
                    except sa.exc.NoSuchTableError as exc:
                        raise SourceError(f"{self.name}: no such table {self.table!r}") from exc
                    stmt: Any = sa.select(table)
                    params: dict[str, Any] = {}
                else:
                    stmt, params = sa.text(self.query), self.params
                streaming = conn.execution_options(stream_results=True, yield_per=self.batch_rows)
                result = streaming.execute(stmt, params)
                self.fields = list(result.keys())
                # An explicit size: without one, SQLAlchemy 2.1's partitions() may call the
                # cursor's fetchall() (seen with a connection-level yield_per on psycopg).
                for part in result.yield_per(self.batch_rows).partitions(self.batch_rows):
                    for row in part:
                        done += 1
                        yield None, [v if type(v) in _WIRE_SAFE else _wire_value(v) for v in row]
        except sa.exc.SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            where = f"after {done} rows" if done else "before the first row"
            raise SourceError(f"{self.name}: reading failed {where}: {type(orig).__name__}: {str(orig).strip()}") from exc

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _wire_value(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, (bool, int, float, str, bytes, dict, list, tuple, dt.date, dt.time, decimal.Decimal, uuid.UUID)):
        return list(value) if isinstance(value, tuple) else value  # subclasses of the safe types
    return str(value)
