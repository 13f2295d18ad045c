"""SQL output on SQLAlchemy 2: a table created from the model, batched inserts, upserts.

::

    write(chunk) ──► BEGIN ──► for each batch of batch_rows:  SAVEPOINT; INSERT ... (executemany)
                       │           └─ the batch fails (constraint, type) ─► halves, each in a
                       │              SAVEPOINT, down to the refused rows: each is returned as (position, DB message)
                       │              and goes to the DLQ with stage "sink"; the others land
                       └──► COMMIT (one transaction per chunk)
                     a lost connection ─► ROLLBACK, back off (0.1 s, 0.2 s, ... ≤ 5 s), redo the
                                          chunk on a fresh connection; SinkError after retry_s

**Commit semantics differ from the file sinks**: every chunk is committed as it is
written, so rows are visible in the table while the run goes on, and ``abort()`` cannot
remove the chunks already committed. In a checkpointed run the chunk's transaction also
stores the run's checkpoint state (:mod:`.sql_state`; the driver calls
``commit_chunk``), so a resumed run goes on exactly after the last committed chunk:
exactly once, without an upsert key::

    write(piece) ... ─► held transaction: rows of the chunk (its pieces, if it was split)
    commit_chunk(state) ─► UPDATE flowschema_checkpoint SET state ─► COMMIT
    a lost connection ─► reconnect, redo the chunk's pieces; a COMMIT whose answer was
                         lost is looked up in the state row, never redone twice

Without a checkpoint, give an ``upsert_key`` (a primary key or unique
columns) to make a re-run after a failure safe: rows already there are updated, not
duplicated (``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL, ``ON DUPLICATE
KEY UPDATE`` on MySQL and MariaDB).

Table and column names are always quoted and values always bound as parameters (bind
names are generated, ``c0``, ``c1``, ...), so no name or value can change the SQL run.

Column types, from the model (see :mod:`flowschema_core.model_types`): int → BIGINT,
float → DOUBLE, bool → BOOLEAN, str → VARCHAR(max_length) or TEXT, bytes → binary,
Decimal → NUMERIC(max_digits, decimal_places) (unconstrained NUMERIC without both;
SQLite keeps decimals as REAL), datetime → TIMESTAMP WITH TIME ZONE (values in UTC;
``NaiveDatetime`` → without time zone; SQLite stores the UTC wall time), date, time,
UUID → UUID (CHAR(32) where there is no native type), Enum/Literal → TEXT (the value),
MySQL/MariaDB: DATETIME(6) in UTC wall time, TIME(6),
nested models, lists and dicts → JSON (JSONB on PostgreSQL). Optional fields are nullable.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..arrow_schema import as_text, json_text
from ..dlq import jsonable
from ..errors import ConfigError, SinkError
from ..model_types import FieldType, field_types
from ..redact import redact_url
from ..sql_engine import create_engine, import_sqlalchemy, is_check_violation, is_disconnect, is_mysql
from . import sql_state
from .base import RowSink

_UPSERT_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb")


class SQLSink(RowSink):
    """Write valid rows into ``table`` of the database at ``url``.

    :param create: create the table from the model if it does not exist (with the
        ``upsert_key`` columns as its primary key); if False the table must exist.
    :param upsert_key: column(s) identifying a row: insert or update, never duplicate.
        An existing table needs a primary key or unique constraint on exactly these.
    :param batch_rows: rows per INSERT batch.
    :param retry_s: how long to keep retrying a lost connection before giving up.
    :param schema: the database schema of the table (PostgreSQL), if not the default.
    :param engine_options: extra keyword arguments for ``sqlalchemy.create_engine``.
    """


    def __init__(
        self,
        url: str,
        table: str,
        *,
        create: bool = True,
        upsert_key: str | Sequence[str] | None = None,
        batch_rows: int = 1_000,
        retry_s: float = 30.0,
        schema: str | None = None,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not table:
            raise ConfigError("SQLSink needs a table name")
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be at least 1, not {batch_rows}")
        self.url, self.table_name, self.create, self.schema = url, table, create, schema
        self.upsert_key = [upsert_key] if isinstance(upsert_key, str) else list(upsert_key or [])
        self.batch_rows, self.retry_s = batch_rows, retry_s
        self.engine_options = dict(engine_options or {})
        self.name = f"{redact_url(url)} table {table}"
        #: reconnections made after a lost connection (for the report and tests)
        self.retries = 0
        self.rows_written = 0
        self._engine: Any = None
        # A checkpointed run's open chunk: its connection, and the pieces written in it
        # (rows, refusals) to redo after a lost connection. _state_key None: not checkpointed.
        self._state_key: str | None = None
        self._conn: Any = None
        self._pending: list[tuple[list[dict[str, Any]], list[tuple[int, str]]]] = []

    # -- lifecycle -------------------------------------------------------------------
    def open(self, fields: list[str], model: type[BaseModel] | None = None) -> None:
        sa = import_sqlalchemy()
        self._fields = list(fields)
        missing = [k for k in self.upsert_key if k not in self._fields]
        if missing:
            raise ConfigError(f"{self.name}: upsert_key names unknown columns {missing}; the columns are {self._fields}")
        self._engine = create_engine(self.url, **self.engine_options)
        dialect = self._engine.dialect.name
        if self.upsert_key and dialect not in _UPSERT_DIALECTS:
            raise ConfigError(f"{self.name}: upsert_key is supported on SQLite, PostgreSQL and MySQL/MariaDB, not {dialect}")
        types = field_types(model) if model is not None else None
        columns, self._convert = [], []
        for i, name in enumerate(self._fields):
            ft = types[name] if types is not None else None
            col_type = _sql_type(ft, sa) if ft is not None else sa.Text()
            nullable = True if ft is None else ft.nullable
            columns.append(sa.Column(name, col_type, key=f"c{i}", nullable=nullable, quote=True))
            self._convert.append(_converter(ft, dialect) if ft is not None else json_text)
        if self.upsert_key:
            columns.append(sa.PrimaryKeyConstraint(*[c for c in columns if c.name in self.upsert_key]))
        self._table = sa.Table(self.table_name, sa.MetaData(), *columns, schema=self.schema, quote=True, quote_schema=True)
        self._keys = [c.key for c in self._table.columns]
        self._with_retry(self._prepare)
        self._stmt = self._insert_statement(dialect)

    def write(self, data: list[list[Any]]) -> list[tuple[int, str]]:
        if self._engine is None:
            raise SinkError(f"{self.name}: write before open()")
        keys, convert = self._keys, self._convert
        rows = [{k: (c(v) if c is not None else v) for k, c, v in zip(keys, convert, row)} for row in data]
        if self._state_key is not None:
            refused: list[tuple[int, str]] = self._with_retry(lambda: self._held(lambda conn: self._write_piece(conn, rows)))
            self.rows_written += len(rows) - len(refused)
            return refused
        refused = self._with_retry(lambda: self._write_chunk(rows))
        self.rows_written += len(rows) - len(refused)
        return refused

    def commit(self) -> None:
        """Nothing left to commit (each chunk was committed by ``write``); release the pool."""
        self._dispose()

    def abort(self) -> None:
        """Release the pool. Chunks already written stay committed (see the module docstring)."""
        self._dispose()

    # -- checkpointing: each chunk's transaction carries the run's state (module docstring)
    commits_chunks = True

    def open_resumable(self, fields: list[str], model: type[BaseModel] | None, key: str, state: dict[str, Any] | None) -> None:
        if model is None:
            raise ConfigError(f"{self.name}: an SQL table cannot be the DLQ of a checkpointed run; use a JSONL DLQ (errors=JSONLSink(...))")
        self.open(fields, model)
        self._state_table = sql_state.state_table(self.schema)

        def prepare() -> None:
            with self._engine.begin() as conn:
                sql_state.create(conn, self._state_table)
                if state is None:  # a fresh run: a state left under this key by an earlier one is void
                    sql_state.delete(conn, self._state_table, key)

        self._with_retry(prepare)
        self._state_key, self._pending = key, []

    def committed_state(self, key: str) -> dict[str, Any] | None:
        engine = create_engine(self.url, **self.engine_options)
        try:
            def read() -> dict[str, Any] | None:
                with engine.connect() as conn:
                    return sql_state.read(conn, sql_state.state_table(self.schema), key)

            found: dict[str, Any] | None = self._with_retry(read)
            return found
        finally:
            engine.dispose()

    def commit_chunk(self, state: dict[str, Any]) -> None:
        """Store ``state`` and COMMIT, in the transaction holding the chunk's rows."""
        if self._state_key is None:
            raise SinkError(f"{self.name}: commit_chunk outside a checkpointed run")
        self._with_retry(lambda: self._commit_held(state))

    def checkpoint(self) -> dict[str, Any]:
        return {"rows_written": self.rows_written}

    def suspend(self) -> None:
        self._dispose()

    def finish_commit(self, key: str) -> None:
        self._dispose()  # every chunk is committed already

    def _held(self, action: Callable[[Any], Any]) -> Any:
        """Run ``action(conn)`` in the open chunk's transaction; (re)open it, redoing the
        chunk's earlier pieces, if the connection was lost."""
        sa = import_sqlalchemy()
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
                for rows, refused in self._pending:
                    again = self._insert(self._conn, rows)
                    if again != refused:
                        raise SinkError(f"{self.name}: redoing a chunk after a lost connection, the database refused other rows "
                                        f"({again}) than the first time ({refused}); the table changed under the run")
            return action(self._conn)
        except sa.exc.SQLAlchemyError as exc:
            if is_disconnect(exc):
                self._drop_connection()
            raise

    def _write_piece(self, conn: Any, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
        refused = self._insert(conn, rows)
        self._pending.append((rows, refused))
        return refused

    def _commit_held(self, state: dict[str, Any]) -> None:
        key = self._state_key
        assert key is not None
        if self._conn is None and self._pending:
            # The connection was lost after the chunk's COMMIT went out: did it land?
            with self._engine.connect() as conn:
                if sql_state.read(conn, self._state_table, key) == json.loads(json.dumps(state, sort_keys=True, default=str)):
                    self._pending = []
                    return

        def store_and_commit(conn: Any) -> None:
            sql_state.write(conn, self._state_table, key, state)
            conn.commit()

        self._held(store_and_commit)
        self._pending = []

    def _drop_connection(self) -> None:
        """Let go of the chunk's connection (a rollback, or just the socket if it is dead)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()
            conn.close()
        except Exception:  # noqa: BLE001 - the connection is already broken: nothing to release
            pass

    def _dispose(self) -> None:
        self._drop_connection()
        self._pending = []
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- internals -------------------------------------------------------------------
    def _prepare(self) -> None:
        sa = import_sqlalchemy()
        inspector = sa.inspect(self._engine)
        if not inspector.has_table(self.table_name, schema=self.schema):
            if not self.create:
                raise SinkError(f"{self.name}: the table does not exist (pass create=True to create it from the model)")
            self._table.metadata.create_all(self._engine)
            return
        existing = {c["name"] for c in inspector.get_columns(self.table_name, schema=self.schema)}
        absent = [f for f in self._fields if f not in existing]
        if absent:
            raise SinkError(f"{self.name}: the existing table has no column(s) {absent}")
        if self.upsert_key:
            wanted = set(self.upsert_key)
            keys = [set(inspector.get_pk_constraint(self.table_name, schema=self.schema).get("constrained_columns") or [])]
            keys += [set(u["column_names"]) for u in inspector.get_unique_constraints(self.table_name, schema=self.schema)]
            keys += [set(ix["column_names"]) for ix in inspector.get_indexes(self.table_name, schema=self.schema) if ix.get("unique")]
            if wanted not in keys:
                raise SinkError(f"{self.name}: upsert_key {self.upsert_key} needs a primary key or unique constraint "
                                "on exactly those columns")

    def _insert_statement(self, dialect: str) -> Any:
        table = self._table
        if not self.upsert_key:
            return table.insert()
        if is_mysql(dialect):  # INSERT ... ON DUPLICATE KEY UPDATE (MySQL names no conflict target)
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            mysql_stmt = mysql_insert(table)
            updates = {c.key: mysql_stmt.inserted[c.key] for c in table.columns if c.name not in self.upsert_key}
            key_col = next(c for c in table.columns if c.name in self.upsert_key)
            return mysql_stmt.on_duplicate_key_update(updates or {key_col.key: mysql_stmt.inserted[key_col.key]})
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        stmt = dialect_insert(table)
        key_cols = [c for c in table.columns if c.name in self.upsert_key]
        others = {c: stmt.excluded[c.key] for c in table.columns if c.name not in self.upsert_key}
        if not others:
            return stmt.on_conflict_do_nothing(index_elements=key_cols)
        return stmt.on_conflict_do_update(index_elements=key_cols, set_=others)

    def _write_chunk(self, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
        with self._engine.begin() as conn:
            return self._insert(conn, rows)

    def _insert(self, conn: Any, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Insert ``rows`` in ``conn``'s transaction, batch by batch; return the refused ones."""
        refused: list[tuple[int, str]] = []
        for start in range(0, len(rows), self.batch_rows):
            self._insert_batch(conn, rows[start:start + self.batch_rows], start, refused)
        return refused

    def _insert_batch(self, conn: Any, batch: list[dict[str, Any]], offset: int, refused: list[tuple[int, str]]) -> None:
        """Insert ``batch`` in a savepoint; if the database refuses it, halve it until the
        refused rows stand alone (a few statements per bad row, not one per row)."""
        sa = import_sqlalchemy()
        try:
            with conn.begin_nested():
                conn.execute(self._stmt, batch if len(batch) > 1 else batch[0])
            return
        except sa.exc.StatementError as exc:
            if is_disconnect(exc):
                raise
            if len(batch) == 1:
                if not _row_level(exc, sa):
                    raise SinkError(f"{self.name}: the database rejected the insert: {_db_message(exc)}") from exc
                refused.append((offset, _db_message(exc)))
                return
        mid = len(batch) // 2
        self._insert_batch(conn, batch[:mid], offset, refused)
        self._insert_batch(conn, batch[mid:], offset + mid, refused)

    def _with_retry(self, action: Callable[[], Any]) -> Any:
        """Run ``action``; on a lost connection back off and retry, for ``retry_s`` at most."""
        sa = import_sqlalchemy()
        first_failure: float | None = None
        delay = 0.1
        while True:
            try:
                return action()
            except sa.exc.SQLAlchemyError as exc:
                if not is_disconnect(exc):
                    raise SinkError(f"{self.name}: {_db_message(exc)}") from exc
                now = time.monotonic()
                first_failure = first_failure if first_failure is not None else now
                if now - first_failure + delay > self.retry_s:
                    raise SinkError(f"{self.name}: lost the database connection and could not get it back within {self.retry_s:g} s: "
                                    f"{_db_message(exc)}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                self.retries += 1


def _row_level(exc: BaseException, sa: Any) -> bool:
    """Errors that are the row's fault (a constraint, a value the column cannot hold)."""
    if isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError)) or is_check_violation(exc):
        return True
    return not isinstance(exc, sa.exc.DBAPIError)  # bind-parameter processing refused the value


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(line.strip() for line in str(orig).strip().splitlines() if line.strip())
    return f"{type(orig).__name__}: {text}"


