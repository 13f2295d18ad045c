"""The run report as a file: error groups it names, reading it back, and what is refused."""

from __future__ import annotations

import json

import pytest

import flowschema_core as fs
from flowschema_core import dlq
from flowschema_core.error_groups import ErrorGroups


def refused(stage: str, kind: str, *loc: object) -> dict:
    return dlq.chunk_error(0, None, stage, [dlq.entry(kind, "m", loc=list(loc))])


def test_error_groups_count_exactly_and_stay_bounded():
    groups = ErrorGroups(max_groups=3)
    groups.add([refused("validate", "int_parsing", "id")] * 5)
    groups.add([refused("validate", "missing", "items", 0, "price")] * 2)
    groups.add([refused("parse", "parse_error")])
    groups.add([refused("validate", "extra_forbidden", f"col{i}") for i in range(10)])  # past the cap
    groups.add([refused("validate", "int_parsing", "id")])  # a known group still counts
    assert groups.top() == [
        {"stage": "validate", "type": "int_parsing", "field": "id", "count": 6},
        {"stage": "validate", "type": "missing", "field": "items.0.price", "count": 2},
        {"stage": "parse", "type": "parse_error", "field": "", "count": 1},
    ]
    assert groups.other == 10
    assert sum(g["count"] for g in groups.top()) + groups.other == 19
    assert len(groups.top(1)) == 1


def report(**changes) -> fs.RunReport:
    values = {"run_id": "r1", "source": "in.csv", "sink": "out.jsonl", "errors_sink": "dlq.jsonl", "executor": "InlineExecutor",
              "rows_read": 10, "rows_valid": 7, "rows_invalid": 2, "rows_filtered": 1, "invalid_by_stage": {"validate": 2},
              "timeline": [{"t": 0.0, "bytes_in_flight": 0, "rss": 1e8, "rows_done": 0}, {"t": 1.0, "bytes_in_flight": 0, "rss": 1e8, "rows_done": 10}],
              "error_groups": [{"stage": "validate", "type": "int_parsing", "field": "id", "count": 2}]}
    values.update(changes)
    return fs.RunReport(**values)


def test_a_report_reads_back_as_it_was_written(tmp_path):
    path = tmp_path / "run.json"
    original = report(notes=["a note"], interrupted=True, stop_signal="SIGTERM")
    path.write_text(original.to_json())
    assert fs.RunReport.load(path) == original
    # Keys from a newer FlowSchema are ignored; keys an older one did not write take defaults.
    data = json.loads(path.read_text())
    data["from_the_future"] = 1
    del data["error_groups"]
    path.write_text(json.dumps(data))
    assert fs.RunReport.load(path).error_groups == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "run report not found"),
        ("", "is not a FlowSchema run report: not JSON"),
        ('{"run_id": "x", "source": "a"}\n{"run_id": "y"}\n', "not JSON"),  # a JSON Lines file, e.g. a DLQ
        ("[1, 2]", "is not a FlowSchema run report (no 'run_id'"),
        ('{"run_id": "x", "record": 3, "stage": "validate", "errors": []}', "(no 'source', 'sink', 'errors_sink')"),
        ("PLACEHOLDER_BAD_COUNT", "not a valid FlowSchema run report: rows_read:"),
        ("PLACEHOLDER_BAD_SAMPLE", "not a valid FlowSchema run report: timeline.0.rss: Field required"),
        (b"\xff\xfe\x00", "cannot read the run report"),
        ("PLACEHOLDER_HUGE", "far larger than one"),
    ],
)
def test_what_is_not_a_run_report_is_a_config_error_that_says_so(tmp_path, content, message):
    path = tmp_path / "run.json"
    good = report().to_dict()
    if content == "PLACEHOLDER_BAD_COUNT":
        content = json.dumps({**good, "rows_read": "many"})
    elif content == "PLACEHOLDER_BAD_SAMPLE":
        content = json.dumps({**good, "timeline": [{"t": 0, "bytes_in_flight": 0, "rows_done": 0}]})
    elif content == "PLACEHOLDER_HUGE":  # e.g. the input file given instead of the report
        content = "[" + "1," * (33 << 20) + "1]"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(fs.ConfigError) as caught:
        fs.RunReport.load(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
