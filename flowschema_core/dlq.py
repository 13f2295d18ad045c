"""The dead-letter queue's format, and the one place that decides a record's outcome.

A DLQ record is FlowSchema's public output format (one JSON object a line)::

    {"run_id": "…", "source": "orders.csv", "record": 1234, "line": 1240, "stage": "validate",
     "errors": [{"type": "decimal_parsing", "loc": ["amount"], "msg": "…", "input": "12,5"}],
     "raw": {"order_id": "17", "amount": "12,5"}, "raw_text": null, "ts": "2026-11-26T18:00:00Z"}

Workers build :class:`ChunkError` entries, numbered within their chunk, inside a
:class:`ChunkResult`, and finish the expensive part there: each entry carries ``body``,
the JSON of its stage, errors, raw and raw_text — the middle of its DLQ line. The driver,
once it knows the chunk's first record number, only puts the run, source, record number,
line and time around those bytes (:func:`dlq_lines`): encoding DLQ records as JSON on the
driver cost ~24 µs each, and capped how many workers one driver could feed on a messy
file. A DLQ sink that is not JSON Lines gets dicts (:func:`to_record`). All are plain
dicts (``TypedDict``), so they travel as msgpack unchanged.

:func:`outcome_of` classifies an exception raised while a record was processed. Every
path of the worker (the CSV hot loop and the general one) calls it, and only on its
``except`` path, so the rules are written once and cost nothing for a good record.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal, TypedDict, get_args

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

#: Where a record failed; the README's stage table says what each keeps.
Stage = Literal["parse", "transform", "validate", "worker", "sink"]
STAGES: tuple[str, ...] = get_args(Stage)

#: The step of the worker a record was in when an exception reached :func:`outcome_of`.
Step = Literal["before_validate", "validate", "after_validate", "dump"]


class ErrorEntry(TypedDict):
    """One reason a record was refused (pydantic's error shape, JSON-safe)."""

    type: str
    loc: list[Any]
    msg: str
    input: Any


class ChunkError(TypedDict):
    """A refused record inside a chunk result: ``i`` is its index within the chunk,
    ``reason`` its (stage, first error type, field) for counts, ``body`` the JSON of its
    ``stage``, ``errors``, ``raw`` and ``raw_text`` without the braces."""

    i: int
    line: int | None
    stage: Stage
    reason: list[str]
    body: bytes


class ChunkResult(TypedDict):
    """What a worker returns for one chunk. ``n`` counts the records parsed, whatever
    their outcome, so that ``n == valid + len(errors) + filtered`` can catch a lost one."""

    n: int
    valid: int
    filtered: int
    data: Any  # valid rows in the sink's form: JSONL bytes, CSV bytes or value lists
    valid_i: list[int]  # the chunk index of each valid row
    errors: list[ChunkError]
    #: ``[source, record, line]`` of each record of the chunk when they come from elsewhere
    #: (a replayed DLQ keeps its records' first source, number and line); None otherwise.
    origin: list[list[Any]] | None


class DLQRecord(TypedDict):
    """One line of the dead-letter queue."""

    run_id: str
    source: str
    record: int
    line: int | None
    stage: Stage
    errors: list[ErrorEntry]
    raw: Any
    raw_text: str | None
    ts: str


#: Fields of a DLQ record, in the order a tabular DLQ sink (CSV, SQL) writes them.
DLQ_FIELDS: list[str] = list(DLQRecord.__annotations__)


def entry(type: str, msg: str, *, loc: list[Any] | None = None, input: Any = None) -> ErrorEntry:
    return {"type": type, "loc": loc or [], "msg": msg, "input": input}


def chunk_error(i: int, line: int | None, stage: Stage, errors: list[ErrorEntry], raw: Any = None, raw_text: str | None = None) -> ChunkError:
    try:
        body = dumps({"stage": stage, "errors": errors, "raw": raw, "raw_text": raw_text})[1:-1]
    except (TypeError, ValueError, RecursionError):
        # raw holds what JSON cannot say (a tuple key, a cycle): keep its repr instead, so
        # one odd record never fails its chunk.
        body = dumps({"stage": stage, "errors": jsonable(errors), "raw": None, "raw_text": repr(raw)[:65536]})[1:-1]
    return {"i": i, "line": line, "stage": stage, "reason": list(reason_of(stage, errors)), "body": body}


def reason_of(stage: str, errors: list[ErrorEntry]) -> tuple[str, str, str]:
    """A refused record's (stage, first error type, field): how counts group it."""
    return (str(stage), *type_and_field(errors[0])) if errors else (str(stage), "?", "")


def type_and_field(error: Any) -> tuple[str, str]:
    """An error entry's type and field (its ``loc`` joined by dots), also for an entry
    read back from a DLQ file, whatever a hand may have made of it."""
    if not isinstance(error, dict):
        return "", ""
    loc = error.get("loc") or []
    field = ".".join(str(part) for part in loc) if isinstance(loc, list) else str(loc)
    return str(error.get("type", "")), field


def opened(error: ChunkError) -> dict[str, Any]:
    """``error`` with its body decoded: ``i``, ``line``, ``stage``, ``errors``, ``raw``, ``raw_text``."""
    return {"i": error["i"], "line": error["line"], **json.loads(b"{" + error["body"] + b"}")}


def dumps(value: Any) -> bytes:
    """JSON as a DLQ line holds it. Readable UTF-8 when possible; ``\\uXXXX`` escapes when
    the value holds lone surrogates, which UTF-8 cannot carry (so odd Unicode never fails)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=json_default).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, default=json_default).encode("ascii")


def parse_error(i: int, line: int | None, reason: str, raw_text: str | None) -> ChunkError:
    """The source could not turn bytes into a record; ``raw_text`` is what was read."""
    return chunk_error(i, line, "parse", [entry("parse_error", reason)], None, raw_text)


def worker_crash(line: int | None, raw: Any, raw_text: str | None, reason: str) -> ChunkError:
    """A one-record chunk that killed its worker every time it was tried."""
    return chunk_error(0, line, "worker", [entry("worker_crashed", reason)], raw, raw_text)


def sink_refusal(i: int, reason: str, raw: Any) -> ChunkError:
    """The destination refused a valid row (a database constraint)."""
    return chunk_error(i, None, "sink", [entry("sink_refused", reason)], raw)


def _where(error: ChunkError, source: str, first_record: int, origin: list[list[Any]] | None) -> tuple[str, int, int | None]:
    """``(source, record, line)`` of a chunk's DLQ entry: its place in this run's source,
    or with ``origin`` (the chunk's ``[source, record, line]`` per record, see
    :class:`ChunkResult`) the place it was first read: lineage survives a replay."""
    if origin is None:
        return source, first_record + error["i"], error["line"]
    first_source, record, first_line = origin[error["i"]]
    return first_source, record, first_line if error["line"] is None else error["line"]  # a sink refusal knows no line; the origin does


def dlq_lines(errors: list[ChunkError], *, run_id: str, source: str, first_record: int, ts: str,
              origin: list[list[Any]] | None = None) -> bytes:
    """A chunk's DLQ entries as DLQ lines (JSON Lines); ``first_record`` is the chunk's
    first record number. The bytes ``json.dumps`` of :func:`to_record` would give (or,
    where lone surrogates force ``\\u`` escapes, the same JSON), from a copy of what
    the worker encoded."""
    tail = b', "ts": ' + dumps(ts) + b"}\n"
    heads: dict[str, bytes] = {}
    lines = []
    for e in errors:
        where, record, line = _where(e, source, first_record, origin)
        head = heads.get(where)
        if head is None:
            head = heads[where] = dumps({"run_id": run_id, "source": where})[:-1] + b', "record": '
        lines.append(b"%s%d, \"line\": %s, %s%s" % (head, record, b"null" if line is None else b"%d" % line, e["body"], tail))
    return b"".join(lines)


def to_record(error: ChunkError, *, run_id: str, source: str, first_record: int, ts: str,
              origin: list[list[Any]] | None = None) -> DLQRecord:
    """A chunk's DLQ entry as a DLQ record (a dict, for a DLQ sink that is not JSON Lines);
    ``first_record`` is the chunk's first record number; ``origin`` as for :func:`dlq_lines`."""
    where, record, line = _where(error, source, first_record, origin)
    body = opened(error)
    return {
        "run_id": run_id, "source": where, "record": record, "line": line,
        "stage": body["stage"], "errors": body["errors"], "raw": body["raw"], "raw_text": body["raw_text"], "ts": ts,
    }


def validation_entries(exc: ValidationError) -> list[ErrorEntry]:
    """Pydantic errors as JSON-safe ``{type, loc, msg, input}`` dicts."""
    return [
        {"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"], "input": jsonable(e.get("input"))}
        for e in exc.errors(include_url=False, include_context=False)
    ]


