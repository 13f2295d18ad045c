"""ParquetSink / ParquetSource against real files, read back with pyarrow."""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import pathlib
import uuid
from decimal import Decimal
from typing import Literal

import pytest
from pydantic import AwareDatetime, BaseModel, Field, NaiveDatetime

import flowschema_core as fs
from tests.helpers import run_with_dlq

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: int | None = None
    id: uuid.UUID


class Everything(BaseModel):
    i: int
    f: float
    b: bool
    s: str
    raw: bytes
    price: Decimal = Field(max_digits=10, decimal_places=2)
    free_decimal: Decimal
    at: AwareDatetime
    wall: NaiveDatetime
    plain: dt.datetime
    day: dt.date
    clock: dt.time
    uid: uuid.UUID
    color: Color
    kind: Literal["a", "b"]
    maybe: int | None = None
    address: Address
    tags: list[str]
    scores: list[float | None]
    people: list[Address]
    attrs: dict[str, int]


def _write_jsonl(path: pathlib.Path, records: list[dict]) -> pathlib.Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
CEST = dt.timezone(dt.timedelta(hours=2))


def _everything_record(n: int) -> dict:
    return {
        "i": 2**62 + n, "f": 1.5 + n, "b": n % 2 == 0, "s": f"héllo {n} ✓", "raw": "bytes!",
        "price": "12345678.90", "free_decimal": "-1234.567890123",
        "at": f"2024-03-01T12:00:0{n}+02:00", "wall": "2024-03-01T08:30:00", "plain": "2024-03-01T08:30:00Z",
        "day": "2024-02-29", "clock": "23:59:58.123456", "uid": str(UID), "color": "blue", "kind": "b",
        "maybe": None if n else 7,
        "address": {"city": "Oslo", "zip": 150, "id": str(UID)},
        "tags": ["x", "y"], "scores": [1.0, None], "people": [{"city": "Bergen", "id": str(UID)}], "attrs": {"k": n},
    }


def test_every_type_round_trips(tmp_path: pathlib.Path) -> None:
    src = _write_jsonl(tmp_path / "in.jsonl", [_everything_record(0), _everything_record(1)])
    out = tmp_path / "out.parquet"
    report, dlq = run_with_dlq(fs.JSONLSource(src), Everything, fs.ParquetSink(out), tmp_path)
    assert report.rows_valid == 2 and dlq == []

    table = pq.read_table(out)
    schema = table.schema
    expected_types = {
        "i": pa.int64(), "f": pa.float64(), "b": pa.bool_(), "s": pa.string(), "raw": pa.binary(),
        "price": pa.decimal128(10, 2), "free_decimal": pa.decimal128(38, 9),
        "at": pa.timestamp("us", tz="UTC"), "wall": pa.timestamp("us"), "plain": pa.timestamp("us", tz="UTC"),
        "day": pa.date32(), "clock": pa.time64("us"), "uid": pa.string(), "color": pa.string(), "kind": pa.string(),
        "maybe": pa.int64(),
    }
    for name, typ in expected_types.items():
        assert schema.field(name).type == typ, name
    assert schema.field("maybe").nullable and not schema.field("i").nullable
    assert pa.types.is_struct(schema.field("address").type)
    assert schema.field("address").type.field("zip").nullable
    assert pa.types.is_list(schema.field("tags").type) and schema.field("tags").type.value_type == pa.string()
    assert schema.field("scores").type.value_field.nullable and not schema.field("tags").type.value_field.nullable
    assert pa.types.is_map(schema.field("attrs").type)

    rows = table.to_pylist()
    r = rows[0]
    utc = dt.timezone.utc
    assert r["i"] == 2**62 and r["f"] == 1.5 and r["b"] is True and r["s"] == "héllo 0 ✓" and r["raw"] == b"bytes!"
    assert r["price"] == Decimal("12345678.90") and r["free_decimal"] == Decimal("-1234.567890123")
    assert r["at"] == dt.datetime(2024, 3, 1, 10, 0, 0, tzinfo=utc)  # converted to UTC
    assert r["at"].utcoffset() == dt.timedelta(0)
    assert r["wall"] == dt.datetime(2024, 3, 1, 8, 30) and r["wall"].tzinfo is None
    assert r["plain"] == dt.datetime(2024, 3, 1, 8, 30, tzinfo=utc)
    assert r["day"] == dt.date(2024, 2, 29) and r["clock"] == dt.time(23, 59, 58, 123456)
    assert r["uid"] == str(UID) and r["color"] == "blue" and r["kind"] == "b"
    assert r["maybe"] == 7 and rows[1]["maybe"] is None
    assert r["address"] == {"city": "Oslo", "zip": 150, "id": str(UID)}
    assert r["tags"] == ["x", "y"] and r["scores"] == [1.0, None]
    assert r["people"] == [{"city": "Bergen", "zip": None, "id": str(UID)}]
    assert dict(r["attrs"]) == {"k": 0}
    # Parquet → model again: the typed values validate back into the same objects.
    back = Everything.model_validate({**r, "attrs": dict(r["attrs"])})
    assert back == Everything.model_validate(_everything_record(0))


