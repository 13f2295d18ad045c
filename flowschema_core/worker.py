"""What a worker does with a chunk: parse, run hooks, validate, encode for the sink.

::

    blob ─► codec.decode ─► kinds.kind_of(chunk).parse ─► records
                               │  before_validate hooks   (exception → DLQ "transform")
                               │  Model.model_validate     (ValidationError → DLQ "validate")
                               │  after_validate hooks     (None → filtered)
                               ▼
            valid rows, already in the sink's form ("jsonl" bytes, "csv" bytes, "python" lists)
            + DLQ entries numbered within the chunk  ─► codec.encode ─► result blob

A worker builds its :class:`ChunkProcessor` once (model, hooks, output form) and reuses it
for every chunk. The same code runs inline, in a process and in a Ray actor. How a chunk
becomes records is its kind's business (:mod:`flowschema_core.kinds`); what an exception
means for a record is :func:`flowschema_core.dlq.outcome_of`'s.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaSerializer, SchemaValidator

from . import codec, dlq
from .dlq import ChunkError, ChunkResult, ErrorEntry, Stage, outcome_of
from .hooks import Hook, overrides
from .kinds import kind_of
from .nulls import NullPolicy
from .watchdog import Beacon

OUTPUT_FORMS = ("jsonl", "csv", "python")


@dataclass
class WorkerSpec:
    """Everything a worker needs, sent once when it starts (cloudpickled: code, not data)."""

    model: type[BaseModel]
    hooks: list[Hook] = field(default_factory=list)
    output_form: str = "jsonl"
    #: Seconds a record's hooks and validation may take (None: no limit); the executor
    #: enforces it from outside the worker (see :mod:`flowschema_core.watchdog`).
    record_timeout: float | None = None
    #: What the source's chunks need in every worker (an Excel workbook's shared strings),
    #: msgpack bytes, sent once per worker instead of in every chunk: see Source.worker_context.
    context: bytes | None = None


class ChunkProcessor:
    """Turns chunk blobs into result blobs. Built once per worker."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.model = spec.model
        self.validate = _fast_validate(spec.model)
        serializer = spec.model.__dict__.get("__pydantic_serializer__")
        self.to_json = serializer.to_json if isinstance(serializer, SchemaSerializer) else None
        self.fields = list(spec.model.model_fields)
        self.output_form = spec.output_form
        if self.output_form not in OUTPUT_FORMS:
            raise ValueError(f"unknown output form {self.output_form!r}")
        for hook in spec.hooks:
            hook.setup()
        self.before = [h for h in spec.hooks if overrides(h, "before_validate")]
        self.after = [h for h in spec.hooks if overrides(h, "after_validate")]
        self.dump = self._dumper()
        self.nulls = NullPolicy(spec.model)  # what an empty cell means, per field
        #: Set by a worker whose executor enforces ``record_timeout``.
        self.beacon: Beacon | None = None
        self.stuck: dict[int, list[str]] | None = None  # records of this chunk not to run: [error type, reason]
        # The source's worker context, unpacked once; kinds keep what they build from it here.
        self.context: dict[str, Any] = codec.unpack(spec.context) if spec.context else {}

    def _dumper(self) -> Any:
        """The function turning a valid model into one row of the sink's form."""
        model, fields, to_json = self.model, self.fields, self.to_json
        if self.output_form == "jsonl":
            def dump(obj: BaseModel) -> Any:
                if to_json is not None and obj.__class__ is model:
                    return to_json(obj)
                return type(obj).__pydantic_serializer__.to_json(obj)
        elif self.output_form == "csv":
            def dump(obj: BaseModel) -> Any:
                dumped = obj.model_dump(mode="json")
                return [_csv_cell(dumped[f]) for f in fields]
        else:
            def dump(obj: BaseModel) -> Any:
                return list(obj.model_dump().values())
        return dump

    # -- entry point -----------------------------------------------------------------
    def process(self, blob: bytes) -> bytes:
        beacon = self.beacon
        if beacon is not None:
            beacon.next_chunk()
        chunk = codec.decode(blob)
        self.stuck = chunk.pop("stuck", None) if isinstance(chunk, dict) else None
        batch = Batch()
        kind_of(chunk).parse(chunk, self, batch)
        if beacon is not None:
            beacon.between_records()
        # DLQ entries are JSON bytes already (their raw values, whatever they are, made
        # JSON by dlq.json_default), so only valid rows travel as values.
        return codec.encode(batch.result(self.output_form, self.fields))[0]

    # -- one record ------------------------------------------------------------------
    def record(self, record: dict[str, Any], i: int, line: int | None, batch: Batch, raw: Any = None) -> None:
        """Hooks, validation and serialisation of one parsed record; the outcome goes in
        ``batch``. ``raw`` is the record as read, for the DLQ, when ``record`` is not."""
        raw = record if raw is None else raw
        if self.beacon is not None:
            self.beacon.on_record(i)
            if self.stuck is not None and i in self.stuck:
                error_type, reason = self.stuck[i]
                batch.fail(i, line, "worker", [dlq.entry(error_type, reason)], raw)
                return
        for hook in self.before:
            try:
                record = hook.before_validate(record)  # type: ignore[assignment]
            except BaseException as exc:  # noqa: BLE001 - outcome_of re-raises what is not the record's
                batch.fail(i, line, *outcome_of(exc, "before_validate", hook.name), raw)
                return
            if record is None:
                batch.filtered += 1
                return
        try:
            obj = self.validate(record)
        except BaseException as exc:  # noqa: BLE001 - as above
            batch.fail(i, line, *outcome_of(exc, "validate"), raw)
            return
        for hook in self.after:
            try:
                result = hook.after_validate(obj)
            except BaseException as exc:  # noqa: BLE001 - as above
                batch.fail(i, line, *outcome_of(exc, "after_validate", hook.name), raw)
                return
            if result is None:
                batch.filtered += 1
                return
            if not isinstance(result, self.model):
                msg = f"after_validate hook {hook.name} returned {type(result).__name__}, expected {self.model.__name__} or None"
                batch.fail(i, line, "transform", [dlq.entry("hook_error", msg)], raw)
                return
            obj = result
        try:
            out = self.dump(obj)
        except BaseException as exc:  # noqa: BLE001 - as above
            batch.fail(i, line, *outcome_of(exc, "dump"), raw)
            return
        batch.valid.append(out)
        batch.valid_i.append(i)


