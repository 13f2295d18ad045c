"""Distributed mode on an SQL source with a key: actors plan key ranges and read them
from the database themselves; outputs byte-equal to an inline run of the same source."""

from __future__ import annotations

import json
import sqlite3

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")
pytest.importorskip("sqlalchemy")

import sqlalchemy as sa

import flowschema_core as fs
from flowschema_ray import RayExecutor
from tests.helpers import run_to_jsonl
from tests.ray.ray_models import ExitOnMarker, Item, Slow, ctrl_c_after_ranges

ROWS = 1500


def _items(rows: int, poison: int | None = None) -> list[tuple]:
    """Items with gaps in the key (every 10th id missing), invalid prices and ids, nulls."""
    made = []
    for i in range(1, rows + 1):
        key = i + i // 9  # keys with gaps: ranges are cut by row counts, not by key values
        name = "POISON" if i == poison else f"item {i}"
        price = "12;5" if i % 89 == 0 else (None if i % 61 == 0 else f"{i % 1000}.{i % 100:02d}")
        made.append((-key if i % 83 == 0 else key, name, price, "café ✓" if i % 7 == 0 else None))
    return made


def _sqlite(path, rows: int, poison: int | None = None) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price TEXT, note TEXT)")
        db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", _items(rows, poison))
    return f"sqlite:///{path}"


def test_sqlite_key_ranges_equal_the_inline_run(ray_session, tmp_path):
    url = _sqlite(tmp_path / "legacy.db", ROWS)
    source = fs.SQLSource(url, table="items", key="id", batch_rows=100)
    ref_report, ref_out, ref_dlq = run_to_jsonl(tmp_path, "inline", source, Item, "inline")
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="4KiB")
    report, out, dlq = run_to_jsonl(tmp_path, "dist", fs.SQLSource(url, table="items", key="id", batch_rows=100), Item, executor,
                                    max_bytes_in_flight="16KiB", chunk_bytes="4KiB")
    assert out == ref_out
    assert dlq == ref_dlq  # record numbers global and exact
    assert ref_report.rows_invalid > 30
    assert (report.rows_read, report.rows_valid, report.invalid_by_stage) == (ROWS, ref_report.rows_valid, ref_report.invalid_by_stage)
    assert report.bytes_through_driver == 0
    assert report.chunks > 5 and any("key ranges" in note for note in report.notes)
    assert report.peak_bytes_in_flight <= 16 * 1024


