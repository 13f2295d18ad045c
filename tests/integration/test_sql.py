"""SQLSource / SQLSink against real SQLite files and a real PostgreSQL server (tests/pg_server.py)."""

from __future__ import annotations

import datetime as dt
import enum
import json
import pathlib
import sqlite3
import threading
import time
import uuid
from decimal import Decimal
from typing import Literal

import pytest
from pydantic import AwareDatetime, BaseModel, Field, create_model

import flowschema_core as fs
from tests.helpers import run_with_dlq
from tests.integration.pipeline_models import Slow

sa = pytest.importorskip("sqlalchemy")


def _engine(url: str):
    from flowschema_core.sql_engine import create_engine

    return create_engine(url)


class Customer(BaseModel):
    id: int
    name: str
    email: str
    balance: Decimal = Field(max_digits=12, decimal_places=2)
    joined: AwareDatetime


def _legacy_sqlite(path: pathlib.Path, n: int) -> str:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, balance TEXT, joined TEXT)")
    rows = [(i, f"name {i}", f"c{i}@example.com", f"{i}.25", "2024-01-01T00:00:00+01:00") for i in range(1, n + 1)]
    rows[99] = (100, "broke", "c100@example.com", "-5.00", "2024-01-01T00:00:00Z")  # CHECK (balance >= 0)
    rows[199] = (200, "copycat", "c7@example.com", "1.00", "2024-01-01T00:00:00Z")  # UNIQUE (email)
    con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_sqlite_to_postgres_migration_with_refused_rows_and_safe_rerun(tmp_path: pathlib.Path, postgres_db_url: str) -> None:
    legacy = _legacy_sqlite(tmp_path / "legacy.db", 1000)
    pg = _engine(postgres_db_url)
    with pg.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, "
            "balance NUMERIC(12, 2) CHECK (balance >= 0), joined TIMESTAMPTZ)"
        )

    def migrate() -> tuple[fs.RunReport, list[dict]]:
        sink = fs.SQLSink(postgres_db_url, "customers", upsert_key="id", batch_rows=64)
        return run_with_dlq(fs.SQLSource(legacy, table="customers", batch_rows=100), Customer, sink, tmp_path, chunk_bytes="8KB")

    report, dlq = migrate()
    assert report.rows_read == 1000 and report.rows_valid == 998 and report.invalid_by_stage == {"sink": 2}
    assert report.chunks > 3
    assert [(d["record"], d["stage"], d["raw"]["id"]) for d in dlq] == [(100, "sink", 100), (200, "sink", 200)]
    assert "violates check constraint" in dlq[0]["errors"][0]["msg"]
    assert "duplicate key value violates unique constraint" in dlq[1]["errors"][0]["msg"]
    assert dlq[0]["errors"][0]["type"] == "sink_refused"
    with pg.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM customers").one() == (998, 998)
        got = conn.exec_driver_sql("SELECT balance, joined FROM customers WHERE id = 3").one()
        assert got == (Decimal("3.25"), dt.datetime(2023, 12, 31, 23, 0, tzinfo=dt.timezone.utc))

    # A re-run (say after a crash) updates in place: nothing duplicated, changes applied.
    con = sqlite3.connect(tmp_path / "legacy.db")
    con.execute("UPDATE customers SET name = 'renamed' WHERE id = 5")
    con.commit()
    con.close()
    report2, dlq2 = migrate()
    assert report2.rows_valid == 998 and len(dlq2) == 2
    with pg.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM customers").one() == (998, 998)
        assert conn.exec_driver_sql("SELECT name FROM customers WHERE id = 5").scalar() == "renamed"
    pg.dispose()


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


class Inner(BaseModel):
    label: str
    when: dt.date
    amount: Decimal