def test_value_the_arrow_type_cannot_hold_goes_to_dlq_stage_sink(tmp_path: pathlib.Path) -> None:
    class Amount(BaseModel):
        n: int
        big: int
        free: Decimal

    records = [
        {"n": 1, "big": 5, "free": "1.5"},
        {"n": 2, "big": 2**70, "free": "1"},  # beyond int64
        {"n": 3, "big": 5, "free": "0.1234567891"},  # 10 decimals > decimal128(38, 9)
        {"n": 4, "big": 6, "free": "2"},
    ]
    src = _write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.parquet"
    report, dlq = run_with_dlq(fs.JSONLSource(src), Amount, fs.ParquetSink(out), tmp_path)
    assert (report.rows_valid, report.invalid_by_stage) == (2, {"sink": 2})
    assert [d["record"] for d in dlq] == [2, 3]
    assert all(d["stage"] == "sink" for d in dlq)
    assert "'big'" in dlq[0]["errors"][0]["msg"] and "'free'" in dlq[1]["errors"][0]["msg"]
    assert dlq[0]["raw"]["n"] == 2
    assert pq.read_table(out).column("n").to_pylist() == [1, 4]


def test_partition_by_writes_a_hive_dataset(tmp_path: pathlib.Path) -> None:
    class Sale(BaseModel):
        region: str
        day: dt.date
        amount: Decimal = Field(max_digits=8, decimal_places=2)
        note: str | None = None

    records = [
        {"region": "eu/west", "day": "2024-01-01", "amount": "1.10"},
        {"region": "us", "day": "2024-01-02", "amount": "2.20"},
        {"region": "eu/west", "day": "2024-01-01", "amount": "3.30", "note": "n"},
        {"region": "us", "day": "2024-01-01", "amount": "4.40"},
    ]
    src = _write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "sales"
    report, _ = run_with_dlq(fs.JSONLSource(src), Sale, fs.ParquetSink(out, partition_by=["region", "day"]), tmp_path, chunk_bytes=64)
    assert report.rows_valid == 4 and report.chunks > 1
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert files == [
        "region=eu%2Fwest/day=2024-01-01/part-0.parquet",
        "region=us/day=2024-01-01/part-0.parquet",
        "region=us/day=2024-01-02/part-0.parquet",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp output left behind"
    one = pq.read_table(out / "region=eu%2Fwest/day=2024-01-01/part-0.parquet")
    assert one.column_names == ["amount", "note"]  # partition columns live in the path
    assert one.column("amount").to_pylist() == [Decimal("1.10"), Decimal("3.30")]
    import pyarrow.dataset as ds

    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    got = sorted((r["region"], str(r["day"]), r["amount"]) for r in table.to_pylist())
    assert got == sorted((r["region"], r["day"], Decimal(r["amount"])) for r in records)
    # ParquetSource reads the dataset back, partition values included.
    back, dlq = run_with_dlq(fs.ParquetSource(out), Sale, fs.JSONLSink(tmp_path / "back.jsonl"), tmp_path)
    assert back.rows_valid == 4 and dlq == []
    with open(tmp_path / "back.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert sorted((r["region"], r["day"], r["amount"]) for r in rows) == sorted((r["region"], r["day"], r["amount"]) for r in records)


def test_row_group_rows_and_a_second_run_replace_atomically(tmp_path: pathlib.Path) -> None:
    class Row(BaseModel):
        n: int

    src = _write_jsonl(tmp_path / "in.jsonl", [{"n": i} for i in range(1000)])
    out = tmp_path / "out.parquet"
    run_with_dlq(fs.JSONLSource(src), Row, fs.ParquetSink(out, row_group_rows=300), tmp_path, chunk_bytes=1024)
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [300, 300, 300, 100]
    assert pq.read_table(out).column("n").to_pylist() == list(range(1000))

    class Bad(BaseModel):
        n: int

        def model_post_init(self, _: object) -> None:
            if self.n == 500:
                raise KeyboardInterrupt  # a failed run: the old file must stay as it was

    with pytest.raises(fs.FlowSchemaError):
        fs.Pipeline(fs.JSONLSource(src), Bad, fs.ParquetSink(out), errors=fs.JSONLSink(tmp_path / "e.jsonl"),
                    executor="inline", chunk_bytes=1024, sample_interval=60).run()
    assert pq.read_table(out).num_rows == 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp output left behind"


def _sample_file(path: pathlib.Path, n: int, start: int = 0) -> pathlib.Path:
    table = pa.table({
        "id": pa.array(range(start, start + n), pa.int64()),
        "name": pa.array([f"n{i}" for i in range(start, start + n)]),
        "amount": pa.array([Decimal(i) / 100 for i in range(start, start + n)], pa.decimal128(12, 2)),
        "at": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, path, row_group_size=max(1, n // 3))
    return path


class Narrow(BaseModel):
    id: int
    name: str


def test_source_reads_a_column_subset(tmp_path: pathlib.Path) -> None:
    path = _sample_file(tmp_path / "a.parquet", 2500)
    source = fs.ParquetSource(path, columns=["name", "id"], batch_rows=100)
    report, dlq = run_with_dlq(source, Narrow, fs.JSONLSink(tmp_path / "out.jsonl"), tmp_path, chunk_bytes=2048)
    assert report.rows_read == report.rows_valid == 2500 and dlq == [] and report.chunks > 1
    assert source.fields == ["name", "id"]
    with open(tmp_path / "out.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert rows[0] == {"id": 0, "name": "n0"} and rows[-1] == {"id": 2499, "name": "n2499"}

    class Typed(BaseModel):
        id: int
        amount: Decimal
        at: AwareDatetime

    first = next(fs.ParquetSource(path).records())[1]
    assert Typed.model_validate(dict(zip(["id", "name", "amount", "at"], first))).at.tzinfo is not None

    with pytest.raises(fs.SourceError, match="no column 'nope'"):
        list(fs.ParquetSource(path, columns=["id", "nope"]).records())


def test_source_reads_a_directory_and_a_glob_as_one_source(tmp_path: pathlib.Path) -> None:
    d = tmp_path / "parts"
    d.mkdir()
    _sample_file(d / "b.parquet", 50, start=50)
    _sample_file(d / "a.parquet", 50, start=0)
    (d / "_SUCCESS").write_text("")
    (d / "notes.txt").write_text("not parquet")
    for location in (d, os.path.join(d, "*.parquet")):
        source = fs.ParquetSource(location)
        report, dlq = run_with_dlq(source, Narrow, fs.JSONLSink(tmp_path / "out.jsonl"), tmp_path)
        assert report.rows_valid == 100 and dlq == []
        assert [os.path.basename(p) for p in source.files_read] == ["a.parquet", "b.parquet"]
        with open(tmp_path / "out.jsonl") as f:
            assert [json.loads(line)["id"] for line in f] == list(range(100))


@pytest.mark.parametrize("content", [b"", b"PAR1 this is not parquet", b"id,name\n1,x\n"])
def test_corrupt_or_non_parquet_file_is_a_source_error(tmp_path: pathlib.Path, content: bytes) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(content)
    with pytest.raises(fs.SourceError, match=r"bad\.parquet"):
        run_with_dlq(fs.ParquetSource(bad), Narrow, fs.JSONLSink(tmp_path / "out.jsonl"), tmp_path)
    assert not (tmp_path / "out.jsonl").exists()


def test_truncated_file_and_missing_paths_are_source_errors(tmp_path: pathlib.Path) -> None:
    good = _sample_file(tmp_path / "good.parquet", 3000)
    data = good.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2] + data[-8:])  # footer kept, row groups gone
    with pytest.raises(fs.SourceError, match=r"cut\.parquet"):
        list(fs.ParquetSource(cut).records())
    with pytest.raises(fs.SourceError, match="not found"):
        list(fs.ParquetSource(tmp_path / "missing.parquet").records())
    with pytest.raises(fs.SourceError, match="no files match"):
        list(fs.ParquetSource(tmp_path / "nothing-*.parquet").records())


def test_registry_and_parquetread_jsonl(tmp_path: pathlib.Path) -> None:
    from flowschema_core.registry import sink_for, source_for

    path = _sample_file(tmp_path / "a.parquet", 10)
    assert isinstance(source_for(str(path)), fs.ParquetSource)
    assert isinstance(sink_for(str(tmp_path / "x.parquet")), fs.ParquetSink)

    class Strict(BaseModel):
        id: int
        name: Literal["n1", "n2"]

    errors = tmp_path / "dlq.parquet"
    report = fs.Pipeline(fs.ParquetSource(path), Strict, fs.ParquetSink(tmp_path / "ok.parquet"), errors=fs.ParquetSink(errors),
                         executor="inline", sample_interval=60).run()
    assert report.rows_valid == 2 and report.rows_invalid == 8
    dlq = pq.read_table(errors).to_pylist()
    assert len(dlq) == 8 and dlq[0]["stage"] == "validate" and json.loads(dlq[0]["raw"])["name"] == "n0"


def test_parquet_chunks_travel_as_arrow_and_poison_records_are_isolated(tmp_path):
    """Parquet input crosses to the workers as Arrow IPC chunks; a record that kills its
    worker every time is found by splitting those chunks, like any other."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.integration.pipeline_models import Item, Poison

    rows = [{"id": i, "name": "poison-x" if i == 1234 else f"item {i}", "price": f"{i}.5", "note": None} for i in range(1, 3001)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=700)
    report = fs.Pipeline(fs.ParquetSource(tmp_path / "in.parquet"), Item, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"),
                         executor=fs.MultiprocessingExecutor(workers=2), chunk_bytes="8KiB", hooks=[Poison()]).run()
    assert report.chunks > 5 and report.rows_read == 3000 and report.rows_valid == 2999
    [dlq] = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert dlq["stage"] == "worker" and dlq["record"] == 1234 and dlq["raw"]["name"] == "poison-x"
    ids = [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert ids == [i for i in range(1, 3001) if i != 1234]


def test_a_row_group_of_oversized_rows_goes_to_the_dlq_in_its_place(tmp_path: pathlib.Path) -> None:
    # Three row groups; the middle one holds rows of ~40 KB each, over max_record_bytes.
    path = tmp_path / "mixed.parquet"
    with pq.ParquetWriter(path, pa.schema([("id", pa.int64()), ("name", pa.string())])) as writer:
        writer.write_table(pa.table({"id": [1, 2], "name": ["a", "b"]}))
        writer.write_table(pa.table({"id": [3, 4, 5], "name": [f"{i}" * 40_000 for i in range(3)]}))
        writer.write_table(pa.table({"id": [6], "name": ["f"]}))
    report, dlq = run_with_dlq(fs.ParquetSource(path, max_record_bytes="10KB"), Narrow, fs.JSONLSink(tmp_path / "out.jsonl"), tmp_path)
    assert (report.rows_read, report.rows_valid, report.invalid_by_stage) == (6, 3, {"parse": 3})
    assert [r["record"] for r in dlq] == [3, 4, 5]
    assert "row group 1 of" in dlq[0]["errors"][0]["msg"] and "max_record_bytes=10,000" in dlq[0]["errors"][0]["msg"]
    with open(tmp_path / "out.jsonl") as f:
        assert [json.loads(line)["id"] for line in f] == [1, 2, 6]
    with pytest.raises(fs.SourceError, match=r"row group 1 of .* averages"):
        list(fs.ParquetSource(path, max_record_bytes="10KB").records())
    # Only the columns read count: without "name", every row is small.
    source = fs.ParquetSource(path, columns=["id"], max_record_bytes="10KB")
    assert [row for _, row in source.records()] == [[1], [2], [3], [4], [5], [6]]
