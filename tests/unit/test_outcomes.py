"""One place decides a record's outcome (:func:`flowschema_core.dlq.outcome_of`): the CSV
hot loop and the general path agree, and a MemoryError is never one record's verdict."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, field_serializer, field_validator

from flowschema_core import codec, dlq
from flowschema_core.kinds import csv as csv_kind
from flowschema_core.kinds import rows as rows_kind
from flowschema_core.worker import ChunkProcessor, WorkerSpec

DIALECT = {"delimiter": ",", "quotechar": '"'}


class Row(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def lookup(cls, value: str) -> str:
        if value == "keyerror":
            raise KeyError(value)
        if value == "oom-validate":
            raise MemoryError
        return value

    @field_serializer("name")
    def dump_name(self, value: str) -> str:
        if value == "bad-dump":
            raise RuntimeError("cannot serialise")
        return value


def _errors(blob: bytes, hooks=()) -> list[dict]:
    return [dlq.opened(e) for e in codec.decode(ChunkProcessor(WorkerSpec(Row, list(hooks))).process(blob))["errors"]]


def _csv(*names: str) -> bytes:
    return codec.encode(csv_kind.chunk(("".join(f"{n}\n" for n in names)).encode(), 1, ["name"], DIALECT, "utf-8"))[0]


def _rows(*names: str) -> bytes:
    return codec.encode(rows_kind.chunk([[n] for n in names], ["name"]))[0]


@pytest.mark.parametrize("make", [_csv, _rows], ids=["csv-hot-loop", "general-path"])
def test_both_paths_give_the_same_verdicts(make):
    errors = _errors(make("ok", "keyerror", "bad-dump"))
    assert [(e["i"], e["stage"], e["errors"][0]["type"]) for e in errors] == [(1, "validate", "validator_error"), (2, "sink", "serialization_error")]


@pytest.mark.parametrize("make", [_csv, _rows], ids=["csv-hot-loop", "general-path"])
def test_memory_error_in_validation_is_reraised_so_the_chunk_is_split(make):
    with pytest.raises(MemoryError):
        _errors(make("ok", "oom-validate"))


def test_memory_error_in_a_hook_is_reraised_too():
    from flowschema_core import Hook

    class Hungry(Hook):
        def after_validate(self, model):
            raise MemoryError

    with pytest.raises(MemoryError):
        _errors(_rows("ok"), hooks=[Hungry()])


def test_a_hook_error_names_the_hook():
    from flowschema_core import before_validate

    def explode(record):
        raise ValueError("no")

    errors = _errors(_csv("a"), hooks=[before_validate(explode)])
    assert errors[0]["stage"] == "transform"
    assert errors[0]["errors"][0]["msg"].endswith("explode: ValueError: no") and "before_validate hook" in errors[0]["errors"][0]["msg"]


def test_outcome_of_reraises_what_is_not_an_exception():
    with pytest.raises(KeyboardInterrupt):
        dlq.outcome_of(KeyboardInterrupt(), "validate")


def test_dlq_fields_are_the_dlq_record_type():
    assert dlq.DLQ_FIELDS == ["run_id", "source", "record", "line", "stage", "errors", "raw", "raw_text", "ts"]
    assert dlq.STAGES == ("parse", "transform", "validate", "worker", "sink")