class Typed(BaseModel):
    id: int
    ratio: float
    ok: bool
    name: str = Field(max_length=20)
    blob: bytes
    price: Decimal = Field(max_digits=10, decimal_places=3)
    at: AwareDatetime
    day: dt.date
    clock: dt.time
    uid: uuid.UUID
    kind: Literal["x", "y"]
    level: int
    note: str | None = None
    inner: Inner
    tags: list[str]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_type_round_trips_through_a_created_table(backend: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'typed.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_db_url")
    uid = uuid.uuid4()
    record = {
        "id": 1, "ratio": 0.25, "ok": True, "name": "ünïcode '; --", "blob": "b", "price": "1234567.125",
        "at": "2024-05-05T10:00:00+02:00", "day": "2024-02-29", "clock": "12:34:56.789", "uid": str(uid),
        "kind": "y", "level": 2, "note": None,
        "inner": {"label": "l", "when": "2024-01-02", "amount": "1.5"}, "tags": ["a", "b"],
    }
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(record) + "\n" + json.dumps({**record, "id": 2, "note": "n", "ok": False}) + "\n")
    report, dlq = run_with_dlq(fs.JSONLSource(src), Typed, fs.SQLSink(url, "typed"), tmp_path)
    assert report.rows_valid == 2 and dlq == []

    # Read back by table: the reflected column types decode JSON, dates and UUIDs.
    # SQLite has no time zones: it keeps the UTC wall time, so read it as a plain datetime.
    Back = create_model("Back", __base__=Typed, at=(dt.datetime, ...)) if backend == "sqlite" else Typed
    out = tmp_path / "back.jsonl"
    report, dlq = run_with_dlq(fs.SQLSource(url, table="typed"), Back, fs.JSONLSink(out), tmp_path)
    assert report.rows_valid == 2 and dlq == []
    back = sorted((Back.model_validate_json(line) for line in out.read_text().splitlines()), key=lambda m: m.id)
    expected = Back.model_validate(record)
    utc = expected.at.astimezone(dt.timezone.utc)
    assert back[0] == expected.model_copy(update={"at": utc.replace(tzinfo=None) if backend == "sqlite" else utc})
    assert back[1].note == "n" and back[1].ok is False

    engine = _engine(url)
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("typed")}
    engine.dispose()
    assert isinstance(columns["id"], sa.BigInteger) and isinstance(columns["price"], sa.Numeric)
    assert columns["price"].precision == 10 and columns["price"].scale == 3
    assert isinstance(columns["name"], sa.String) and columns["name"].length == 20
    if backend == "postgresql":
        assert columns["at"].timezone is True
        assert type(columns["inner"]).__name__ == "JSONB" and type(columns["uid"]).__name__ == "UUID"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_names_cannot_inject_sql(backend: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'inj.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_db_url")
    engine = _engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE y (v INTEGER)")
        conn.exec_driver_sql("INSERT INTO y VALUES (42)")
    table = 'x"; DROP TABLE y; --'
    column = "c'); DROP TABLE y; --\""
    Evil = create_model("Evil", id=(int, ...), **{column: (str, ...)})
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, column: "'); DROP TABLE y; --"}) + "\n")
    report, dlq = run_with_dlq(fs.JSONLSource(src), Evil, fs.SQLSink(url, table, upsert_key="id"), tmp_path)
    assert report.rows_valid == 1 and dlq == []
    run_with_dlq(fs.JSONLSource(src), Evil, fs.SQLSink(url, table, upsert_key="id"), tmp_path)  # the upsert path too
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT v FROM y").scalar() == 42
    assert set(sa.inspect(engine).get_table_names()) == {"y", table}
    engine.dispose()
    out = tmp_path / "back.jsonl"
    report, _ = run_with_dlq(fs.SQLSource(url, table=table), Evil, fs.JSONLSink(out), tmp_path)
    assert json.loads(out.read_text()) == {"id": 1, column: "'); DROP TABLE y; --"}
    # Values in a query are bound, never formatted in.
    params = {"name": "x' OR '1'='1"}
    rows = list(fs.SQLSource(url, query="SELECT v FROM y WHERE 'a' = :name", params=params).records())
    assert rows == []


def test_sqlite_sink_refuses_rows_the_database_rejects(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'out.db'}"
    engine = _engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty > 0))")
    engine.dispose()

    class Row(BaseModel):
        id: int
        qty: int | None = None

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "qty": None if i == 7 else (-1 if i == 300 else i)}) + "\n" for i in range(1, 501)))
    sink = fs.SQLSink(url, "t", batch_rows=50)
    report, dlq = run_with_dlq(fs.JSONLSource(src), Row, sink, tmp_path, chunk_bytes="4KB")
    assert report.rows_valid == 498 and [d["record"] for d in dlq] == [7, 300]
    assert "NOT NULL constraint failed" in dlq[0]["errors"][0]["msg"] and "CHECK constraint failed" in dlq[1]["errors"][0]["msg"]
    engine = _engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 498
    engine.dispose()
    # Without an upsert key a re-run would duplicate: the primary key refuses every row instead.
    report, dlq = run_with_dlq(fs.JSONLSource(src), Row, fs.SQLSink(url, "t", batch_rows=50), tmp_path)
    assert report.rows_valid == 0 and len(dlq) == 500 and "UNIQUE constraint failed" in dlq[0]["errors"][0]["msg"]


