"""Parquet row groups as distributed mode's work units (flowschema_core.range_parquet),
without Ray: the planning from a description, the narrowing of a unit down to one row,
and the data path (describe, process each unit on its own, join the parts), whose outputs
are byte for byte the single-driver run's."""

from __future__ import annotations

import copy
import itertools
import json
import os
import re

import pytest
from pydantic import BaseModel

import flowschema_core as fs
from flowschema_core import range_io, range_parquet, range_work
from flowschema_core.worker import ChunkProcessor, WorkerSpec
from tests.helpers import write_messy_parquet
from tests.integration.pipeline_models import DropEven, Item

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

_TS = re.compile(rb'"ts": "[^"]*"')


def described(*files: list[list[int]], max_record_bytes: int = 1000) -> dict:
    """A description as an actor returns it: per file, its row groups' [rows, bytes, oversized]."""
    return {"kind": "parquet", "path": "/d", "name": "d", "refused": None, "notes": [], "data_start": 0, "lines0": 0,
            "size": sum(range_parquet.group_cost(*g) for f in files for g in f), "max_record_bytes": max_record_bytes,
            "fields": ["id"], "columns": None, "batch_rows": 100,
            "files": [{"path": f"/d/f{k}.parquet", "name": f"d/f{k}.parquet", "partitions": {}, "groups": f} for k, f in enumerate(files)]}


def test_units_pack_consecutive_row_groups_across_files_up_to_range_bytes():
    desc = described([[10, 300, 0], [20, 300, 0], [0, 50, 0], [5, 500, 0]], [[7, 2000, 0], [3, 100, 0]])
    size = desc["size"]
    plan = range_parquet.plan(desc, 700)
    assert "files" not in desc  # the units carry the files now: the description that travels with every call is small
    assert plan.records == 45
    units = plan.ranges
    # [300+300] then [500] (600 + 500 > 700), the 2000-byte group alone, then [100]; the empty group is no unit's.
    assert [[(s["name"], s["group"]) for s in u.segments] for u in units] == [
        [("d/f0.parquet", 0), ("d/f0.parquet", 1)], [("d/f0.parquet", 3)], [("d/f1.parquet", 0)], [("d/f1.parquet", 1)]]
    assert [u.first_record for u in units] == [0, 30, 35, 42]
    assert [u.records for u in units] == [30, 5, 7, 3]
    assert [u.start for u in units] == [0, 600, 1100, 3100] and units[-1].end == size == 3200  # tiled, in order
    assert [s["before"] for s in units[1].segments] == [30]  # the file's rows before its group (for messages)
    assert [u.index for u in units] == [0, 1, 2, 3]