def _sql_type(ft: FieldType, sa: Any) -> Any:
    kind = ft.kind
    if kind == "int":
        return sa.BigInteger()
    if kind == "float":
        return sa.Double()
    if kind == "bool":
        return sa.Boolean()
    if kind == "str":
        return sa.String(ft.max_length) if ft.max_length else sa.Text()
    if kind in ("enum", "literal"):
        return sa.Text()
    if kind == "bytes":
        return sa.LargeBinary()
    if kind == "decimal":
        if ft.max_digits is not None and ft.decimal_places is not None:
            return sa.Numeric(max(ft.max_digits, ft.decimal_places, 1), ft.decimal_places, asdecimal=True)
        return sa.Numeric(asdecimal=True)
    from sqlalchemy.dialects import mysql

    if kind == "datetime":  # MySQL keeps whole seconds unless told fsp=6
        return sa.DateTime(timezone=ft.tz != "naive").with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    if kind == "date":
        return sa.Date()
    if kind == "time":
        return sa.Time().with_variant(mysql.TIME(fsp=6), "mysql", "mariadb")
    if kind == "uuid":
        return sa.Uuid()
    from sqlalchemy.dialects import postgresql

    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _converter(ft: FieldType, dialect: str) -> Callable[[Any], Any] | None:
    kind = ft.kind
    if kind in ("enum", "literal"):
        return as_text
    if kind in ("model", "list", "dict"):
        return lambda v: None if v is None else jsonable(v)
    if kind == "datetime":
        naive_column = ft.tz == "naive" or dialect == "sqlite" or is_mysql(dialect)  # no time zones there: UTC wall time
        return _utc_naive if naive_column else _utc_aware
    return None


def _utc_aware(value: Any) -> Any:
    if value is None:
        return None
    if value.tzinfo is None:  # a naive value in a time-zone column is taken as UTC (as in Parquet)
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _utc_naive(value: Any) -> Any:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
