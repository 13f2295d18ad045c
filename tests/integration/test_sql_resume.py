"""SQLSource with key=: connections killed server-side mid-read, on real MariaDB and
PostgreSQL servers (tests/mariadb_server.py, tests/pg_server.py); MariaDB as a source and a sink."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest
from pydantic import BaseModel, Field

import flowschema_core as fs
from tests.helpers import run_with_dlq

sa = pytest.importorskip("sqlalchemy")

N = 10_000


def _engine(url: str) -> Any:
    from flowschema_core.sql_engine import create_engine

    return create_engine(url, isolation_level="AUTOCOMMIT")


def kill_other_connections(admin: Any) -> int:
    """Kill, server-side, every connection to the admin's database except the admin's own;
    return how many were killed (MariaDB: KILL <id>; PostgreSQL: pg_terminate_backend)."""
    with admin.connect() as conn:
        if admin.dialect.name == "postgresql":
            return len(conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").all())
        ids = conn.exec_driver_sql(
            "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()").scalars().all()
        for cid in ids:
            conn.exec_driver_sql(f"KILL {int(cid)}")
        return len(ids)


def _numbers(url: str) -> Any:
    admin = _engine(url)
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE nums (id INTEGER PRIMARY KEY, label VARCHAR(40) NOT NULL)")
        if admin.dialect.name == "postgresql":
            conn.exec_driver_sql(f"INSERT INTO nums SELECT g, 'label ' || g FROM generate_series(1, {N}) AS g")
        else:  # MariaDB's SEQUENCE engine: seq_1_to_N is a table of 1..N
            conn.exec_driver_sql(f"INSERT INTO nums SELECT seq, CONCAT('label ', seq) FROM seq_1_to_{N}")
    return admin


@pytest.fixture(params=["mariadb", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("mariadb_db_url" if request.param == "mariadb" else "postgres_db_url"))


@pytest.mark.parametrize("read", ["table", "query"])
def test_keyed_read_resumes_after_connections_killed_mid_read(db_url: str, read: str) -> None:
    admin = _numbers(db_url)
    options: dict[str, Any] = {"table": "nums"} if read == "table" else {"query": "SELECT id, label FROM nums WHERE id > :floor", "params": {"floor": 0}}
    source = fs.SQLSource(db_url, key="id", batch_rows=700, **options)
    ids: list[int] = []
    killed = 0
    try:
        for _, row in source.records():
            ids.append(row[0])
            if len(ids) in (1_500, 4_242, 9_000):  # three drops, each with pages still to read
                killed += kill_other_connections(admin)
    finally:
        source.close()
        admin.dispose()
    assert killed >= 3
    assert source.reconnects >= 3
    assert ids == list(range(1, N + 1))  # no gap, no duplicate, in key order
    assert any("reconnected" in note for note in source.notes)


def test_unkeyed_read_says_a_key_makes_it_resumable(db_url: str) -> None:
    admin = _numbers(db_url)
    # Rows of 2 KB: a result far larger than the socket's buffers, so the kill is felt mid-read.
    source = fs.SQLSource(db_url, query="SELECT id, REPEAT(label, 200) AS label FROM nums ORDER BY id", batch_rows=500)
    got = 0
    with pytest.raises(fs.SourceConnectionError, match=r"cannot resume without a key: pass key=") as info:
        for _ in source.records():
            got += 1
            if got == 2_000:
                assert kill_other_connections(admin) >= 1
    source.close()
    admin.dispose()
    # Rows already in the socket's buffer may still arrive after the kill.
    done = int(re.search(r"after (\d+) rows", str(info.value)).group(1))  # type: ignore[union-attr]
    assert 2_000 <= done == got < N and info.value.transient


def test_a_login_refused_on_reconnection_stops_at_once_naming_the_redacted_url(mariadb_url: str, mariadb_db_url: str) -> None:
    admin = _numbers(mariadb_db_url)
    db = mariadb_db_url.rsplit("/", 1)[1]
    root = _engine(mariadb_url)
    with root.connect() as conn:
        conn.exec_driver_sql("CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'hunter2-secret'")
        conn.exec_driver_sql(f"GRANT SELECT ON `{db}`.* TO 'reader'@'127.0.0.1'")
    url = mariadb_db_url.split("://", 1)[0] + "://reader:hunter2-secret@" + mariadb_db_url.split("@", 1)[1]
    source = fs.SQLSource(url, table="nums", key="id", batch_rows=1_000, reconnect_attempts=2)
    got = 0
    try:
        with pytest.raises(fs.SourceError, match=r"Access denied") as info:
            for _ in source.records():
                got += 1
                if got == 1_500:  # the reader may not log in again: its reconnection is refused
                    with root.connect() as conn:
                        conn.exec_driver_sql("DROP USER 'reader'@'127.0.0.1'")
                    assert kill_other_connections(admin) >= 1
    finally:
        source.close()
        admin.dispose()
        root.dispose()
    message = str(info.value)
    assert "hunter2-secret" not in message and "reader:***@127.0.0.1" in message and "after 2000 rows" in message
    # The lost connection is retried; the refused login is not (no retry mends it).
    assert not isinstance(info.value, fs.SourceConnectionError) and source.reconnects == 1


def test_key_must_be_unique_and_a_column(mariadb_db_url: str) -> None:
    admin = _numbers(mariadb_db_url)
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE dup (id INTEGER, label TEXT)")
        conn.exec_driver_sql("INSERT INTO dup VALUES (1, 'a'), (1, 'b'), (2, 'c')")
    with pytest.raises(fs.ConfigError, match="must be the primary key or a unique column"):
        list(fs.SQLSource(mariadb_db_url, table="dup", key="id").records())
    with pytest.raises(fs.ConfigError, match="not a column"):
        list(fs.SQLSource(mariadb_db_url, table="nums", key="nope").records())
    with pytest.raises(fs.SourceError, match="the key 'id' repeats"):
        list(fs.SQLSource(mariadb_db_url, query="SELECT id, label FROM dup", key="id").records())
    admin.dispose()


def test_checkpointed_keyed_read_resumes_by_key_not_by_rereading(mariadb_db_url: str, tmp_path: pathlib.Path) -> None:
    """The checkpoint stores the last key; a resumed run's first query starts after it."""
    admin = _numbers(mariadb_db_url)

    class Num(BaseModel):
        id: int
        label: str

    def pipeline() -> fs.Pipeline:
        return fs.Pipeline(fs.SQLSource(mariadb_db_url, table="nums", key="id", batch_rows=500), Num, fs.JSONLSink(tmp_path / "out.jsonl"),
                           fs.JSONLSink(tmp_path / "errors.jsonl"), executor="inline", chunk_bytes="8KiB", checkpoint=tmp_path / "ckpt",
                           checkpoint_interval=0)

    from flowschema_core import run as run_mod

    real_write = run_mod.Run._write
    calls = {"n": 0}

    def stop_after_some_chunks(self: Any, result: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        real_write(self, result)

    run_mod.Run._write = stop_after_some_chunks  # type: ignore[method-assign]
    try:
        assert pipeline().run().interrupted
    finally:
        run_mod.Run._write = real_write  # type: ignore[method-assign]
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    after = state["source_position"]["after"]
    assert after == state["report"]["rows_read"] > 0

    # Count the rows the server's storage engine reads: a resume by key reads only the rest.
    def rows_scanned_so_far() -> int:
        with admin.connect() as conn:
            return sum(int(v) for _, v in conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Handler_read_%%'").all())

    before = rows_scanned_so_far()
    report = pipeline().run()
    rows_scanned = rows_scanned_so_far() - before
    admin.dispose()
    assert report.rows_read == N and report.rows_valid == N
    assert rows_scanned < N - after + 100  # not N: the first `after` rows were not read again
    ids = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert ids == list(range(1, N + 1))


class Customer(BaseModel):
    id: int
    name: str = Field(max_length=40)
    email: str = Field(max_length=80)
    balance: int


def test_mariadb_as_a_sink_sends_refused_rows_to_the_dlq(mariadb_db_url: str, tmp_path: pathlib.Path) -> None:
    admin = _engine(mariadb_db_url)
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(80) UNIQUE, "
                             "balance BIGINT CHECK (balance >= 0))")
    src = tmp_path / "in.jsonl"
    rows = [{"id": i, "name": f"n{i}", "email": f"c{i}@x", "balance": i} for i in range(1, 1001)]
    rows[99]["balance"] = -5  # CHECK
    rows[199]["email"] = "c7@x"  # UNIQUE
    rows[299]["name"] = "x" * 41  # fails the model
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report, dlq = run_with_dlq(fs.JSONLSource(src), Customer, fs.SQLSink(mariadb_db_url, "customers", batch_rows=64), tmp_path, chunk_bytes="8KB")
    assert report.rows_valid == 997 and report.invalid_by_stage == {"sink": 2, "validate": 1}
    assert [(d["record"], d["stage"]) for d in dlq] == [(100, "sink"), (200, "sink"), (300, "validate")]
    assert "CONSTRAINT `customers.balance` failed" in dlq[0]["errors"][0]["msg"] and "Duplicate entry" in dlq[1]["errors"][0]["msg"]
    with admin.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM customers").one() == (997, 997)

    # A re-run with upsert_key: ON DUPLICATE KEY UPDATE, nothing doubled, changes applied.
    rows[4]["name"] = "renamed"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report, dlq = run_with_dlq(fs.JSONLSource(src), Customer, fs.SQLSink(mariadb_db_url, "customers", upsert_key="id", batch_rows=64), tmp_path)
    # MySQL's ON DUPLICATE KEY UPDATE fires on any unique key: row 200's copied e-mail now
    # updates row 7 instead of being refused (docs/sql.md says so).
    assert report.rows_valid == 998 and sorted((d["record"], d["stage"]) for d in dlq) == [(100, "sink"), (300, "validate")]
    with admin.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM customers").one() == (997, 997)
        assert conn.exec_driver_sql("SELECT name FROM customers WHERE id = 5").scalar() == "renamed"
        assert conn.exec_driver_sql("SELECT name FROM customers WHERE id = 7").scalar() == "n200"
    admin.dispose()


def test_mysql_and_mariadb_urls_are_sql_sources_and_sinks(mariadb_db_url: str, tmp_path: pathlib.Path) -> None:
    from flowschema_core import cli, registry

    for scheme in ("mysql", "mysql+pymysql", "mariadb"):
        assert isinstance(registry.source_for(f"{scheme}://u:pw@h/db", table="t", key="id"), fs.SQLSource)
        sink = registry.sink_for(f"{scheme}://u:pw@h/db", table="t")
        assert isinstance(sink, fs.SQLSink) and "pw" not in sink.name
        assert registry.is_sql_source(f"{scheme}://u:pw@h/db")
    assert not registry.is_sql_source("orders.csv") and not registry.is_sql_source("https://h/x.json")

    # The CLI end to end, with the plain mysql:// scheme and --key.
    _numbers(mariadb_db_url).dispose()
    url = "mysql://" + mariadb_db_url.split("://", 1)[1]
    (tmp_path / "num_model.py").write_text("from pydantic import BaseModel\n\nclass Num(BaseModel):\n    id: int\n    label: str\n")
    import os
    import sys

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = cli.main(["run", url, "--table", "nums", "--key", "id", "--model", "num_model:Num", "--sink", str(tmp_path / "out.jsonl"),
                         "--executor", "inline", "--quiet"])
    finally:
        os.chdir(cwd)
        sys.modules.pop("num_model", None)
    assert code == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == N
    assert cli.main(["run", "data.csv", "--table", "t", "--model", "m:M", "--sink", "o.jsonl"]) == 2


class CommitAnswerEater:
    """A TCP proxy on loopback in front of PostgreSQL that, once armed, lets the ``n``-th
    COMMIT reach the server and then cuts the connection instead of passing the server's
    answer on: the client cannot tell whether its transaction landed."""

    def __init__(self, upstream_port: int, n: int) -> None:
        import socket
        import threading

        self.upstream_port, self.n, self.commits, self.cut = upstream_port, n, 0, 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            doomed = threading.Event()
            threading.Thread(target=self._pump, args=(client, server, doomed, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, doomed, False), daemon=True).start()

    def _pump(self, src: Any, dst: Any, doomed: Any, to_server: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not to_server and doomed.is_set():
                    with self.lock:
                        self.cut += 1
                    break  # the answer to the COMMIT is never passed on
                if to_server and b"Q\x00\x00\x00\x0bCOMMIT\x00" in data:
                    with self.lock:
                        self.commits += 1
                        if self.commits == self.n:
                            doomed.set()
                dst.sendall(data)
        except OSError:
            pass
        import socket

        for sock in (src, dst):  # shutdown, not just close: it wakes the other pump's recv and sends the FIN
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.mark.parametrize("lost_commit", [6, 9])
def test_a_commit_whose_answer_is_lost_is_not_redone(postgres_db_url: str, tmp_path: pathlib.Path, lost_commit: int) -> None:
    """Exactly once across the one ambiguous moment: the chunk's COMMIT landed, the answer
    did not. The sink must look its state row up, not write the chunk again."""
    from urllib.parse import urlsplit

    admin = _engine(postgres_db_url)
    with admin.connect() as conn:  # no key: a chunk written twice would show
        conn.exec_driver_sql("CREATE TABLE nums (id BIGINT NOT NULL, label TEXT NOT NULL)")
    parts = urlsplit(postgres_db_url)
    proxy = CommitAnswerEater(parts.port or 5432, lost_commit)
    proxied = postgres_db_url.replace(f":{parts.port}/", f":{proxy.port}/")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "label": f"label {i}"}) + "\n" for i in range(1, 5_001)))

    class Num(BaseModel):
        id: int
        label: str

    sink = fs.SQLSink(proxied, "nums", create=False, batch_rows=100)
    try:
        report, dlq = run_with_dlq(fs.JSONLSource(src), Num, sink, tmp_path, chunk_bytes="8KiB", checkpoint=tmp_path / "ckpt")
    finally:
        proxy.close()
    assert proxy.cut == 1 and sink.retries >= 1  # the answer was really lost, and the sink noticed
    assert report.rows_valid == 5_000 and dlq == []
    with admin.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM nums").one() == (5_000, 5_000)
    admin.dispose()