_BASE_VALIDATE = BaseModel.__dict__["model_validate"].__func__


def _fast_validate(model: type[BaseModel]) -> Any:
    """``model.model_validate``, minus a Python frame per record when that is the same.

    The schema validator is called directly only when the model is fully built and does
    not override ``model_validate``; otherwise the classmethod runs as usual."""
    validator = model.__dict__.get("__pydantic_validator__")
    if isinstance(validator, SchemaValidator) and getattr(model.model_validate, "__func__", None) is _BASE_VALIDATE:
        return validator.validate_python
    return model.model_validate


class Batch:
    """Results of one chunk, collected record by record by its kind's ``parse``."""

    def __init__(self) -> None:
        self.valid: list[Any] = []  # valid rows, already in the sink's form
        self.valid_i: list[int] = []  # record index (in the chunk) of each valid row
        self.errors: list[ChunkError] = []
        self.filtered = 0
        self.seen = 0
        self.origin: list[list[Any]] | None = None  # the chunk's lineage, handed back as is

    def fail(self, i: int, line: int | None, stage: Stage, errors: list[ErrorEntry], raw: Any = None, raw_text: str | None = None) -> None:
        self.errors.append(dlq.chunk_error(i, line, stage, errors, raw, raw_text))

    def parse_error(self, i: int, line: int | None, reason: str, raw_text: str | None) -> None:
        self.errors.append(dlq.parse_error(i, line, reason, raw_text))

    def result(self, form: str, fields: list[str]) -> ChunkResult:
        valid = self.valid
        if form == "jsonl":
            data: Any = b"\n".join(valid) + b"\n" if valid else b""
        elif form == "csv":
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(valid)
            data = out.getvalue().encode("utf-8", "backslashreplace")
        else:
            data = valid
        return {"n": self.seen, "valid": len(valid), "filtered": self.filtered, "data": data, "valid_i": self.valid_i,
                "errors": self.errors, "origin": self.origin}


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value