def test_a_group_weighs_its_uncompressed_bytes_at_least_one_a_row_and_an_oversized_one_only_its_rows():
    assert range_parquet.group_cost(100, 5000, 0) == 5000
    assert range_parquet.group_cost(100, 40, 0) == 100  # all nulls: tiny, but each row still gets its own place
    assert range_parquet.group_cost(3, 10**9, 333_333_333) == 3  # never decompressed: it costs no memory
    plan = range_parquet.plan(described([[2, 20, 0], [3, 10**9, 10**9 // 3], [1, 10, 0]]), 1000)
    assert len(plan.ranges) == 1 and plan.ranges[0].end == 20 + 3 + 10
    assert [s["oversized"] for s in plan.ranges[0].segments] == [0, 10**9 // 3, 0]


def test_an_input_without_rows_has_no_units():
    plan = range_parquet.plan(described([[0, 0, 0]], []), 100)
    assert plan.ranges == [] and plan.records == 0


def narrowed(piece: dict) -> list[dict]:
    """``piece`` split again and again down to one-row pieces."""
    halves = range_parquet.split(piece)
    if halves is None:
        return [piece]
    return [one for half in halves for one in narrowed(half)]


@pytest.mark.parametrize("groups", [[[5, 5, 0], [4, 4, 0], [6, 6, 0]], [[9, 2000, 0], [1, 1, 0]], [[7, 7, 0]]])
def test_a_unit_narrows_down_to_each_row_by_offsets_within_its_row_groups(groups):
    unit = vars(range_parquet.plan(described(groups), 10**9).ranges[0])
    rows = narrowed(copy.deepcopy(unit))
    total = sum(g[0] for g in groups)
    assert len(rows) == total
    assert [r["first_record"] for r in rows] == list(range(total))
    starts = [r["start"] for r in rows]
    assert starts == sorted(set(starts)) and starts[0] == unit["start"] and rows[-1]["end"] == unit["end"]  # part names stay distinct
    assert all(r["end"] == n["start"] for r, n in itertools.pairwise(rows))
    # Row k of the unit is row (k - rows of the groups before) of its group.
    where = [(s["group"], s["offset"]) for r in rows for s in r["segments"]]
    assert where == [(g, o) for g, (n, _, _) in enumerate(groups) for o in range(n)]
    assert all(s["rows"] == 1 for r in rows for s in r["segments"])
    assert range_parquet.split(rows[0]) is None


def run_in_units(source, model, sink_path, dlq_path, range_bytes, *, hooks=(), narrow=()):
    """The distributed mode's data path without Ray: describe, plan, every unit processed on
    its own (those in ``narrow`` as one-row pieces, as after a crash), parts joined."""
    source = copy.copy(source)
    source.path = os.path.abspath(source.path)
    desc = range_work.describe(source)
    plan = range_parquet.plan(desc, range_bytes)
    processor = ChunkProcessor(WorkerSpec(model, list(hooks)))
    staging = {"sink": range_io.make_staging(sink_path), "dlq": range_io.make_staging(dlq_path)}
    pieces = [p for u in plan.ranges for p in (narrowed(vars(u)) if u.index in narrow else [vars(u)])]
    outs = [range_work.process(processor, desc, p, staging, "r1", 0) for p in pieces]
    for key in ("sink", "dlq"):
        final = str(sink_path if key == "sink" else dlq_path)
        range_io.publish(range_io.join_parts(final, b"", staging[key], sorted(o[f"{key}_part"] for o in outs if o[f"{key}_part"]), None),
                         final)
        range_io.remove_staging(staging[key])
    return plan, outs


def same_outputs(tmp_path, make_source, model, range_bytes, *, hooks=(), narrow=()):
    a, b = tmp_path / "inline", tmp_path / "units"
    a.mkdir()
    b.mkdir()
    report = fs.Pipeline(make_source(), model, fs.JSONLSink(a / "out.jsonl"), fs.JSONLSink(a / "dlq.jsonl"), executor="inline",
                         run_id="r1", chunk_bytes="2KiB", hooks=list(hooks)).run()
    plan, outs = run_in_units(make_source(), model, b / "out.jsonl", b / "dlq.jsonl", range_bytes, hooks=hooks, narrow=narrow)
    assert plan.records == report.rows_read == sum(o["seen"] for o in outs)
    assert sum(o["valid"] for o in outs) == report.rows_valid and sum(o["filtered"] for o in outs) == report.rows_filtered
    assert (b / "out.jsonl").read_bytes() == (a / "out.jsonl").read_bytes()
    assert _TS.sub(b"", (b / "dlq.jsonl").read_bytes()) == _TS.sub(b"", (a / "dlq.jsonl").read_bytes())
    assert sorted(os.listdir(b)) == ["dlq.jsonl", "out.jsonl"]  # no staging left behind
    return report, plan, [json.loads(line) for line in (b / "dlq.jsonl").read_text().splitlines()]


def test_a_file_of_row_groups_with_nulls_and_bad_values_equals_the_single_driver_run(tmp_path):
    path = tmp_path / "items.parquet"
    bad = write_messy_parquet(path, 500, row_group_size=60)
    report, plan, dlq = same_outputs(tmp_path, lambda: fs.ParquetSource(path, batch_rows=25), Item, 3000, hooks=[DropEven()],
                                     narrow={1})
    assert len(plan.ranges) > 3 and report.rows_filtered > 0
    assert [r["record"] for r in dlq] == bad  # global and exact, also in the narrowed unit


class Located(BaseModel):
    id: int
    name: str
    region: str


def test_a_hive_directory_of_files_units_spanning_files_and_an_oversized_group(tmp_path):
    data = tmp_path / "data"
    for region, first in (("eu", 0), ("us", 100)):
        (data / f"region={region}").mkdir(parents=True)
        with pq.ParquetWriter(data / f"region={region}" / "part-0.parquet", pa.schema([("id", pa.int64()), ("name", pa.string())])) as w:
            w.write_table(pa.table({"id": [first + 1, first + 2, None], "name": ["a", "b", "c"]}))  # a null id: invalid
            if region == "us":  # rows of ~40 KB, over max_record_bytes: not read, each to the DLQ
                w.write_table(pa.table({"id": [7, 8], "name": ["x" * 40_000, "y" * 40_000]}))
            w.write_table(pa.table({"id": [first + 3], "name": ["d"]}))
    make = lambda: fs.ParquetSource(data, max_record_bytes="10KB")  # noqa: E731
    report, plan, dlq = same_outputs(tmp_path, make, Located, 500, narrow={0})
    assert report.rows_read == 10 and report.invalid_by_stage == {"validate": 2, "parse": 2}
    assert [r["record"] for r in dlq] == [3, 7, 8, 9]
    assert dlq[2]["stage"] == "parse" and f"row group 1 of {data}/region=us/part-0.parquet averages" in dlq[2]["errors"][0]["msg"]
    assert any(len({s["path"] for s in u.segments}) == 2 for u in plan.ranges)  # a unit spans two files


def test_columns_and_a_relative_path_name_things_as_the_single_driver_mode_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_messy_parquet(tmp_path / "items.parquet", 50, row_group_size=10)
    (tmp_path / "dlq").mkdir()
    _, _, dlq = same_outputs(tmp_path / "dlq", lambda: fs.ParquetSource("items.parquet", columns=["name", "id", "price"]), Item, 100)
    assert {r["source"] for r in dlq} == {"items.parquet"} and list(dlq[0]["raw"]) == ["name", "id", "price"]


def test_isolate_writes_the_record_of_a_row_that_killed_its_actor(tmp_path):
    path = tmp_path / "items.parquet"
    write_messy_parquet(path, 30, row_group_size=8, poison=12)
    source = fs.ParquetSource(os.path.abspath(path))
    desc = range_work.describe(source)
    [unit] = range_parquet.plan(desc, 10**9).ranges
    row = next(p for p in narrowed(vars(unit)) if p["first_record"] == 11)
    staging = {"dlq": range_io.make_staging(str(tmp_path / "dlq.jsonl"))}
    out = range_work.isolate(desc, row, staging, "r1", "the Ray actor died on this record 3 times")
    assert (out["seen"], out["invalid"], out["reasons"]) == (1, 1, [["worker", "worker_crashed", "", 1]])
    [record] = [json.loads(line) for line in open(os.path.join(staging["dlq"].location, out["dlq_part"]))]
    assert (record["record"], record["line"], record["stage"]) == (12, None, "worker")
    assert record["raw"] == {"id": 12, "name": "poison-x", "price": "12.12", "note": "note 12"}
    range_io.remove_staging(staging["dlq"])


def test_a_file_changed_after_planning_fails_the_unit_as_an_accounting_error(tmp_path):
    path = tmp_path / "items.parquet"
    write_messy_parquet(path, 40, row_group_size=20)
    desc = range_work.describe(fs.ParquetSource(os.path.abspath(path)))
    units = range_parquet.plan(desc, 1).ranges
    write_messy_parquet(path, 30, row_group_size=15)  # rewritten: its second group holds 15 rows, not 20
    staging = {k: range_io.make_staging(str(tmp_path / f"{k}.jsonl")) for k in ("sink", "dlq")}
    processor = ChunkProcessor(WorkerSpec(Item))
    with pytest.raises(fs.AccountingError, match="planned 20 records"):
        range_work.process(processor, desc, vars(units[1]), staging, "r1", 0)
    assert os.listdir(staging["sink"].location) == os.listdir(staging["dlq"].location) == []  # what it had written is gone, not a part
    for directory in staging.values():
        range_io.remove_staging(directory)


def test_an_empty_file_gives_empty_outputs_as_the_single_driver_run(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "name": pa.array([], pa.string())}), path)
    report, plan, dlq = same_outputs(tmp_path, lambda: fs.ParquetSource(path), Item, 100)
    assert plan.ranges == [] and report.rows_read == 0 and dlq == []


def test_a_bad_file_fails_the_description_with_a_source_error_that_names_it(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(fs.SourceError, match=r"a\.parquet is not a readable Parquet file"):
        range_work.describe(fs.ParquetSource(str(tmp_path)))
    write_messy_parquet(tmp_path / "a.parquet", 3, row_group_size=2)
    with pytest.raises(fs.SourceError, match="has no column 'missing'"):
        range_work.describe(fs.ParquetSource(str(tmp_path), columns=["id", "missing"]))
