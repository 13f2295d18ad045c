"""What a worker does with a chunk: parse, run hooks, validate, encode for the sink.

::

    blob ─► codec.decode ─► records (parsed here for csv/jsonl chunks)
                               │  before_validate hooks   (exception → DLQ "transform")
                               │  Model.model_validate     (ValidationError → DLQ "validate")
                               │  after_validate hooks     (None → filtered)
                               ▼
            valid rows, already in the sink's form ("jsonl" bytes, "csv" bytes, "python" lists)
            + DLQ entries numbered within the chunk  ─► codec.encode ─► result blob

A worker builds its :class:`ChunkProcessor` once (model, hooks, output form) and reuses it
for every chunk. The same code runs inline, in a process and in a Ray actor.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaSerializer, SchemaValidator, to_jsonable_python

from . import blocks, chunks, codec
from .errors import CodecError
from .hooks import Hook, overrides

OUTPUT_FORMS = ("jsonl", "csv", "python")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# ``_EMPTY_AS_NONE.get(v, v)`` is ``v if v else None`` for a str cell, at C speed (map()).
_EMPTY_AS_NONE: dict[str, None] = {"": None}


@dataclass
class WorkerSpec:
    """Everything a worker needs, sent once when it starts (cloudpickled: code, not data)."""

    model: type[BaseModel]
    hooks: list[Hook] = field(default_factory=list)
    output_form: str = "jsonl"


def error_entries(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as JSON-safe ``{type, loc, msg, input}`` dicts."""
    return [
        {
            "type": e["type"],
            "loc": list(e["loc"]),
            "msg": e["msg"],
            "input": _jsonable(e.get("input")),
        }
        for e in exc.errors(include_url=False, include_context=False)
    ]


def _jsonable(value: Any) -> Any:
    try:
        return to_jsonable_python(value, fallback=repr)
    except Exception:  # noqa: BLE001 - e.g. bytes that are not UTF-8: keep a readable repr
        return repr(value)


def _validator_crash(exc: BaseException) -> list[dict[str, Any]]:
    # Pydantic wraps only ValueError/AssertionError from validators; anything else is still
    # this record's problem, not the chunk's.
    return [_exception_entry("validator_error", exc, "a model validator raised")]


def _sink_refusal(exc: BaseException) -> list[dict[str, Any]]:
    msg = f"valid, but cannot be written in the sink's format: {type(exc).__name__}: {exc}"
    return [{"type": "serialization_error", "loc": [], "msg": msg[:2000], "input": None}]


def _exception_entry(kind: str, exc: BaseException, where: str) -> dict[str, Any]:
    return {"type": kind, "loc": [], "msg": f"{where}: {type(exc).__name__}: {exc}", "input": None}