def _counting_sqlite(path: pathlib.Path, n: int) -> str:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE nums (id INTEGER PRIMARY KEY, label TEXT)")
    con.executemany("INSERT INTO nums VALUES (?, ?)", ((i, f"label {i}") for i in range(1, n + 1)))
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_sqlite_source_streams_rows_before_the_query_ends(tmp_path: pathlib.Path) -> None:
    url = _counting_sqlite(tmp_path / "n.db", 5000)
    # abs(-2**63) raises "integer overflow" when SQLite reaches row 3001: rows before it
    # can only have arrived if the source streams instead of fetching everything first.
    query = "SELECT id, CASE WHEN id > :limit THEN abs(-9223372036854775807 - 1) ELSE id END AS v FROM nums ORDER BY id"
    got = []
    with pytest.raises(fs.SourceError, match="integer overflow"):
        for _, row in fs.SQLSource(url, query=query, params={"limit": 3000}, batch_rows=500).records():
            got.append(row)
    # sqlite3 steps one row ahead, so the error can surface with row 3000 still unread.
    assert len(got) >= 2500 and got[:3] == [[1, 1], [2, 2], [3, 3]]


def test_postgres_source_uses_a_server_side_cursor(postgres_db_url: str) -> None:
    # 1/0 fails on the server at row 30001; a client-side fetchall would fail before any row.
    query = "SELECT g, CASE WHEN g > 30000 THEN 1 / (g - g) ELSE g END AS v FROM generate_series(1, 100000) AS g"
    source = fs.SQLSource(postgres_db_url, query=query, batch_rows=1000)
    got = 0
    with pytest.raises(fs.SourceError, match="division by zero"):
        for _ in source.records():
            got += 1
    source.close()
    assert got == 30000


