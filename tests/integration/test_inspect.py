"""``flowschema inspect``: exact counts checked against a plain count of the same file,
bounded memory on a large DLQ, varied examples, the --json schema, bad inputs."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest

import flowschema_core as fs
from tests.integration.replay_models import write_orders_csv
from tests.integration.test_cli import REPO, flowschema


def messy_dlq(tmp_path, rows: int = 3_000):
    """A DLQ written by a real run (process executor, 2 workers) over the messy orders file."""
    src, dlq = tmp_path / "orders.csv", tmp_path / "dlq.jsonl"
    write_orders_csv(src, rows)
    done = flowschema("run", src, "--model", "tests.integration.replay_models:Order", "--sink", tmp_path / "out.jsonl",
                      "--errors", dlq, "--workers", "2", "--chunk-bytes", "16KiB", "--quiet")
    assert done.returncode == 0, done.stderr
    return dlq


def plain_count(path):
    """The groups of a DLQ counted with plain Python: {(stage, type, field): [records, errors, first, last]}."""
    groups: dict = defaultdict(lambda: [0, 0, None, None])
    records = errors = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            records += 1
            errors += len(rec["errors"])
            keys = set()
            for e in rec["errors"]:
                key = (rec["stage"], e["type"], ".".join(map(str, e["loc"])))
                groups[key][1] += 1
                keys.add(key)
            for key in keys:
                g = groups[key]
                g[0] += 1
                g[2] = rec["record"] if g[2] is None else g[2]
                g[3] = rec["record"]
    return records, errors, dict(groups)


def test_inspect_json_counts_equal_a_plain_count_of_a_real_runs_dlq(tmp_path):
    dlq = messy_dlq(tmp_path)
    done = flowschema("inspect", dlq, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    records, errors, groups = plain_count(dlq)
    assert summary["records"] == records and summary["errors"] == errors
    assert records > errors * 0.5 and errors > records  # the file has records with two errors
    got = {(g["stage"], g["type"], g["field"]): [g["records"], g["errors"], g["first_record"], g["last_record"]] for g in summary["groups"]}
    assert got == groups
    assert summary["other"] is None and summary["bad_lines"] == 0
    assert sum(summary["by_stage"].values()) == records and summary["sources"] == {str(tmp_path / "orders.csv"): records}
    # Most records first; the examples are distinct and really are errors of their group.
    assert [g["records"] for g in summary["groups"]] == sorted((g["records"] for g in summary["groups"]), reverse=True)
    by_record = {}
    with open(dlq, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            by_record[rec["record"]] = rec
    for g in summary["groups"]:
        assert 1 <= len(g["examples"]) <= 3
        inputs = [json.dumps(e["input"]) for e in g["examples"]]
        assert len(set(inputs)) == len(inputs)
        for example in g["examples"]:
            rec = by_record[example["record"]]
            assert rec["stage"] == g["stage"] and example["line"] == rec["line"]
            assert any(e["type"] == g["type"] and ".".join(map(str, e["loc"])) == g["field"] for e in rec["errors"])


def test_the_json_schema(tmp_path):
    """--json: exactly these keys and types, for machines to rely on (and --examples 0)."""
    dlq = messy_dlq(tmp_path, 600)
    for extra, n_examples in (((), 3), (("--examples", "0"), 0)):
        done = flowschema("inspect", dlq, "--json", *extra)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert set(summary) == {"path", "records", "errors", "by_stage", "sources", "groups", "other", "max_groups", "bad_lines",
                                "bad_line_numbers"}
        assert summary["path"] == str(dlq) and summary["max_groups"] == 1000 and summary["bad_line_numbers"] == []
        assert all(isinstance(summary[k], int) for k in ("records", "errors", "bad_lines"))
        assert all(isinstance(k, str) and isinstance(v, int) for k, v in {**summary["by_stage"], **summary["sources"]}.items())
        assert summary["groups"]
        for g in summary["groups"]:
            assert set(g) == {"stage", "type", "field", "records", "errors", "first_record", "last_record", "examples"}
            assert all(isinstance(g[k], str) for k in ("stage", "type", "field"))
            assert all(isinstance(g[k], int) for k in ("records", "errors", "first_record", "last_record"))
            assert len(g["examples"]) == min(n_examples, len(g["examples"])) and (n_examples == 0) == (g["examples"] == [])
            for e in g["examples"]:
                assert set(e) == {"source", "record", "line", "input", "msg"}
                assert isinstance(e["record"], int) and isinstance(e["line"], int) and isinstance(e["msg"], str)


def test_the_table_names_groups_counts_and_the_counting_rule(tmp_path):
    dlq = messy_dlq(tmp_path, 1_000)
    summary = fs.inspect_dlq(dlq)
    done = flowschema("inspect", dlq)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout  # not a terminal: no escape codes
    assert f"{summary.records:,} records" in done.stdout
    for g in summary.groups:
        row = next(line for line in done.stdout.splitlines() if g.type in line and f" {g.records:,} " in line)
        assert g.stage in row and str(g.first_record) in row
    assert "counts in each" in done.stdout


def test_examples_are_varied_not_the_first_few(tmp_path):
    """2,000 errors in one group: the first 1,500 all hold "x", then 500 distinct values.
    The examples are distinct inputs spread over the group, and the same on every call."""
    dlq = tmp_path / "dlq.jsonl"
    with open(dlq, "w", encoding="utf-8") as f:
        for i in range(1, 2_001):
            value = "x" if i <= 1_500 else f"v{i}"
            f.write(json.dumps({"run_id": "r", "source": "s.csv", "record": i, "line": i + 1, "stage": "validate",
                                "errors": [{"type": "int_parsing", "loc": ["qty"], "msg": "m", "input": value}],
                                "raw": {"qty": value}, "raw_text": None, "ts": "t"}) + "\n")
    summary = fs.inspect_dlq(dlq)
    (group,) = summary.groups
    inputs = [e.input for e in group.examples]
    assert len(inputs) == 3 and len(set(inputs)) == 3
    assert sum(1 for v in inputs if v != "x") >= 2  # not three copies of the first mistake
    assert inputs == [e.input for e in fs.inspect_dlq(dlq).groups[0].examples]
    assert [e.input for e in fs.inspect_dlq(dlq, examples=10).groups[0].examples].count("x") <= 1


def _peak_rss_of_inspect(path, *extra):
    """Peak RSS (KiB) of a fresh interpreter that runs ``flowschema inspect`` on ``path``."""
    code = ("import resource, sys; from flowschema_core.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "inspect", str(path), "--json", *extra], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1]), json.loads(done.stdout)


def _write_synthetic_dlq(path, n: int, fields: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1, n + 1):
            field = f"f{i % fields}"
            errors = [{"type": "int_parsing", "loc": [field], "msg": "Input should be a valid integer", "input": f"bad {i % 997}"}]
            if i % 3 == 0:
                errors.append({"type": "missing", "loc": ["name"], "msg": "Field required", "input": {"id": str(i)}})
            f.write(json.dumps({"run_id": "r", "source": "big.csv", "record": i, "line": i + 1, "stage": "validate", "errors": errors,
                                "raw": {"id": str(i), field: f"bad {i % 997}", "padding": "p" * 200}, "raw_text": None,
                                "ts": "2026-12-01T00:00:00Z"}) + "\n")


def test_a_large_dlq_is_counted_exactly_in_bounded_memory(tmp_path):
    """200k records (~90 MB) with 1,500 field groups and --max-groups 1000: exact counts,
    an exact 'other' bucket, and a peak RSS that does not grow with the file (compared
    with a 2k-record file of the same shape, in the same session)."""
    big, small = tmp_path / "big.jsonl", tmp_path / "small.jsonl"
    _write_synthetic_dlq(big, 200_000, 1_500)
    _write_synthetic_dlq(small, 2_000, 1_500)
    assert big.stat().st_size > 80e6
    rss_small, _ = _peak_rss_of_inspect(small, "--max-groups", "1000")
    rss_big, summary = _peak_rss_of_inspect(big, "--max-groups", "1000")
    assert rss_big - rss_small < 20 * 1024, (rss_small, rss_big)  # KiB: the file is ~90 MB
    assert summary["records"] == 200_000
    assert summary["errors"] == 200_000 + 200_000 // 3
    kept = {g["field"]: g for g in summary["groups"] if g["type"] == "int_parsing"}
    # Groups are created in first-seen order: record i brings f{i % 1500} and, when i % 3 == 0,
    # "name". By record 999, f1..f999 and name make 1,000 groups: f1000..f1499 and f0 are
    # past the cap, and their records are counted in "other" (exactly; a record whose name
    # error is in a kept group and whose field error is not counts in both).
    assert set(kept) == {f"f{k}" for k in range(1, 1_000)} and len(summary["groups"]) == 1_000
    past_cap = [i for i in range(1, 200_001) if i % 1_500 >= 1_000 or i % 1_500 == 0]
    assert summary["other"] == {"records": len(past_cap), "errors": len(past_cap)}
    records_of: dict[int, list[int]] = defaultdict(list)
    for i in range(1, 200_001):
        records_of[i % 1_500].append(i)
    for field, g in kept.items():
        mine = records_of[int(field[1:])]
        assert (g["records"], g["errors"], g["first_record"], g["last_record"]) == (len(mine), len(mine), mine[0], mine[-1])
    name = next(g for g in summary["groups"] if g["field"] == "name")
    assert name["records"] == name["errors"] == 200_000 // 3 and name["first_record"] == 3


def test_a_compressed_dlq_is_read_like_the_plain_one(tmp_path):
    dlq = messy_dlq(tmp_path, 1_000)
    packed = tmp_path / "dlq.jsonl.gz"
    packed.write_bytes(gzip.compress(dlq.read_bytes()))
    plain, compressed = fs.inspect_dlq(dlq).to_dict(), fs.inspect_dlq(packed).to_dict()
    assert plain.pop("path") != compressed.pop("path")
    assert plain == compressed and plain["records"] > 0


def test_a_truncated_last_line_is_counted_not_fatal(tmp_path):
    dlq = messy_dlq(tmp_path, 500)
    whole = dlq.read_text()
    with open(dlq, "a", encoding="utf-8") as f:
        f.write(whole.splitlines()[0][:40] + "\n")
    summary = fs.inspect_dlq(dlq)
    assert summary.bad_lines == 1 and summary.bad_line_numbers == [len(whole.splitlines()) + 1]
    assert summary.records == len(whole.splitlines())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "DLQ file not found"),
        (b'{"id": 1, "name": "a plain JSON Lines file"}\n', "is not a FlowSchema DLQ: line 1 is a JSON object without source, record, stage, errors"),
        (b"id,name\n1,a\n", "is not a FlowSchema DLQ: it starts with 'id,name"),
        (bytes(range(256)) * 64, "is not a FlowSchema DLQ: it starts with"),
        (b"[1, 2, 3]\n", "is not a FlowSchema DLQ: it starts with '[1, 2, 3]"),
        (b'{"source": "a", "record": 1, "stage": "dance", "errors": []}\n', "stage 'dance' is not one of"),
        ("dir", "is a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "errors.jsonl"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    done = flowschema("inspect", path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_an_empty_dlq_is_an_empty_summary(tmp_path):
    path = tmp_path / "errors.jsonl"
    path.write_bytes(b"")
    done = flowschema("inspect", path, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == 0