def _escape(text: str) -> str:
    """Keep undecodable bytes recoverable in JSON: ``\\xNN`` escapes instead of surrogates."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
        chunk = codec.decode(blob)
        batch = _Batch()
        kind = chunk["kind"]
        if kind == chunks.CSV:
            self._csv(chunk, batch)
        elif kind == chunks.JSONL:
            self._jsonl(chunk, batch)
        elif kind == chunks.ROWS:
            self._rows(chunk, batch)
        elif kind == chunks.ARROW:
            self._arrow(chunk, batch)
        else:
            raise ValueError(f"unknown chunk kind {kind!r}")
        result = batch.result(self.output_form, self.fields)
        try:
            return codec.encode(result)[0]
        except CodecError:
            # A DLQ entry's raw record holds a value msgpack cannot carry: keep its repr
            # instead of failing the chunk (valid rows are already in the sink's form).
            for entry in result["errors"]:
                try:
                    codec.pack(entry["raw"])
                except CodecError:
                    entry["raw"], entry["raw_text"] = None, repr(entry["raw"])[:65536]
            return codec.encode(result)[0]

    # -- parsing ---------------------------------------------------------------------
    def _rows(self, chunk: dict[str, Any], batch: _Batch) -> None:
        fields, lines = chunk["fields"], chunk["lines"]
        bad = {b[0]: b for b in chunk["bad"]}
        batch.seen = len(chunk["rows"])
        for i, row in enumerate(chunk["rows"]):
            line = lines[i] if lines else None
            if row is None:
                _, reason, raw_text = bad[i]
                batch.parse_error(i, line, reason, raw_text)
            else:
                self._record(dict(zip(fields, row)) if fields is not None else row, i, line, batch)

    def _arrow(self, chunk: dict[str, Any], batch: _Batch) -> None:
        table = chunks.arrow_table(chunk)
        fields = chunk["fields"]
        columns = [column.to_pylist() for column in table.columns]
        batch.seen = table.num_rows
        for i, row in enumerate(zip(*columns)):
            self._record(dict(zip(fields, row)), i, None, batch)

    def _jsonl(self, chunk: dict[str, Any], batch: _Batch) -> None:
        data: bytes = chunk["data"]
        line = chunk["line0"]
        i = 0
        for raw in data.split(b"\n"):
            line += 1
            if not raw.strip():
                continue  # blank lines hold no record
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
                batch.parse_error(i, line, f"invalid JSON: {exc}", _escape(raw.decode("utf-8", "surrogateescape")))
            else:
                if isinstance(record, dict):
                    self._record(record, i, line, batch)
                else:
                    reason = f"expected a JSON object, got {type(record).__name__}"
                    batch.parse_error(i, line, reason, raw.decode("utf-8", "backslashreplace"))
            i += 1
        batch.seen = i

    def _csv(self, chunk: dict[str, Any], batch: _Batch) -> None:
        data: bytes = chunk["data"]
        encoding: str = chunk["encoding"]
        try:
            text = data.decode(encoding)
            escaped = False
        except UnicodeDecodeError:
            text = data.decode(encoding, "surrogateescape")
            escaped = True
        parts = text.split("\n")
        lines = [p + "\n" for p in parts]
        if parts[-1]:
            lines[-1] = parts[-1]
        else:
            lines.pop()
        fields: list[str] = chunk["fields"]
        width = len(fields)
        # An empty CSV cell means "no value": None lets Optional fields validate.
        none_if_empty = _EMPTY_AS_NONE.get if chunk["dialect"].get("empty_as_none", True) else None
        reader = csv.reader(lines, **blocks.reader_options(chunk["dialect"]))
        line0 = chunk["line0"]
        # Without hooks, validation is inlined here: this loop is the hot path of the
        # whole engine, so it avoids a Python call per record beyond the validator's.
        fast = not self.before and not self.after
        validate = self.validate
        valid_append: Any = batch.valid.append
        valid_i_append = batch.valid_i.append
        # Each valid row is serialized at once, so no model instance outlives its record
        # (less memory, less work for the cyclic GC) and a row that cannot be serialized
        # is that record's problem, not the chunk's.
        dump = self.dump
        consumed = 0
        i = 0
        while True:
            try:
                for row in reader:
                    start = consumed
                    consumed = reader.line_num
                    if len(row) != width or not row:
                        if not row:
                            continue  # a blank line is not a record
                        raw_text = _escape("".join(lines[start:consumed]).rstrip("\r\n"))
                        batch.parse_error(i, line0 + start + 1, f"expected {width} fields, found {len(row)}", raw_text)
                    elif escaped and any(_ESCAPED_BYTE.search(v) for v in row):
                        raw_text = _escape("".join(lines[start:consumed]).rstrip("\r\n"))
                        batch.parse_error(i, line0 + start + 1, f"bytes that are not valid {encoding}", raw_text)
                    else:
                        record = dict(zip(fields, map(none_if_empty, row, row) if none_if_empty else row))
                        if fast:
                            try:
                                obj = validate(record)
                            except ValidationError as exc:
                                batch.error(i, line0 + start + 1, "validate", error_entries(exc), record)
                            except MemoryError:
                                raise
                            except Exception as exc:  # noqa: BLE001 - a validator that raised e.g. KeyError
                                batch.error(i, line0 + start + 1, "validate", _validator_crash(exc), record)
                            else:
                                try:
                                    out = dump(obj)
                                except Exception as exc:  # noqa: BLE001 - e.g. lone surrogates, absurd nesting
                                    batch.error(i, line0 + start + 1, "sink", _sink_refusal(exc), record)
                                else:
                                    valid_append(out)
                                    valid_i_append(i)
                        else:
                            self._record(record, i, line0 + start + 1, batch)
                    i += 1
                break
            except csv.Error as exc:
                raw_text = _escape("".join(lines[consumed:reader.line_num]).rstrip("\r\n"))
                batch.parse_error(i, line0 + consumed + 1, f"malformed CSV: {exc}", raw_text)
                consumed = reader.line_num
                i += 1
        batch.seen = i

    # -- one record ------------------------------------------------------------------
    def _record(self, record: dict[str, Any], i: int, line: int | None, batch: _Batch) -> None:
        raw = record
        for hook in self.before:
            try:
                record = hook.before_validate(record)  # type: ignore[assignment]
            except MemoryError:
                raise  # not the hook's fault: the worker reports it, the chunk is split
            except Exception as exc:  # noqa: BLE001 - any hook failure is this record's problem
                batch.error(i, line, "transform", [_exception_entry("hook_error", exc, f"before_validate hook {hook.name}")], raw)
                return
            if record is None:
                batch.filtered += 1
                return
        try:
            obj = self.validate(record)
        except ValidationError as exc:
            batch.error(i, line, "validate", error_entries(exc), raw)
            return
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a validator that raised e.g. KeyError
            batch.error(i, line, "validate", _validator_crash(exc), raw)
            return
        for hook in self.after:
            try:
                result = hook.after_validate(obj)
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001
                batch.error(i, line, "transform", [_exception_entry("hook_error", exc, f"after_validate hook {hook.name}")], raw)
                return
            if result is None:
                batch.filtered += 1
                return
            if not isinstance(result, self.model):
                msg = f"after_validate hook {hook.name} returned {type(result).__name__}, expected {self.model.__name__} or None"
                batch.error(i, line, "transform", [{"type": "hook_error", "loc": [], "msg": msg, "input": None}], raw)
                return
            obj = result
        try:
            out = self.dump(obj)
        except Exception as exc:  # noqa: BLE001
            batch.error(i, line, "sink", _sink_refusal(exc), raw)
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



class _Batch:
    """Results of one chunk, collected record by record."""

    def __init__(self) -> None:
        self.valid: list[Any] = []  # valid rows, already in the sink's form
        self.valid_i: list[int] = []  # record index (in the chunk) of each valid row
        self.errors: list[dict[str, Any]] = []
        self.filtered = 0
        self.seen = 0

    def error(
        self, i: int, line: int | None, stage: str, errors: list[dict[str, Any]], raw: Any = None, raw_text: str | None = None
    ) -> None:
        self.errors.append({"i": i, "line": line, "stage": stage, "errors": errors, "raw": raw, "raw_text": raw_text})

    def parse_error(self, i: int, line: int | None, reason: str, raw_text: str | None) -> None:
        self.error(i, line, "parse", [{"type": "parse_error", "loc": [], "msg": reason, "input": None}], None, raw_text)

    def result(self, form: str, fields: list[str]) -> dict[str, Any]:
        valid = self.valid
        if form == "jsonl":
            data: Any = b"\n".join(valid) + b"\n" if valid else b""
        elif form == "csv":
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(valid)
            data = out.getvalue().encode("utf-8", "backslashreplace")
        else:
            data = valid
        # ``n`` counts records as parsed, independently of their outcomes, so the driver's
        # accounting check (n == valid + invalid + filtered) can catch a lost record.
        return {
            "n": self.seen, "valid": len(valid), "filtered": self.filtered, "data": data,
            "valid_i": self.valid_i, "errors": self.errors,
        }


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value
