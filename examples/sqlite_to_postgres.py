"""Migrate a legacy SQLite table into PostgreSQL, with a checkpoint that survives Ctrl-C.

::

    FLOWSCHEMA_EXAMPLE_PG_URL=postgresql://user:password@localhost/dbname \\
        python examples/sqlite_to_postgres.py          # from the repository root

    python examples/sqlite_to_postgres.py              # no PostgreSQL: SQLite → SQLite

1. Builds ``build/examples/sqlite_to_postgres/legacy.db``: 3,000 customers, 4 of them
   bad — two e-mails without ``@`` (refused by the model: stage ``validate``), a
   duplicate e-mail and a negative balance (refused by the target's ``UNIQUE`` and
   ``CHECK`` constraints: stage ``sink``, with the database's own message).
2. (Re)creates the table ``flowschema_example_customers`` in the target database, with
   those constraints. Only that table is touched.
3. Migrates with ``checkpoint=`` and ``upsert_key="id"``. To show what the checkpoint is
   for, the first attempt is stopped part-way as if someone pressed Ctrl-C (the sink
   below sends this process SIGINT after its 3rd chunk); the run stops cleanly and says
   ``interrupted``. The second attempt — the same pipeline — resumes after the last
   chunk the target committed (the SQL sink commits the checkpoint position with each
   chunk's rows), so no row is written twice; the upsert key would also make a plain
   re-run without a checkpoint safe. A third
   attempt finds the checkpoint finished and does nothing.

The target comes from the environment variable ``FLOWSCHEMA_EXAMPLE_PG_URL``; when it is
not set, the example says how to set it and migrates into a SQLite file instead.
Needs ``pip install "flowschema[postgres]"`` (SQLAlchemy, psycopg).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import sys
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field
from show import print_dlq

import flowschema_core as fs
from flowschema_core.redact import redact_url
from flowschema_core.sql_engine import create_engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "examples", "sqlite_to_postgres")
LEGACY = os.path.join(OUT_DIR, "legacy.db")
CHECKPOINT = os.path.join(OUT_DIR, "checkpoint")
DLQ = os.path.join(OUT_DIR, "customers.errors.jsonl")
TABLE = "flowschema_example_customers"
ENV = "FLOWSCHEMA_EXAMPLE_PG_URL"
ROWS = 3000


class Customer(BaseModel):
    id: int
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    balance: Decimal = Field(max_digits=12, decimal_places=2)  # the sign is the database's CHECK's business
    joined: AwareDatetime


def make_legacy_db(path: str) -> None:
    """3,000 customers as a legacy app stored them: everything TEXT."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, balance TEXT, joined TEXT)")
    rows = [(i, f"Customer {i}", f"c{i}@example.com", f"{i % 500}.{i % 100:02d}", f"2024-01-{1 + i % 28:02d}T09:30:00+01:00")
            for i in range(1, ROWS + 1)]
    rows[49] = (50, "Ann", "ann.example.com", "10.00", "2024-01-05T10:00:00Z")           # no @          → validate
    rows[1499] = (1500, "Bo", "bo at example.com", "3.00", "2024-01-06T10:00:00Z")        # no @          → validate
    rows[1999] = (2000, "Copycat", "c7@example.com", "1.00", "2024-01-07T10:00:00Z")      # same as id 7  → sink (UNIQUE)
    rows[2499] = (2500, "Overdrawn", "c2500@example.com", "-25.00", "2024-01-08T10:00:00Z")  # negative → sink (CHECK)
    con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()


