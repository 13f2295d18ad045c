"""The checkpoint of distributed mode without a Ray run: which recorded ranges a resume
keeps, and how checkpoints of the two modes meet."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")

import flowschema_core as fs
from flowschema_core.checkpoint import CheckpointStore
from flowschema_ray import RayExecutor
from flowschema_ray.distributed_checkpoint import RangeCheckpoint
from tests.ray.ray_models import Item


def _pipeline(tmp_path, executor="inline"):
    source = tmp_path / "in.csv"
    if not source.exists():
        source.write_text("id,name,price,note\n1,a,1.00,\n2,b,x,\n", encoding="utf-8")
    return fs.Pipeline(fs.CSVSource(source), Item, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"),
                       executor=executor, checkpoint=tmp_path / "ck")


def _outcome(start, sink_part, sink_size, dlq_part=None, dlq_size=0):
    return {"start": start, "seen": 1, "valid": 1, "invalid": 0, "filtered": 0, "sink_part": sink_part, "dlq_part": dlq_part,
            "sink_size": sink_size, "dlq_size": dlq_size, "reasons": []}


def test_a_resume_keeps_only_ranges_whose_parts_are_intact(tmp_path):
    pipeline = _pipeline(tmp_path)
    assert pipeline.checkpoint is not None
    first = RangeCheckpoint(pipeline, pipeline.checkpoint)
    staging = first.staging({"sink": str(tmp_path / "o.jsonl"), "dlq": str(tmp_path / "e.jsonl")}, fresh=True)
    for name, data in (("a.part", b"12345"), ("b.part", b"123"), ("d.part", b"xy")):
        (Path(staging["sink"].location) / name).write_bytes(data)
    (Path(staging["dlq"].location) / "d.part").write_bytes(b"dlq")
    done = {"0": [_outcome(0, "a.part", 5)],  # intact
            "1": [_outcome(10, "b.part", 4)],  # shorter than recorded: redone
            "2": [_outcome(20, "c.part", 1)],  # gone: redone
            "3": [_outcome(30, "d.part", 2, "d.part", 3), _outcome(35, None, 0)]}  # two pieces, both intact
    first.save("running", "run-1", fs.RunReport("run-1", "in.csv", "o.jsonl", "e.jsonl", "InlineExecutor"), {"desc": {}, "plan": [], "done": done})

    resumed = RangeCheckpoint(pipeline, CheckpointStore(tmp_path / "ck"))
    resumed.check()
    assert resumed.saved is not None and resumed.saved["run_id"] == "run-1" and not resumed.of_single_driver
    again = resumed.staging({"sink": str(tmp_path / "o.jsonl"), "dlq": str(tmp_path / "e.jsonl")}, fresh=False)
    assert again == staging
    assert sorted(resumed.kept(again)) == [0, 3]
    assert resumed.staging({"sink": str(tmp_path / "o.jsonl"), "dlq": str(tmp_path / "e.jsonl")}, fresh=True) == staging
    assert resumed.kept(staging) == {}  # a fresh run empties the staging of a deleted checkpoint


def test_a_single_driver_checkpoint_is_resumed_in_its_own_mode(tmp_path):
    report = _pipeline(tmp_path).run()  # single-driver, checkpointed: marked done
    assert report.rows_read == 2
    with pytest.raises(fs.CheckpointError, match="differs in: mode"):
        _pipeline(tmp_path, RayExecutor(num_actors=1, distributed=True)).run()
    again = _pipeline(tmp_path, RayExecutor(num_actors=1)).run()  # auto: the single-driver mode returns the saved report
    assert (again.rows_read, again.rows_valid, again.run_id) == (2, report.rows_valid, report.run_id)
