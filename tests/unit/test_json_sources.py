"""JSONSource and JSONLSource against JSONTestSuite, and their own error contracts."""

from __future__ import annotations

import json

import pytest
from conftest import DATA

import flowschema_core as fs
from flowschema_core.sources import json as json_source

SUITE = DATA / "jsontestsuite"
N_FILES = sorted(p.name for p in SUITE.glob("n_*.json"))
Y_FILES = sorted(p.name for p in SUITE.glob("y_*.json"))
I_FILES = sorted(p.name for p in SUITE.glob("i_*.json"))


def test_suite_is_present():
    assert len(N_FILES) + len(Y_FILES) + len(I_FILES) == 318
    assert len(N_FILES) == 188 and len(Y_FILES) == 95


# -- JSONSource (a top-level array) -------------------------------------------------------
def _outcome(path) -> tuple[str, int]:
    """Read a JSONSource to the end: ("error", 0) on SourceError, else ("ok", parse failures)."""
    try:
        records = [r for _, r in fs.JSONSource(path).records()]
    except fs.SourceError as exc:
        assert str(path) in str(exc)
        return "error", 0
    assert all(isinstance(r, (dict, fs.ParseFailure)) for r in records)
    return "ok", sum(isinstance(r, fs.ParseFailure) for r in records)


# Only a FlowSchemaError may escape (pytest reports any other type as a failure).
@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", N_FILES)
def test_json_source_rejects_n_files_cleanly(name):
    outcome, failures = _outcome(SUITE / name)
    assert outcome == "error" or failures >= 1, f"{name} loaded without any error"


@pytest.mark.timeout(20)
def test_json_source_n_files_through_the_pipeline(run_pipeline):
    # the pipeline turns a SourceError into a failed run and a ParseFailure into a DLQ record
    for name in ("n_array_extra_close.json", "n_structure_100000_opening_arrays.json", "n_array_1_true_without_comma.json"):
        with pytest.raises(fs.SourceError):
            run_pipeline(fs.JSONSource(SUITE / name))
    run = run_pipeline(fs.JSONSource(SUITE / "y_array_heterogeneous.json"))  # [null, 1, "1", {}]
    assert run.report.invalid_by_stage == {"parse": 3} and run.rows == [{}]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", Y_FILES)
def test_json_source_loads_y_files(run_pipeline, name):
    path = SUITE / name
    document = json.loads(path.read_bytes())
    if not isinstance(document, list):
        with pytest.raises(fs.SourceError) as info:
            run_pipeline(fs.JSONSource(path))
        assert "expected a JSON array" in str(info.value) and str(path) in str(info.value)
        return
    run = run_pipeline(fs.JSONSource(path))
    assert run.report.rows_read == len(document)
    assert run.rows == [e for e in document if isinstance(e, dict)]
    not_objects = [e for e in document if not isinstance(e, dict)]
    assert [(d["record"], d["stage"]) for d in run.dlq] == [(i + 1, "parse") for i, e in enumerate(document) if not isinstance(e, dict)]
    assert [json.loads(d["raw_text"]) for d in run.dlq] == not_objects


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", I_FILES)
def test_json_source_i_files_never_crash(name):
    _outcome(SUITE / name)


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_json_array_of_objects(run_pipeline, tmp_path):
    records = [{"id": i, "name": f"n{i}", "tags": ["a", {"b": None}], "price": 1.5} for i in range(500)]
    path = _write(tmp_path, "a.json", json.dumps(records).encode())
    run = run_pipeline(fs.JSONSource(path), chunk_bytes=2000, max_bytes_in_flight=100_000)
    assert run.report.chunks > 5
    assert run.rows == records and run.dlq == []


def test_json_array_non_objects_are_parse_records(run_pipeline, tmp_path):
    path = _write(tmp_path, "a.json", b'[{"a": 1}, 2, "x", null, [1, 2], {"a": 3}, true]')
    run = run_pipeline(fs.JSONSource(path))
    assert run.rows == [{"a": 1}, {"a": 3}]
    got = [(d["record"], d["line"], d["stage"], d["raw_text"]) for d in run.dlq]
    assert got == [(2, None, "parse", "2"), (3, None, "parse", '"x"'), (4, None, "parse", "null"), (5, None, "parse", "[1, 2]"), (7, None, "parse", "true")]
    assert "array element 2 is a int, not an object" in run.dlq[0]["errors"][0]["msg"]


