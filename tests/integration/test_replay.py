"""``flowschema replay`` and ``DLQSource``: after a fix, exactly the rows the fix allows
come back; the rest are in a new DLQ with their original source, record and line; a
replay of a replay works; parse-stage records are re-read; what cannot be replayed is
counted and kept; bad input gets one line and exit 2."""

from __future__ import annotations

import gzip
import json

import pytest

import flowschema_core as fs
from flowschema_core import registry
from tests.helpers import read_jsonl
from tests.integration.pipeline_models import Item, Poison, write_items_csv
from tests.integration.replay_models import FixedOrder, Order, oracle_valid_ids, write_orders_csv
from tests.integration.test_cli import flowschema

MODELS = "tests.integration.replay_models"
ROWS = 3_000


def first_run(tmp_path):
    src, dlq = tmp_path / "orders.csv", tmp_path / "dlq.jsonl"
    write_orders_csv(src, ROWS)
    done = flowschema("run", src, "--model", f"{MODELS}:Order", "--sink", tmp_path / "out.jsonl", "--errors", dlq,
                      "--workers", "2", "--chunk-bytes", "16KiB", "--quiet")
    assert done.returncode == 0, done.stderr
    return src, dlq


def replay(tmp_path, dlq, model, name, *extra):
    sink, errors, report = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.errors.jsonl", tmp_path / f"{name}.report.json"
    done = flowschema("replay", dlq, "--model", f"{MODELS}:{model}", "--sink", sink, "--errors", errors, "--workers", "2",
                      "--chunk-bytes", "16KiB", "--report", report, *extra)
    assert done.returncode == 0, done.stderr
    return read_jsonl(sink), read_jsonl(errors), json.loads(report.read_text()), done.stdout


def lineage(records):
    return [(r["source"], r["record"], r["line"]) for r in records]


def test_replay_after_the_fix_recovers_exactly_the_rows_the_fix_allows(tmp_path):
    src, dlq = first_run(tmp_path)
    first = read_jsonl(dlq)
    # The oracle: plain csv + pydantic. Before the fix, UTF-8 and Order; after it, the
    # Latin-1 bytes decoded (--encoding latin-1) and FixedOrder.
    before, after = oracle_valid_ids(src, Order, "utf-8"), oracle_valid_ids(src, FixedOrder, "latin-1")
    assert len(first) == ROWS - len(before)
    recovered = sorted(after - before)
    assert len(recovered) > 100

    rows, errors, report, stdout = replay(tmp_path, dlq, "FixedOrder", "fixed", "--encoding", "latin-1")

    assert [r["id"] for r in rows] == recovered  # exactly those, in the DLQ's (source) order
    assert report["rows_read"] == len(first) == report["rows_valid"] + report["rows_invalid"] + report["rows_filtered"]
    assert report["rows_valid"] == len(recovered) and report["rows_invalid"] == len(errors)
    # The Latin-1 records were parse errors; re-read from raw_text with --encoding they pass.
    latin = [r for r in rows if r["id"] % 100 == 19 and r["id"] % 10 != 5 and r["id"] % 30 != 13 and r["id"] % 50 != 7]
    assert latin and all(r["name"] == f"café {r['id']}" for r in latin)
    # An empty qty is read under the null policy again (None), not as "".
    assert any(r["qty"] is None for r in rows if r["id"] % 20 == 3)
    # The rest: in the new DLQ with their first source, record number and line.
    by_lineage = {(r["source"], r["record"]): r for r in first}
    assert lineage(errors) == [lineage([r])[0] for r in first if r["record"] not in set(recovered)]
    for new in errors:
        old = by_lineage[(new["source"], new["record"])]
        assert new["source"] == str(src) and new["line"] == old["line"]
        assert new["raw"] == old["raw"] and new["raw_text"] == old["raw_text"]
    ragged = [e for e in errors if e["record"] % 100 == 9]
    assert ragged and all(e["stage"] == "parse" and e["errors"][0]["msg"] == "expected 5 fields, found 2" for e in ragged)
    assert {e["errors"][0]["type"] for e in errors if e["stage"] == "validate"} <= {"int_parsing", "greater_than_equal"}
    assert "re-read from their raw_text" in stdout