def jsonable(value: Any) -> Any:
    """``value`` as JSON-native data, whatever a source produced (bytes included)."""
    try:
        return to_jsonable_python(value, fallback=json_default)
    except Exception:  # noqa: BLE001 - e.g. bytes that are not UTF-8 inside a structure
        return json.loads(json.dumps(value, default=json_default))


def json_default(value: Any) -> Any:
    """``default=`` for ``json.dumps`` of a DLQ record: every raw value a source can
    produce becomes JSON. Bytes become text with ``\\xNN`` escapes for what is not UTF-8
    (recoverable, as the CSV path keeps undecodable bytes); anything else that pydantic
    cannot serialise, its ``repr``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return escape_undecodable(bytes(value).decode("utf-8", "surrogateescape"))
    try:
        return to_jsonable_python(value, fallback=repr)
    except Exception:  # noqa: BLE001 - a display fallback must not fail
        return repr(value)


def outcome_of(exc: BaseException, step: Step, hook: str = "") -> tuple[Stage, list[ErrorEntry]]:
    """Classify an exception raised while one record was in ``step``: its DLQ stage and
    reasons. Re-raises what is not the record's fault to report: ``MemoryError`` (the
    worker reports it and the pipeline splits the chunk until the record responsible
    stands alone, stage ``worker``) and anything that is not an ``Exception``
    (``KeyboardInterrupt``, ``SystemExit``)."""
    if isinstance(exc, MemoryError) or not isinstance(exc, Exception):
        raise exc
    described = f"{type(exc).__name__}: {exc}"
    if step == "validate":
        if isinstance(exc, ValidationError):
            return "validate", validation_entries(exc)
        # Pydantic wraps only ValueError / AssertionError from validators; anything else
        # (a KeyError from a lookup) is still this record's problem, not the chunk's.
        return "validate", [entry("validator_error", f"a model validator raised: {described}")]
    if step == "dump":
        msg = f"valid, but cannot be written in the sink's format: {described}"
        return "sink", [entry("serialization_error", msg[:2000])]
    return "transform", [entry("hook_error", f"{step} hook {hook}: {described}")]


def escape_undecodable(text: str) -> str:
    """Keep undecodable bytes recoverable in JSON: ``\\xNN`` escapes instead of the
    surrogates that ``errors="surrogateescape"`` decoding left in ``text``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def timestamp() -> str:
    """Now, as DLQ records and run reports write it (UTC, microseconds, ``Z``)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