def test_json_with_bom_and_leading_whitespace(run_pipeline, tmp_path):
    path = _write(tmp_path, "a.json", b'\xef\xbb\xbf \n\t[{"a": "\xc3\xa9"}]\n')
    assert run_pipeline(fs.JSONSource(path)).rows == [{"a": "é"}]


@pytest.mark.parametrize(("content", "position", "hint"), [
    (b'{"a": 1}', 0, "JSONLSource"),
    (b'\n\n  "text"', 4, ""),
    (b"\xef\xbb\xbf  42", 5, ""),
])
def test_json_not_an_array_names_file_and_byte(run_pipeline, tmp_path, content, position, hint):
    path = _write(tmp_path, "a.json", content)
    with pytest.raises(fs.SourceError) as info:
        run_pipeline(fs.JSONSource(path))
    message = str(info.value)
    assert str(path) in message
    assert f"at byte {position}" in message
    assert hint in message


def test_json_empty_file_is_a_source_error(run_pipeline, tmp_path):
    path = _write(tmp_path, "a.json", b"  \n")
    with pytest.raises(fs.SourceError, match="empty"):
        run_pipeline(fs.JSONSource(path))


@pytest.mark.parametrize("content", [b'[{"a": 1}, {"a": 2}', b'[{"a": 1}, {"a": 2}, {"a"', b'[{"a": 1}, {"a": 2},'])
def test_json_truncated_array_is_a_source_error(run_pipeline, tmp_path, content):
    path = _write(tmp_path, "a.json", content)
    with pytest.raises(fs.SourceError) as info:
        run_pipeline(fs.JSONSource(path))
    assert str(path) in str(info.value) and "near byte" in str(info.value)


def test_json_missing_file_is_a_source_error(run_pipeline, tmp_path):
    with pytest.raises(fs.SourceError, match="not found"):
        run_pipeline(fs.JSONSource(tmp_path / "missing.json"))


@pytest.mark.timeout(20)
def test_json_deep_nesting_is_refused_quickly(run_pipeline, tmp_path):
    depth = json_source.MAX_DEPTH
    # exactly at the limit: the source yields it (the top-level array is one level)
    ok = _write(tmp_path, "ok.json", b"[" + b'{"a":' * (depth - 1) + b"1" + b"}" * (depth - 1) + b"]")
    records = [r for _, r in fs.JSONSource(ok).records()]
    assert len(records) == 1 and isinstance(records[0], dict)
    one_more = _write(tmp_path, "deeper.json", b"[" + b'{"a":' * depth + b"1" + b"}" * depth + b"]")
    with pytest.raises(fs.SourceError, match="nested deeper"):
        list(fs.JSONSource(one_more).records())
    # 1 MB of "[" would take ijson minutes and gigabytes without the guard
    deep = _write(tmp_path, "deep.json", b"[" * 1_000_000)
    with pytest.raises(fs.SourceError, match="nested deeper") as info:
        run_pipeline(fs.JSONSource(deep))
    assert str(deep) in str(info.value)


def test_json_brackets_inside_strings_do_not_count_as_nesting(run_pipeline, tmp_path):
    # strings full of brackets, escaped quotes and backslashes, cut across read blocks
    value = '[[[{{{ \\" \\\\ ' * 20_000
    records = [{"s": value, "n": i} for i in range(3)]
    path = _write(tmp_path, "s.json", json.dumps(records).encode())
    run = run_pipeline(fs.JSONSource(path))
    assert run.rows == records


def test_json_form_feed_outside_strings_is_refused(run_pipeline, tmp_path):
    path = _write(tmp_path, "ff.json", b'[{"a": "\\f"},\x0c{"a": 2}]')
    with pytest.raises(fs.SourceError, match="form feed"):
        run_pipeline(fs.JSONSource(path))


# -- JSONLSource --------------------------------------------------------------------------
ONE_LINE_N_FILES = [n for n in N_FILES if b"\n" not in (SUITE / n).read_bytes() and (SUITE / n).read_bytes().lstrip(b"\xef\xbb\xbf").strip()]


DEEP_N_FILE = "n_structure_100000_opening_arrays.json"