def make_target_table(url: str) -> Any:
    """(Re)create the target table with the constraints the legacy data never had."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        conn.exec_driver_sql(
            f"CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, "
            "balance NUMERIC(12, 2) NOT NULL CHECK (balance >= 0), joined TIMESTAMP WITH TIME ZONE NOT NULL)"
        )
    return engine


class CtrlCAfterChunks(fs.SQLSink):
    """An SQLSink that, for this demonstration, presses Ctrl-C (sends SIGINT to this
    process) after writing ``stop_after`` chunks. ``None``: an ordinary SQLSink. The
    resumed run must use the same sink class: the checkpoint checks that it is the same
    pipeline."""

    def __init__(self, *args: Any, stop_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_after, self.chunks_written = stop_after, 0

    def write(self, data: list[list[Any]]) -> list[tuple[int, str]]:
        refused = super().write(data)
        self.chunks_written += 1
        if self.chunks_written == self.stop_after:
            os.kill(os.getpid(), signal.SIGINT)
        return refused


def migrate(target: str, *, stop_after: int | None) -> fs.RunReport:
    return fs.Pipeline(
        source=fs.SQLSource(f"sqlite:///{LEGACY}", table="customers", batch_rows=500),
        model=Customer,
        sink=CtrlCAfterChunks(target, TABLE, upsert_key="id", batch_rows=200, stop_after=stop_after),
        errors=fs.JSONLSink(DLQ),
        checkpoint=CHECKPOINT,
        checkpoint_interval=0,  # after every chunk (default: at most once a second)
        chunk_bytes="32KB",  # small chunks, so that this small table makes several
        max_bytes_in_flight="16MB",
    ).run()


def main() -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)  # every run of the example starts afresh
    os.makedirs(OUT_DIR)
    target = os.environ.get(ENV)
    if target:
        print(f"target: PostgreSQL at {redact_url(target)} (from {ENV})")
    else:
        target = f"sqlite:///{os.path.join(OUT_DIR, 'target.db')}"
        print(f"{ENV} is not set, so this run migrates SQLite -> SQLite ({os.path.relpath(target[len('sqlite:///'):])}).")
        print(f"  For PostgreSQL: {ENV}=postgresql://user:password@host:5432/dbname python examples/sqlite_to_postgres.py")
    make_legacy_db(LEGACY)
    print(f"legacy database: {os.path.relpath(LEGACY)} ({ROWS:,} customers, 4 bad)")
    engine = make_target_table(target)
    print(f"target table {TABLE} created (PRIMARY KEY id, UNIQUE email, CHECK balance >= 0)")

    def rows_in_target() -> int:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE}").scalar_one())

    first = migrate(target, stop_after=3)
    print(f"attempt 1: interrupted={first.interrupted} ({first.stop_signal}); checkpoint at record {first.rows_read:,} "
          f"in {os.path.relpath(CHECKPOINT)}; {rows_in_target():,} rows already in the target")
    print("  (the target commits the checkpoint position with each chunk: the resume starts right after its last chunk)")

    second = migrate(target, stop_after=None)
    print(f"attempt 2: resumed from record {second.resumed_from_record:,}; interrupted={second.interrupted}")
    print(f"read {second.rows_read:,} records: {second.rows_valid:,} valid, {second.rows_invalid:,} invalid, {second.rows_filtered} filtered")
    print(f"invalid by stage: {json.dumps(second.invalid_by_stage, sort_keys=True)}")
    with engine.connect() as conn:
        count, distinct = conn.exec_driver_sql(f"SELECT count(*), count(DISTINCT id) FROM {TABLE}").one()
    print(f"target table {TABLE}: {count:,} rows, {distinct:,} distinct ids (none doubled by the resume)")

    third = migrate(target, stop_after=None)
    print(f"attempt 3: the checkpoint says done, nothing re-read: {third.rows_read:,} read, {third.rows_valid:,} valid "
          f"(the saved report); {rows_in_target():,} rows in the target")

    print_dlq(DLQ, where=lambda rec: f"id {rec['raw']['id']}", message=lambda msg: msg.splitlines()[0][:110])
    engine.dispose()
    assert second.rows_read == second.rows_valid + second.rows_invalid + second.rows_filtered  # nothing lost
    return 0


if __name__ == "__main__":
    sys.exit(main())