def test_dropped_postgres_connection_is_retried(tmp_path: pathlib.Path, postgres_db_url: str) -> None:
    legacy = _counting_sqlite(tmp_path / "n.db", 20000)

    class Num(BaseModel):
        id: int
        label: str

    sink = fs.SQLSink(postgres_db_url, "nums", upsert_key="id", batch_rows=200)
    killer_engine = _engine(postgres_db_url)
    killed: list[int] = []

    done = threading.Event()

    def kill_while_rows_land() -> None:
        # Once rows land, drop the sink's connections every 0.1 s, so some drops hit a
        # transaction in flight (a drop between chunks is healed by the pool's pre-ping
        # without a retry) -- until the sink has retried twice. Killing on until the run
        # ends made the test flaky: on a loaded machine a reconnect plus a transaction can
        # take longer than 0.1 s, so every attempt was killed and the retry budget ran out.
        deadline = time.monotonic() + 60
        with killer_engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            while time.monotonic() < deadline and not done.is_set() and sink.retries < 2:
                try:
                    n = conn.exec_driver_sql("SELECT count(*) FROM nums").scalar()
                except sa.exc.ProgrammingError:  # table not created yet
                    conn.rollback()
                    n = 0
                if n:
                    killed.extend(conn.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()").scalars())
                time.sleep(0.1)

    killer = threading.Thread(target=kill_while_rows_land)
    killer.start()
    try:
        # Slow enough (~4 s) that the run is still writing when the killer strikes,
        # however fast the machine: otherwise there may be no connection left to drop.
        report, dlq = run_with_dlq(fs.SQLSource(legacy, table="nums", batch_rows=500), Num, sink, tmp_path, chunk_bytes="16KB",
                                   hooks=[Slow(0.0002)])
    finally:
        done.set()
        killer.join()
    assert killed, "no sink connection was terminated"
    assert report.rows_valid == 20000 and dlq == []
    assert sink.retries >= 1
    with killer_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM nums").one() == (20000, 20000)
    killer_engine.dispose()


def test_unreachable_database_gives_up_after_retry_budget(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("psycopg")
    from tests.pg_server import free_port

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/db"  # nothing listens there
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1}\n')

    class Row(BaseModel):
        id: int

    sink = fs.SQLSink(url, "t", retry_s=1.0)
    started = time.monotonic()
    with pytest.raises(fs.SinkError, match="could not get it back within 1 s"):
        run_with_dlq(fs.JSONLSource(src), Row, sink, tmp_path)
    assert 0.5 < time.monotonic() - started < 10 and sink.retries >= 2
    source = fs.SQLSource(url.replace("nobody@", "nobody:pw-secret@"), table="t", reconnect_attempts=2)
    with pytest.raises(fs.SourceConnectionError, match=r"nobody:\*\*\*@127\.0\.0\.1.* in 2 attempts") as info:
        list(source.records())
    assert source.reconnects == 2 and "pw-secret" not in str(info.value)


def test_source_errors_name_the_problem(tmp_path: pathlib.Path) -> None:
    url = _counting_sqlite(tmp_path / "n.db", 3)
    with pytest.raises(fs.SourceError, match="no such table 'missing'"):
        list(fs.SQLSource(url, table="missing").records())
    # SQLite raises these as OperationalError, as it does a locked database: they once
    # took 8 reconnections (16 s) to end in "lost the connection".
    for query, message in (("SELEC nope", "syntax error"), ("SELECT * FROM missing", "no such table: missing")):
        source = fs.SQLSource(url, query=query)
        with pytest.raises(fs.SourceError, match=message) as refused:
            list(source.records())
        assert not isinstance(refused.value, fs.SourceConnectionError) and source.reconnects == 0
    with pytest.raises(fs.ConfigError, match="exactly one"):
        fs.SQLSource(url)
    with pytest.raises(fs.ConfigError, match="exactly one"):
        fs.SQLSource(url, table="nums", query="SELECT 1")


@pytest.mark.parametrize("server", ["postgres_url", "mariadb_url"])
def test_a_database_that_does_not_exist_is_refused_at_once_not_retried(request: pytest.FixtureRequest, server: str) -> None:
    url = request.getfixturevalue(server).rsplit("/", 1)[0] + "/no_such_database"
    source = fs.SQLSource(url, table="t", key="id")
    with pytest.raises(fs.SourceError, match="no_such_database") as refused:
        list(source.records())
    assert not isinstance(refused.value, fs.SourceConnectionError) and source.reconnects == 0


def test_registry_builds_sql_sources_and_sinks(tmp_path: pathlib.Path) -> None:
    from flowschema_core.registry import sink_for, source_for

    source = source_for("sqlite:///legacy.db", table="t")
    assert isinstance(source, fs.SQLSource) and source.table == "t"
    sink = sink_for("postgresql+psycopg://user:secret@db.example/x", table="t", upsert_key="id")
    assert isinstance(sink, fs.SQLSink) and "secret" not in sink.name
    assert isinstance(source_for("postgresql://u@h/db", query="SELECT 1"), fs.SQLSource)


@pytest.mark.parametrize("upsert_key", [None, ["id"]])
def test_checkpointed_run_into_sqlite_resumes_without_duplicates(tmp_path, monkeypatch, upsert_key):
    """A crash after some chunks were committed, long after the last state.json: the
    database's own checkpoint row (committed with each chunk) says where to go on, so the
    resumed run writes every row exactly once -- with or without an upsert key."""
    import sqlalchemy as sa

    import flowschema_core as fs
    from flowschema_core import run as run_mod
    from tests.integration.pipeline_models import Item, write_items_csv

    src = tmp_path / "items.csv"
    write_items_csv(src, 3_000, bad_every=100)
    url = f"sqlite:///{tmp_path / 'out.db'}"

    def make():
        return fs.Pipeline(fs.CSVSource(src), Item, fs.SQLSink(url, "items", upsert_key=upsert_key), fs.JSONLSink(tmp_path / "e.jsonl"),
                           executor="inline", chunk_bytes="4KiB", checkpoint=tmp_path / "ckpt", checkpoint_interval=3600)

    real_write = run_mod.Run._write
    calls = {"n": 0}

    def crash_after_some_chunks(self, result):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt  # stands in for a crash: chunks 1-11 are committed, no state.json since the start
        return real_write(self, result)

    monkeypatch.setattr(run_mod.Run, "_write", crash_after_some_chunks)
    first = make().run()
    assert first.interrupted
    monkeypatch.setattr(run_mod.Run, "_write", real_write)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        written = conn.exec_driver_sql('SELECT count(*) FROM "items"').scalar()
        state = json.loads(conn.exec_driver_sql("SELECT state FROM flowschema_checkpoint").scalar())
    assert 0 < written < 2_970 and state["chunks_done"] == 11 and state["report"]["rows_valid"] == written

    report = make().run()
    assert report.rows_read == 3_000 and report.balanced and report.resumed_from_record == state["report"]["rows_read"]
    with engine.connect() as conn:
        ids = [r[0] for r in conn.exec_driver_sql('SELECT id FROM "items" ORDER BY id')]
    assert len(ids) == len(set(ids)) == report.rows_valid == 3_000 - 59
    dlq = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert len(dlq) == report.rows_invalid == 59 and len({d["record"] for d in dlq}) == 59