@pytest.mark.timeout(30)
def test_jsonl_source_every_n_line_is_a_parse_record(run_pipeline, tmp_path):
    names = [n for n in ONE_LINE_N_FILES if n != DEEP_N_FILE]
    lines = []
    for name in names:
        lines += [b'{"ok": %d}' % len(lines), (SUITE / name).read_bytes()]
    lines.append(b'{"ok": %d}' % len(lines))
    path = _write(tmp_path, "n.jsonl", b"\n".join(lines) + b"\n")
    run = run_pipeline(fs.JSONLSource(path), chunk_bytes=256, max_bytes_in_flight=1_000_000)
    assert run.rows == [{"ok": i} for i in range(0, len(lines), 2)]
    bad_lines = [d["line"] for d in run.dlq]
    unexpected = [names[(line - 2) // 2] for line in set(range(2, len(lines), 2)) - set(bad_lines)]
    assert unexpected == [], f"accepted as JSON Lines: {unexpected}"
    assert bad_lines == list(range(2, len(lines), 2))
    assert [d["record"] for d in run.dlq] == bad_lines  # no blank lines here: record == line
    assert all(d["stage"] == "parse" and d["raw_text"] for d in run.dlq)


@pytest.mark.timeout(20)
def test_jsonl_source_deep_n_line_is_a_parse_record(run_pipeline, tmp_path):
    path = _write(tmp_path, "n.jsonl", b'{"before": 1}\n' + (SUITE / DEEP_N_FILE).read_bytes() + b'\n{"after": 2}\n')
    run = run_pipeline(fs.JSONLSource(path))
    assert run.rows == [{"before": 1}, {"after": 2}]
    assert [(d["record"], d["line"], d["stage"]) for d in run.dlq] == [(2, 2, "parse")]


def test_jsonl_blank_lines_skipped_and_bad_line_numbered(run_pipeline, tmp_path):
    path = _write(tmp_path, "a.jsonl", b'{"a": 1}\n\n   \n{"a": 2}\r\n{oops}\n\n[1]\n{"a": 3}')
    run = run_pipeline(fs.JSONLSource(path))
    assert run.rows == [{"a": 1}, {"a": 2}, {"a": 3}]
    got = [(d["record"], d["line"], d["raw_text"]) for d in run.dlq]
    assert got == [(3, 5, "{oops}"), (4, 7, "[1]")]
    assert "invalid JSON" in run.dlq[0]["errors"][0]["msg"]
    assert "expected a JSON object" in run.dlq[1]["errors"][0]["msg"]


def test_jsonl_invalid_utf8_is_a_recoverable_parse_record(run_pipeline, tmp_path):
    path = _write(tmp_path, "a.jsonl", b'{"a": 1}\n{"a": "\xff\xfe"}\n{"a": 2}\n')
    run = run_pipeline(fs.JSONLSource(path))
    assert run.rows == [{"a": 1}, {"a": 2}]
    assert [(d["record"], d["line"], d["raw_text"]) for d in run.dlq] == [(2, 2, '{"a": "\\xff\\xfe"}')]


def test_jsonl_small_chunks_same_output(run_pipeline, tmp_path):
    lines = [json.dumps({"i": i, "s": "x" * (i % 37)}) for i in range(300)]
    lines[123] = "not json"
    path = _write(tmp_path, "a.jsonl", ("\n".join(lines) + "\n").encode())
    whole = run_pipeline(fs.JSONLSource(path))
    small = run_pipeline(fs.JSONLSource(path), chunk_bytes=64, max_bytes_in_flight=4096)
    assert small.report.chunks > 20
    assert small.rows == whole.rows and len(whole.rows) == 299
    for run in (whole, small):
        assert [(d["record"], d["line"]) for d in run.dlq] == [(124, 124)]


def test_jsonl_bom_and_empty_file(run_pipeline, tmp_path):
    assert run_pipeline(fs.JSONLSource(_write(tmp_path, "b.jsonl", b'\xef\xbb\xbf{"a": 1}\n'))).rows == [{"a": 1}]
    empty = run_pipeline(fs.JSONLSource(_write(tmp_path, "e.jsonl", b"")))
    assert empty.report.rows_read == 0


def test_jsonl_missing_file_is_a_source_error(run_pipeline, tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(fs.SourceError) as info:
        run_pipeline(fs.JSONLSource(path))
    assert str(path) in str(info.value)


@pytest.mark.timeout(20)
def test_jsonl_deeply_nested_line_is_a_parse_record(run_pipeline, tmp_path):
    path = _write(tmp_path, "deep.jsonl", b'{"a": 1}\n' + b"[" * 100_000 + b"\n" + b'{"a": 2}\n')
    run = run_pipeline(fs.JSONLSource(path))
    assert run.rows == [{"a": 1}, {"a": 2}]
    assert [(d["record"], d["line"], d["stage"]) for d in run.dlq] == [(2, 2, "parse")]