def test_a_replay_of_a_replay_keeps_the_first_lineage(tmp_path):
    src, dlq = first_run(tmp_path)
    _, once, _, _ = replay(tmp_path, dlq, "FixedOrder", "once")  # no --encoding: the Latin-1 rows stay refused
    rows, twice, report, _ = replay(tmp_path, tmp_path / "once.errors.jsonl", "FixedOrder", "twice")
    assert rows == [] and report["rows_read"] == len(once) == report["rows_invalid"]
    assert lineage(twice) == lineage(once)
    assert [(e["stage"], e["errors"]) for e in twice] == [(e["stage"], e["errors"]) for e in once]
    # A model that takes every well-formed row recovers all but the ragged and undecodable ones.
    rows, thrice, report, _ = replay(tmp_path, tmp_path / "twice.errors.jsonl", "LenientOrder", "thrice")
    assert {e["stage"] for e in thrice} == {"parse"}
    assert len(rows) + len(thrice) == len(once) and all(e["source"] == str(src) for e in thrice)
    assert lineage(thrice) == [x for x in lineage(once) if x[1] % 100 in (9, 19)]


def test_a_compressed_dlq_replays_like_the_plain_one(tmp_path):
    _, dlq = first_run(tmp_path)
    packed = tmp_path / "dlq.jsonl.gz"
    packed.write_bytes(gzip.compress(dlq.read_bytes()))
    plain = replay(tmp_path, dlq, "FixedOrder", "plain", "--executor", "inline", "--workers", "1")
    compressed = replay(tmp_path, packed, "FixedOrder", "packed", "--executor", "inline", "--workers", "1")
    assert plain[0] == compressed[0] and len(plain[0]) > 100
    assert [{k: v for k, v in r.items() if k not in ("run_id", "ts")} for r in plain[1]] == [
        {k: v for k, v in r.items() if k not in ("run_id", "ts")} for r in compressed[1]]


def test_the_python_api_reads_a_dlq_like_any_source_and_lineage_survives_a_worker_crash(tmp_path):
    """A record that kills its worker: the chunk is split until it stands alone, and its
    DLQ record (stage worker) still names its first record number, not the DLQ's line."""
    src = tmp_path / "items.csv"
    write_items_csv(src, 120, bad_every=20, poison={77})
    first = fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "a.jsonl"), fs.JSONLSink(tmp_path / "a.errors.jsonl"),
                        executor=fs.MultiprocessingExecutor(workers=2), hooks=[Poison()], chunk_bytes="1KiB").run()
    dlq = read_jsonl(tmp_path / "a.errors.jsonl")
    assert {r["record"] for r in dlq if r["stage"] == "worker"} == {77}
    source = registry.source_for(f"dlq://{tmp_path / 'a.errors.jsonl'}")
    assert isinstance(source, fs.DLQSource)
    again = fs.Pipeline(source, Item, fs.JSONLSink(tmp_path / "b.jsonl"), fs.JSONLSink(tmp_path / "b.errors.jsonl"),
                        executor=fs.MultiprocessingExecutor(workers=2), hooks=[Poison()], chunk_bytes="1KiB").run()
    new = read_jsonl(tmp_path / "b.errors.jsonl")
    assert again.rows_read == len(dlq) == first.rows_invalid and again.rows_valid == 0
    assert lineage(new) == lineage(dlq)
    assert [(r["record"], r["stage"]) for r in new if r["stage"] == "worker"] == [(77, "worker")]


def test_jsonl_parse_records_are_re_read_from_raw_text_and_what_cannot_be_replayed_is_kept(tmp_path):
    src = tmp_path / "items.jsonl"
    src.write_text('{"id": 1, "name": "a", "price": "1"}\n{"id": 2, "name": "b", "price": "2",}\n[3]\n{"id": -4, "name": "d", "price": "4"}\n')
    fs.Pipeline(fs.JSONLSource(src), Item, fs.JSONLSink(tmp_path / "a.jsonl"), fs.JSONLSink(tmp_path / "dlq.jsonl"), executor="inline").run()
    dlq = read_jsonl(tmp_path / "dlq.jsonl")
    assert [(r["record"], r["stage"]) for r in dlq] == [(2, "parse"), (3, "parse"), (4, "validate")]
    # The user fixes record 2's text by hand in the DLQ; and adds what no replay can use:
    # a record from a Parquet input with no raw, one that keeps nothing, a truncated line.
    dlq[0]["raw_text"] = dlq[0]["raw_text"].replace(",}", "}")
    extra = [
        {**dlq[2], "source": "s.parquet", "record": 9, "line": None, "stage": "parse", "raw": None, "raw_text": "price: [1e400]",
         "errors": [{"type": "parse_error", "loc": [], "msg": "holds a value Python cannot represent", "input": None}]},
        {**dlq[2], "source": "db.jsonl", "record": 10, "line": None, "stage": "sink", "raw": None, "raw_text": None,
         "errors": [{"type": "sink_refused", "loc": [], "msg": "UNIQUE constraint failed", "input": None}]},
    ]
    path = tmp_path / "edited.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in dlq + extra) + '{"run_id": "x", "sour\n')
    rows, errors, report, stdout = replay(tmp_path, path, "Order", "r")
    assert [r["id"] for r in rows] == [2]
    assert report["rows_read"] == 6 == report["rows_valid"] + report["rows_invalid"]
    assert [(e["source"], e["record"], e["stage"]) for e in errors] == [
        (str(src), 3, "parse"), (str(src), 4, "validate"), ("s.parquet", 9, "parse"), ("db.jsonl", 10, "parse"), (str(path), 6, "parse")]
    assert errors[0]["errors"][0]["msg"] == "expected a JSON object, got list"
    assert errors[2]["raw_text"] == "price: [1e400]" and "not replayable" in errors[2]["errors"][0]["msg"]
    assert "stage parse: parse_error: holds a value" in errors[2]["errors"][0]["msg"]
    assert "stage sink: sink_refused: UNIQUE" in errors[3]["errors"][0]["msg"]
    assert "not replayable: line 6" in errors[4]["errors"][0]["msg"]
    notes = report["notes"]
    assert any(n.startswith("1 DLQ record(s) not replayable: the record keeps neither") for n in notes)
    assert any(n.startswith("1 DLQ record(s) not replayable: a .parquet source") for n in notes)
    assert any(n.startswith("1 DLQ record(s) not replayable: lines of the DLQ file") for n in notes)
    assert stdout.count("not replayable") == 3