def test_a_query_source_with_a_relative_sqlite_path(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the actors' working directory is not the driver's
    _sqlite("rel.db", 400)
    query = "SELECT id, name, price, note FROM items WHERE id % :m != 0"

    def source():
        return fs.SQLSource("sqlite:///rel.db", query=query, params={"m": 5}, key="id", batch_rows=64)

    _, ref_out, ref_dlq = run_to_jsonl(tmp_path, "inline", source(), Item, "inline")
    report, out, dlq = run_to_jsonl(tmp_path, "dist", source(), Item, RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB"))
    assert (out, dlq) == (ref_out, ref_dlq)
    assert report.chunks > 3 and report.bytes_through_driver == 0


@pytest.mark.parametrize("server", ["postgres_db_url", "mariadb_db_url"])
def test_database_server_key_ranges_equal_the_inline_run(ray_session, server, request, tmp_path):
    url = request.getfixturevalue(server)  # a fresh database on the session's real server
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        charset = " CHARACTER SET utf8mb4" if engine.dialect.name in ("mysql", "mariadb") else ""  # MariaDB's default is latin1
        conn.execute(sa.text(f"CREATE TABLE items (id integer PRIMARY KEY, name text, price text, note text){charset}"))
        conn.execute(sa.text("INSERT INTO items VALUES (:i, :n, :p, :o)"), [dict(zip("inpo", row)) for row in _items(800)])
    engine.dispose()

    def source():
        return fs.SQLSource(url, table="items", key="id", batch_rows=50)

    ref_report, ref_out, ref_dlq = run_to_jsonl(tmp_path, "inline", source(), Item, "inline")
    report, out, dlq = run_to_jsonl(tmp_path, "dist", source(), Item, RayExecutor(num_actors=2, distributed=True, range_bytes="4KiB"))
    assert (out, dlq) == (ref_out, ref_dlq)
    assert report.rows_read == 800 == ref_report.rows_read and report.chunks > 3 and report.bytes_through_driver == 0


def test_a_row_that_kills_its_actor_is_narrowed_down_to(ray_session, tmp_path):
    items = _items(300, poison=123)
    url = _sqlite(tmp_path / "poison.db", 300, poison=123)
    source = fs.SQLSource(url, table="items", key="id")
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="1KiB", max_attempts=1)
    report, out, dlq = run_to_jsonl(tmp_path, "dist", source, Item, executor, hooks=[ExitOnMarker("POISON")], chunk_bytes="1KiB")
    _, ref_out, ref_dlq = run_to_jsonl(tmp_path, "inline", fs.SQLSource(url, table="items", key="id"), Item, "inline")
    poisoned = [e for e in dlq if e["stage"] == "worker"]
    in_key_order = sorted(row[0] for row in items).index(items[122][0]) + 1  # negative ids come first
    assert [e["record"] for e in poisoned] == [in_key_order] and poisoned[0]["raw"]["name"] == "POISON"
    assert [e for e in dlq if e["stage"] != "worker"] == ref_dlq
    assert report.rows_read == 300 and report.rows_invalid == len(ref_dlq) + 1
    ref_lines = [line for line in ref_out.splitlines() if b'"POISON"' not in line]
    assert out.splitlines() == ref_lines


def test_sql_sources_that_do_not_qualify(tmp_path):
    from flowschema_ray.distributed import unsupported

    url = _sqlite(tmp_path / "q.db", 3)

    def why(source):
        return unsupported(fs.Pipeline(source, Item, fs.JSONLSink(tmp_path / "o.jsonl"), executor="inline"))

    assert why(fs.SQLSource(url, table="items", key="id")) is None
    assert "no key=" in why(fs.SQLSource(url, table="items"))
    assert "in-memory" in why(fs.SQLSource("sqlite://", table="items", key="id"))


def test_a_checkpointed_sql_run_stopped_midway_resumes_by_its_key_ranges(ray_session, tmp_path):
    """The checkpoint holds the key ranges (not the source object, rebuilt from the
    pipeline's on resume); a run stopped by Ctrl-C after some ranges resumes to the inline output."""
    url = _sqlite(tmp_path / "ck.db", ROWS)
    checkpoint, state = tmp_path / "ckpt", tmp_path / "ckpt" / "state.json"
    _, ref_out, ref_dlq = run_to_jsonl(tmp_path, "inline", fs.SQLSource(url, table="items", key="id"), Item, "inline")

    def run(hooks):
        return run_to_jsonl(tmp_path, "dist", fs.SQLSource(url, table="items", key="id"), Item,
                            RayExecutor(num_actors=2, distributed=True, range_bytes="4KiB"), hooks=hooks, chunk_bytes="4KiB",
                            checkpoint=checkpoint, checkpoint_interval=0)

    stopper = ctrl_c_after_ranges(state, 2)
    first = fs.Pipeline(fs.SQLSource(url, table="items", key="id"), Item, fs.JSONLSink(tmp_path / "dist.jsonl"),
                        fs.JSONLSink(tmp_path / "dist.errors.jsonl"), hooks=[Slow(0.002)], chunk_bytes="4KiB", checkpoint=checkpoint,
                        checkpoint_interval=0, executor=RayExecutor(num_actors=2, distributed=True, range_bytes="4KiB")).run()
    stopper.join()
    assert first.interrupted and not (tmp_path / "dist.jsonl").exists()
    assert "source" not in json.loads(state.read_text())["ranges"]["desc"]
    report, out, dlq = run([Slow(0.002)])
    assert (out, dlq) == (ref_out, ref_dlq)
    assert report.rows_read == ROWS and 2 <= report.ranges_from_checkpoint < report.chunks


def test_a_null_key_is_refused_as_the_single_driver_mode_refuses_it(ray_session, tmp_path):
    _sqlite(tmp_path / "n.db", 50)
    query = "SELECT CASE WHEN id = 7 THEN NULL ELSE id END AS k, name, price, note, id FROM items"
    source = fs.SQLSource(f"sqlite:///{tmp_path / 'n.db'}", query=query, key="k")
    with pytest.raises(fs.SourceError, match="no value in the key column 'k'"):
        run_to_jsonl(tmp_path, "inline", source, Item, "inline")
    with pytest.raises(fs.SourceError, match="no value in the key column 'k'"):
        run_to_jsonl(tmp_path, "dist", fs.SQLSource(f"sqlite:///{tmp_path / 'n.db'}", query=query, key="k"), Item,
                     RayExecutor(num_actors=1, distributed=True))


def test_rows_that_grow_along_the_table_are_read_a_page_at_a_time(ray_session, tmp_path):
    """The rows per range come from the first rows' size; later rows 200x larger make a
    range far larger than planned: it is read and written a page at a time, same output."""
    url = _sqlite(tmp_path / "grow.db", 600)
    with sqlite3.connect(tmp_path / "grow.db") as db:
        db.execute("UPDATE items SET note = printf('%.*c', 4000, 'x') WHERE id > 300")
    _, ref_out, ref_dlq = run_to_jsonl(tmp_path, "inline", fs.SQLSource(url, table="items", key="id"), Item, "inline")
    report, out, dlq = run_to_jsonl(tmp_path, "dist", fs.SQLSource(url, table="items", key="id", batch_rows=20), Item,
                                    RayExecutor(num_actors=2, distributed=True, range_bytes="64KiB"), chunk_bytes="64KiB")
    assert (out, dlq) == (ref_out, ref_dlq) and report.rows_read == 600


def test_a_table_that_changes_during_the_run_is_a_source_error(tmp_path):
    from flowschema_core import range_io, range_work
    from flowschema_core.worker import ChunkProcessor, WorkerSpec

    url = _sqlite(tmp_path / "live.db", 200)
    desc = range_work.describe(fs.SQLSource(url, table="items", key="id"), 2048)
    units = desc.pop("units")
    with sqlite3.connect(tmp_path / "live.db") as db:  # a row lands inside the first range after planning
        db.execute("INSERT INTO items VALUES (0, 'late', '1.00', NULL)")
    staging = {k: range_io.make_staging(tmp_path / f"{k}.jsonl") for k in ("sink", "dlq")}
    try:
        with pytest.raises(fs.SourceError, match="the table changed during the run"):
            range_work.process(ChunkProcessor(WorkerSpec(Item)), desc, {**units[0], "index": 0}, staging, "r1", 0)
    finally:
        for place in staging.values():
            range_io.remove_staging(place)


def test_sql_record_timeout_runs_in_the_single_driver_mode(tmp_path):
    from flowschema_ray.distributed import unsupported

    url = _sqlite(tmp_path / "t.db", 3)
    pipeline = fs.Pipeline(fs.SQLSource(url, table="items", key="id"), Item, fs.JSONLSink(tmp_path / "o.jsonl"),
                           executor=RayExecutor(num_actors=1), record_timeout=5)
    assert "record_timeout=" in unsupported(pipeline)
