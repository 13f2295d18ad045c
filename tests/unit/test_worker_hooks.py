"""ChunkProcessor built from a WorkerSpec: hooks, filtering, transform/validate DLQ
entries, JSON-safe pydantic errors, setup() once per processor."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest
from pydantic import BaseModel, field_validator

import flowschema_core as fs
from flowschema_core import codec, dlq
from flowschema_core.kinds import csv as csv_kind
from flowschema_core.kinds import rows as rows_kind
from flowschema_core.worker import ChunkProcessor, WorkerSpec


class Order(BaseModel):
    id: int
    amount: decimal.Decimal
    when: dt.date | None = None

    @field_validator("amount")
    @classmethod
    def positive(cls, v: decimal.Decimal) -> decimal.Decimal:
        if v <= 0:
            raise ValueError("amount must be positive")
        return v


def process(spec: WorkerSpec, rows: list[dict]) -> dict:
    blob, _ = codec.encode(rows_kind.chunk(rows))
    result = codec.decode(ChunkProcessor(spec).process(blob))
    result["errors"] = [dlq.opened(e) for e in result["errors"]]
    assert result["n"] == len(rows) == result["valid"] + len(result["errors"]) + result["filtered"]
    return result


def lines(result: dict) -> list[dict]:
    return [json.loads(line) for line in result["data"].splitlines()]


def test_no_hooks_validates_and_serialises():
    result = process(WorkerSpec(Order), [{"id": "1", "amount": "2.50"}, {"id": "x", "amount": "1"}])
    assert lines(result) == [{"id": 1, "amount": "2.50", "when": None}]
    assert result["valid_i"] == [0]
    [error] = result["errors"]
    assert (error["i"], error["stage"], error["raw"]) == (1, "validate", {"id": "x", "amount": "1"})


def test_before_validate_hook_transforms_records():
    @fs.before_validate
    def clean(record):
        return {**record, "amount": record["amount"].replace(",", ".")}

    result = process(WorkerSpec(Order, [clean]), [{"id": 1, "amount": "12,5"}])
    assert lines(result) == [{"id": 1, "amount": "12.5", "when": None}]


def test_after_validate_hook_sees_the_model():
    seen = []

    @fs.after_validate
    def double(order):
        seen.append(type(order))
        return order.model_copy(update={"amount": order.amount * 2})

    result = process(WorkerSpec(Order, [double]), [{"id": 1, "amount": "3"}])
    assert seen == [Order]
    assert lines(result)[0]["amount"] == "6"


@pytest.mark.parametrize("stage", ["before", "after"])
def test_returning_none_filters_the_record(stage):
    def drop_odd(x):
        ident = x["id"] if isinstance(x, dict) else x.id
        return None if int(ident) % 2 else x

    hook = fs.before_validate(drop_odd) if stage == "before" else fs.after_validate(drop_odd)
    result = process(WorkerSpec(Order, [hook]), [{"id": i, "amount": "1"} for i in range(5)])
    assert result["filtered"] == 2 and result["valid"] == 3
    assert result["valid_i"] == [0, 2, 4]
    assert [r["id"] for r in lines(result)] == [0, 2, 4]
    assert result["errors"] == []


def test_exception_in_before_hook_is_a_transform_error_naming_the_hook():
    def explode(record):
        if record["id"] == 2:
            raise KeyError("no such column")
        return record

    result = process(WorkerSpec(Order, [fs.before_validate(explode)]), [{"id": 1, "amount": "1"}, {"id": 2, "amount": "1"}])
    assert result["valid"] == 1
    [error] = result["errors"]
    assert error["stage"] == "transform" and error["i"] == 1
    assert error["raw"] == {"id": 2, "amount": "1"}
    [entry] = error["errors"]
    assert entry["type"] == "hook_error"
    assert "before_validate hook" in entry["msg"] and "explode" in entry["msg"]
    assert "KeyError" in entry["msg"] and "no such column" in entry["msg"]


def test_exception_in_after_hook_of_a_hook_class_names_the_class():
    class Enrich(fs.Hook):
        def after_validate(self, model):
            raise RuntimeError("lookup failed")

    result = process(WorkerSpec(Order, [Enrich()]), [{"id": 1, "amount": "1"}])
    [error] = result["errors"]
    assert error["stage"] == "transform"
    assert "after_validate hook Enrich" in error["errors"][0]["msg"]
    assert "RuntimeError: lookup failed" in error["errors"][0]["msg"]


def test_after_hook_returning_the_wrong_type_is_a_transform_error():
    result = process(WorkerSpec(Order, [fs.after_validate(lambda m: {"not": "a model"})]), [{"id": 1, "amount": "1"}])
    [error] = result["errors"]
    assert error["stage"] == "transform"
    assert "returned dict, expected Order or None" in error["errors"][0]["msg"]


def test_hooks_run_in_order_and_a_filter_stops_the_chain():
    calls = []

    class Trace(fs.Hook):
        def __init__(self, tag, drop=False):
            self.tag, self.drop = tag, drop

        def before_validate(self, record):
            calls.append(self.tag)
            return None if self.drop else record

    result = process(WorkerSpec(Order, [Trace("a"), Trace("b", drop=True), Trace("c")]), [{"id": 1, "amount": "1"}])
    assert calls == ["a", "b"]
    assert result["filtered"] == 1


def test_plain_callable_is_a_before_validate_hook():
    hook = fs.hooks.as_hook(lambda r: None)
    assert fs.hooks.overrides(hook, "before_validate") and not fs.hooks.overrides(hook, "after_validate")
    with pytest.raises(TypeError):
        fs.hooks.as_hook(42)


def test_pydantic_errors_are_json_safe():
    # an arbitrary object cannot travel in a chunk, so a hook puts it in
    weird = {"id": None, "amount": dt.datetime(2020, 1, 1), "when": [1, 2]}
    add_object = fs.before_validate(lambda r: {**r, "id": object()} if r["id"] is None else r)
    result = process(WorkerSpec(Order, [add_object]), [weird, {"id": 1, "amount": "-5"}])
    assert result["valid"] == 0
    for error in result["errors"]:
        assert error["stage"] == "validate"
        for entry in error["errors"]:
            assert set(entry) == {"type", "loc", "msg", "input"}
            assert isinstance(entry["loc"], list)
            json.dumps(entry)  # JSON-safe: no bytes, datetimes or arbitrary objects
    by_loc = {tuple(e["loc"]): e for e in result["errors"][0]["errors"]}
    assert set(by_loc) == {("id",), ("amount",), ("when",)}
    assert by_loc[("id",)]["type"] == "int_type"
    assert by_loc[("id",)]["input"].startswith("<object object")
    negative = result["errors"][1]["errors"][0]
    assert negative["loc"] == ["amount"] and negative["type"] == "value_error"
    assert "amount must be positive" in negative["msg"] and negative["input"] == "-5"


def test_setup_is_called_once_per_processor():
    class Lookup(fs.Hook):
        setups = 0

        def setup(self):
            type(self).setups += 1
            self.table = {1: "one"}

        def before_validate(self, record):
            return {**record, "amount": "1"} if self.table.get(record["id"]) else record

    hook = Lookup()
    processor = ChunkProcessor(WorkerSpec(Order, [hook]))
    assert Lookup.setups == 1
    for _ in range(3):
        blob, _ = codec.encode(rows_kind.chunk([{"id": 1, "amount": "x"}]))
        assert codec.decode(processor.process(blob))["valid"] == 1
    assert Lookup.setups == 1
    ChunkProcessor(WorkerSpec(Order, [hook]))
    assert Lookup.setups == 2


def test_setup_once_per_pipeline_run(run_pipeline, tmp_path):
    class Counting(fs.Hook):
        setups = 0

        def setup(self):
            type(self).setups += 1

        def before_validate(self, record):
            return record

    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "amount": "1"}) + "\n" for i in range(200)))
    run = run_pipeline(fs.JSONLSource(path), model=Order, hooks=[Counting()], chunk_bytes=256, max_bytes_in_flight=10_000)
    assert run.report.chunks > 5 and run.report.rows_valid == 200
    assert Counting.setups == 1


def test_hook_outcomes_through_the_pipeline(run_pipeline, tmp_path):
    def hook(record):
        if record["id"] == 1:
            return None
        if record["id"] == 2:
            raise ValueError("bad id")
        return record

    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "amount": "1"}) + "\n" for i in range(4)))
    run = run_pipeline(fs.JSONLSource(path), model=Order, hooks=[hook])
    assert (run.report.rows_read, run.report.rows_valid, run.report.rows_invalid, run.report.rows_filtered) == (4, 2, 1, 1)
    assert run.report.invalid_by_stage == {"transform": 1}
    assert run.dlq[0]["record"] == 3 and "bad id" in run.dlq[0]["errors"][0]["msg"]


@pytest.mark.parametrize("form", ["csv", "python"])
def test_other_output_forms(form):
    result = process(WorkerSpec(Order, output_form=form), [{"id": 1, "amount": "2.5", "when": "2024-02-29"}])
    if form == "csv":
        assert result["data"] == b"1,2.5,2024-02-29\n"
    else:
        assert result["data"] == [[1, decimal.Decimal("2.5"), dt.date(2024, 2, 29)]]


def test_unknown_output_form_is_refused():
    with pytest.raises(ValueError, match="output form"):
        ChunkProcessor(WorkerSpec(Order, output_form="xml"))


def test_unserialisable_record_goes_to_the_dlq():
    from pydantic import ConfigDict

    class Anything(BaseModel):
        model_config = ConfigDict(extra="allow")

    deep: object = 1
    for _ in range(300):
        deep = {"a": deep}
    result = process(WorkerSpec(Anything), [{"ok": 1}, {"deep": deep}])
    assert result["valid"] == 1 and len(result["errors"]) == 1
    assert result["errors"][0]["stage"] == "sink" and result["errors"][0]["i"] == 1


def test_pydantic_error_with_undecodable_bytes_input_is_json_safe():
    result = process(WorkerSpec(Order), [{"id": 1, "amount": "1", "when": b"\xff\xfe"}])
    [error] = result["errors"]
    assert error["stage"] == "validate" and error["errors"][0]["loc"] == ["when"]
    json.dumps(error["errors"])


def test_a_validator_raising_something_other_than_valueerror_is_that_records_dlq_entry():
    from pydantic import field_validator

    class Lookup(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def known(cls, value: str) -> str:
            return {"a": "alpha"}[value]  # KeyError for anything else

    result = process(WorkerSpec(Lookup), [{"name": "a"}, {"name": "b"}, {"name": "a"}])
    assert result["valid"] == 2 and result["n"] == 3
    [error] = result["errors"]
    assert error["i"] == 1 and error["stage"] == "validate"
    assert "KeyError" in error["errors"][0]["msg"]
    # the CSV fast path (no hooks) too
    dialect = {"delimiter": ",", "quotechar": '"', "doublequote": True, "strict": True, "quoting_enabled": True}
    blob, _ = codec.encode(csv_kind.chunk(b"a\nb\na\n", 1, ["name"], dialect, "utf-8"))
    csv_result = codec.decode(ChunkProcessor(WorkerSpec(Lookup)).process(blob))
    assert (csv_result["n"], csv_result["valid"], [e["i"] for e in csv_result["errors"]]) == (3, 2, [1])


def test_a_dlq_record_holding_an_unencodable_value_keeps_its_repr():
    """A hook that put an arbitrary object into the record, then raised: the chunk still
    comes back, with that record's raw kept and the object shown as its repr (the DLQ
    entry is JSON from the worker on, every value made JSON by dlq.json_default)."""

    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"

    def enrich_then_fail(record):
        record["thing"] = Opaque()  # mutates the record the DLQ entry will show
        raise RuntimeError("lookup failed")

    result = process(WorkerSpec(Order, [fs.before_validate(enrich_then_fail)]), [{"id": 1, "amount": "1"}])
    [error] = result["errors"]
    assert error["stage"] == "transform"
    assert error["raw"] == {"id": 1, "amount": "1", "thing": "Opaque()"} and error["raw_text"] is None


def test_a_dlq_record_json_cannot_hold_keeps_its_repr():
    """A hook that put a tuple key into the record, then raised: JSON has no such key, so
    the entry keeps the record's repr (once, the whole chunk failed)."""

    def tag_then_fail(record):
        record[("a", 1)] = "x"
        raise RuntimeError("lookup failed")

    result = process(WorkerSpec(Order, [fs.before_validate(tag_then_fail)]), [{"id": 1, "amount": "1"}, {"id": 2, "amount": "2"}])
    assert [(e["i"], e["stage"], e["raw"]) for e in result["errors"]] == [(0, "transform", None), (1, "transform", None)]
    assert "('a', 1): 'x'" in result["errors"][0]["raw_text"]


# -- the result allowance ---------------------------------------------------------------
def test_a_result_larger_than_its_allowance_comes_back_as_its_size_only():
    rows = [{"id": i, "amount": "1.5"} for i in range(1, 201)]
    blob, _ = codec.encode(rows_kind.chunk(rows))
    processor = ChunkProcessor(WorkerSpec(Order))
    full = codec.unframe(processor.process(blob))
    fits = codec.decode(processor.process(codec.with_allowance(blob, len(full))))
    assert fits["valid"] == 200  # exactly the allowance: the data
    answer = codec.decode(processor.process(codec.with_allowance(blob, len(full) - 1)))
    assert answer == {"result_too_large": len(full)}


def test_a_one_record_chunk_passes_its_allowance_it_cannot_be_split():
    blob, _ = codec.encode(rows_kind.chunk([{"id": 1, "amount": "2.5"}]))
    result = codec.decode(ChunkProcessor(WorkerSpec(Order)).process(codec.with_allowance(blob, 1)))
    assert (result["n"], result["valid"]) == (1, 1)