def test_csv_parse_records_are_re_parsed_with_the_delimiter_and_header_given(tmp_path):
    """A semicolon CSV with Latin-1 bytes in some rows, first read as UTF-8: those rows are
    parse errors. Replayed with --delimiter ';' --encoding latin-1 they pass (the header
    comes from the DLQ's other records); without --delimiter they are refused again, as
    ragged rows; with only parse records and the input gone, they cannot be replayed."""
    src = tmp_path / "items.csv"
    src.write_bytes(b"id;name;price;note\n1;a;1.5;x\n2;caf\xe9;2.5;\n3;c;-1;\n4;cr\xe8me;4;y\n")
    fs.Pipeline(fs.CSVSource(src, delimiter=";"), Item, fs.JSONLSink(tmp_path / "a.jsonl"), fs.JSONLSink(tmp_path / "dlq.jsonl"),
                executor="inline").run()
    dlq = read_jsonl(tmp_path / "dlq.jsonl")
    assert [(r["record"], r["stage"]) for r in dlq] == [(2, "parse"), (3, "validate"), (4, "parse")]
    rows, errors, report, _ = replay(tmp_path, tmp_path / "dlq.jsonl", "Order", "r1", "--delimiter", ";", "--encoding", "latin-1")
    assert [(r["id"], r["name"], r["note"]) for r in rows] == [(2, "café", None), (4, "crème", "y")]
    assert lineage(errors) == [(str(src), 3, 4)]
    assert report["notes"] == ["2 parse-stage record(s) re-read from their raw_text"]
    rows, errors, _, _ = replay(tmp_path, tmp_path / "dlq.jsonl", "Order", "r2", "--encoding", "latin-1")
    assert rows == [] and [e["errors"][0]["msg"] for e in errors if e["stage"] == "parse"] == ["expected 4 fields, found 1"] * 2
    # Only the parse records, and the input deleted: nothing says what the columns are.
    only_parse = tmp_path / "only_parse.jsonl"
    only_parse.write_text("".join(json.dumps(r) + "\n" for r in dlq if r["stage"] == "parse"))
    rows, errors, _, _ = replay(tmp_path, only_parse, "Order", "r3", "--delimiter", ";", "--encoding", "latin-1")
    assert [r["id"] for r in rows] == [2, 4]  # the header was read from the input file
    src.unlink()
    rows, errors, _, stdout = replay(tmp_path, only_parse, "Order", "r4", "--delimiter", ";", "--encoding", "latin-1")
    assert rows == [] and lineage(errors) == [(str(src), 2, 3), (str(src), 4, 5)]
    assert all("the header of its CSV source is unknown" in e["errors"][0]["msg"] for e in errors)
    assert "2 DLQ record(s) not replayable: the header of its CSV source is unknown" in stdout


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, [], "DLQ file not found"),
        ("plain", [], "is not a FlowSchema DLQ: line 1 is a JSON object without source"),
        ("csv", [], "is not a FlowSchema DLQ: it starts with 'id,name"),
        ("binary", [], "is not a FlowSchema DLQ: it starts with"),
        ("dlq", ["--model", "no_such_module:Order"], "cannot import module 'no_such_module'"),
        ("dlq", ["--model", f"{MODELS}:Nope"], "has no attribute 'Nope'"),
        ("dlq", ["--errors", "{dlq}"], "is the DLQ being replayed"),
        ("dlq", ["--table", "t"], "--table does not apply to replay"),
        ("dlq", ["--key", "id"], "--key does not apply to replay"),
        ("line", [], "line 1 is an object whose line is neither an integer nor null"),
        ("dlq", ["--source-option", "header=x"], "replay takes --source-option"),
        ("dlq", ["--resume"], "--resume needs --checkpoint DIR"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, make, args, message):
    dlq = tmp_path / "errors.jsonl"
    if make == "plain":
        dlq.write_text('{"id": 1, "name": "a"}\n')
    elif make == "csv":
        dlq.write_text("id,name\n1,a\n")
    elif make == "binary":
        dlq.write_bytes(bytes(range(256)) * 16)
    elif make in ("dlq", "line"):  # "line": a hand-edited line number, once a bare TypeError
        dlq.write_text(json.dumps({"run_id": "r", "source": "x.jsonl", "record": 1, "line": 1 if make == "dlq" else "3", "stage": "validate",
                                   "errors": [], "raw": {"id": "1"}, "raw_text": None, "ts": "t"}) + "\n")
    options = {"--model": f"{MODELS}:Order", "--sink": str(tmp_path / "out.jsonl")}
    rest: list[str] = []
    for flag, value in zip(args[::2], [*args[1::2], None]):
        if flag in options:
            options[flag] = value
        else:
            rest += [flag] if value is None else [flag, value.format(dlq=dlq)]
    done = flowschema("replay", dlq, *[x for kv in options.items() for x in kv], *rest, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_rows_the_sink_refuses_on_replay_keep_their_lineage(tmp_path):
    """A replay into SQLite whose table refuses some recovered rows (a CHECK constraint):
    those go to the new DLQ, stage sink, under their first source and record number."""
    import sqlalchemy as sa

    src, dlq = first_run(tmp_path)
    db = tmp_path / "shop.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT, price NUMERIC, qty INTEGER, note TEXT, "
                             "CHECK (id < 1500))")
    engine.dispose()
    errors_path = tmp_path / "new.errors.jsonl"
    done = flowschema("replay", dlq, "--model", f"{MODELS}:FixedOrder", "--sink", f"sqlite:///{db}", "--sink-table", "orders",
                      "--errors", errors_path, "--workers", "2", "--chunk-bytes", "16KiB", "--encoding", "latin-1", "--quiet")
    assert done.returncode == 0, done.stderr
    recovered = oracle_valid_ids(src, FixedOrder, "latin-1") - oracle_valid_ids(src, Order, "utf-8")
    refused = [e for e in read_jsonl(errors_path) if e["stage"] == "sink"]
    assert sorted(e["record"] for e in refused) == sorted(i for i in recovered if i >= 1500)
    first = {r["record"]: r for r in read_jsonl(dlq)}
    assert all(e["source"] == str(src) and e["line"] == first[e["record"]]["line"] for e in refused)
    assert all("CHECK constraint failed" in e["errors"][0]["msg"] for e in refused)
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        ids = sorted(row[0] for row in conn.exec_driver_sql("SELECT id FROM orders"))
    engine.dispose()
    assert ids == sorted(i for i in recovered if i < 1500)


def test_replay_takes_runs_checkpoint_and_error_budget_options(tmp_path):
    _, dlq = first_run(tmp_path)
    checkpoint = tmp_path / "ckpt"
    once = replay(tmp_path, dlq, "FixedOrder", "ck", "--checkpoint", checkpoint, "--executor", "inline", "--workers", "1")
    again = replay(tmp_path, dlq, "FixedOrder", "ck", "--checkpoint", checkpoint, "--resume", "--executor", "inline", "--workers", "1")
    assert once[0] == again[0] and once[2]["rows_read"] == again[2]["rows_read"] == len(read_jsonl(dlq))
    stopped = flowschema("replay", dlq, "--model", f"{MODELS}:Order", "--sink", tmp_path / "b.jsonl", "--errors", tmp_path / "b.errors.jsonl",
                         "--executor", "inline", "--workers", "1", "--max-invalid", "10")
    # stderr is not a terminal: the progress line's last plain line, then the one-line error.
    lines = stopped.stderr.splitlines()
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert lines[-1].startswith("flowschema: error: ") and "max_invalid=10" in lines[-1]
    assert all(line.startswith("flowschema: read ") for line in lines[:-1])
