"""A DLQ as a source: the records a run refused, read again for a replay.

``Pipeline(source=DLQSource("errors.jsonl"), model=FixedModel, ...)`` (or ``flowschema
replay``, or ``flowschema run dlq://errors.jsonl``) re-runs a DLQ's records through the
same machinery as any run. What each DLQ record becomes:

====================================  ===================================================
the DLQ record                        what is replayed
====================================  ===================================================
``raw`` is an object                  that record, as it was read (cells as read; the
                                      null policy applies again for CSV and Excel inputs)
no ``raw``, ``raw_text`` from a CSV   the text re-parsed as one CSV record, with the
                                      header of its source (from the DLQ's other records
                                      of that source, else the file itself) and the
                                      delimiter given (default: ``,``, tab for ``.tsv``);
                                      undecodable bytes (``\\xNN``) decoded with
                                      ``encoding``
no ``raw``, ``raw_text`` from JSONL   the text parsed as JSON again
anything else                         not replayable: a ``parse`` record in the new DLQ
                                      saying why and how it first failed, counted in the
                                      run report's notes
====================================  ===================================================

Lineage: every record keeps its first source, record number and line. Chunks carry them
as ``origin`` (:mod:`flowschema_core.kinds.rows`), so the new DLQ's ``source`` and
``record`` are the original ones, not this file's line numbers, and a replay of a replay
still points at the first input. A line of the DLQ file that is not a DLQ record keeps the
DLQ file and its line number as its lineage.

Memory: the file is streamed; what is kept is a header per source (for re-parsing) and
counters.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from .. import codec
from ..dlq_file import BadLine, read_dlq
from ..kinds import rows as rows_kind
from ..nulls import null_tokens
from .base import ParseFailure, Source, open_input
from .compression import SUFFIXES as COMPRESSION_SUFFIXES

#: Origins whose cells are text, read under the null policy (an empty cell is not a value).
TEXT_LIKE = (".csv", ".tsv", ".xlsx", ".xlsm")
_CSV = (".csv", ".tsv")
_JSON_TEXT = (".jsonl", ".ndjson", ".json")
_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_SCALARS = (str, int, float, bool, type(None))
_MAX_HEADERS = 1000  # sources whose header is remembered (a DLQ rarely has more than a few)


class DLQSource(Source):
    """Read a FlowSchema DLQ (JSON Lines, may be compressed) as records to replay.

    :param path: the DLQ file (``dlq://`` in front is allowed: the registry's key).
    :param delimiter: the delimiter of the CSV input the DLQ came from, to re-parse its
        ``parse``-stage records (default ``,``; tab for a ``.tsv`` input).
    :param encoding: the encoding to decode undecodable bytes of CSV ``parse`` records
        with (they are kept in the DLQ as ``\\xNN`` escapes), e.g. ``"cp1252"``.
    :param null_values: cell values that mean "no value" in a CSV or Excel input, as
        given to its source.
    """

    def __init__(self, path: str | os.PathLike[str], *, delimiter: str | None = None, encoding: str = "utf-8",
                 null_values: Sequence[str] = ()) -> None:
        self.path = os.fspath(path).removeprefix("dlq://")
        self.name = self.path
        self.delimiter, self.encoding = delimiter, encoding
        self.tokens: list[Any] = [None, *null_tokens(null_values)]  # CSV reads "" and Excel None as empty
        self.unreplayable: Counter[str] = Counter()
        self.reparsed = 0
        self._headers: dict[str, list[str] | None] = {}

    @property
    def notes(self) -> list[str]:  # type: ignore[override]
        """What the replay could not do, counted, for the run report."""
        notes = [f"{n:,} DLQ record(s) not replayable: {why}; they are in the new DLQ (stage parse) with the reason"
                 for why, n in self.unreplayable.most_common()]
        if self.reparsed:
            notes.append(f"{self.reparsed:,} parse-stage record(s) re-read from their raw_text")
        return notes

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "dlq", "name": self.path, "delimiter": self.delimiter, "encoding": self.encoding}

    def chunks(self, target_bytes: int) -> Iterator[tuple[bytes, int]]:
        self.unreplayable.clear()
        self.reparsed = 0
        rows_per_chunk = 256  # corrected from each chunk's measured size, as RecordSource does
        rows: list[Any] = []
        lines: list[int | None] = []
        bad: list[list[Any]] = []
        origin: list[list[Any]] = []
        text_like = False
        for number, item in read_dlq(self.path):
            line, record, lineage = self._replayable(number, item)
            # Records of a CSV or Excel input are read under the null policy in the worker
            # (their cells are text); others as they are. A chunk holds one kind.
            if isinstance(record, ParseFailure):
                row_text_like, row = text_like, None
            else:
                row_text_like, row = self._text_like(lineage[0]) and all(isinstance(v, _SCALARS) for v in record.values()), record
            if rows and (row_text_like != text_like or len(rows) >= rows_per_chunk):
                blob, n = self._chunk(rows, text_like, lines, bad, origin)
                yield blob, n
                rows_per_chunk = max(1, min(1_000_000, int(len(rows) * target_bytes / max(n, 1))))
                rows, lines, bad, origin = [], [], [], []
            text_like = row_text_like
            if isinstance(record, ParseFailure):
                bad.append([len(rows), record.reason, record.raw_text])
            rows.append(row)
            lines.append(line)
            origin.append(lineage)
        if rows:
            yield self._chunk(rows, text_like, lines, bad, origin)

    def _chunk(self, rows: list[Any], text_like: bool, lines: list[int | None], bad: list[list[Any]],
               origin: list[list[Any]]) -> tuple[bytes, int]:
        nulls = {"mode": "model", "tokens": self.tokens} if text_like else None
        has_lines = any(line is not None for line in lines)
        return codec.encode(rows_kind.chunk(rows, None, lines if has_lines else None, bad, nulls, origin))  # type: ignore[arg-type]

    # -- one DLQ record ----------------------------------------------------------------
    def _replayable(self, number: int, item: dict[str, Any] | BadLine) -> tuple[int | None, dict[str, Any] | ParseFailure, list[Any]]:
        """``(line, record or ParseFailure, [source, record, line])`` for one line of the DLQ."""
        if isinstance(item, BadLine):
            self.unreplayable["lines of the DLQ file that are not DLQ records"] += 1
            return number, ParseFailure(f"not replayable: line {number} of {self.path} is {item.reason}", item.text), [self.path, number, number]
        source, line, raw, raw_text = str(item["source"]), item.get("line"), item.get("raw"), item.get("raw_text")
        lineage = [source, item["record"], line]
        if isinstance(raw, dict):
            if raw and source not in self._headers and len(self._headers) < _MAX_HEADERS:
                self._headers[source] = list(raw)
            return line, raw, lineage
        kind = _kind(source)
        why: str
        if not isinstance(raw_text, str):
            why = "the record keeps neither its raw record nor its raw text"
        elif "larger than max_record_bytes" in _first_msg(item):
            why = "an oversized record: only its first KiB was kept"
        elif kind in _CSV:
            return line, self._reparse_csv(source, kind, raw_text, item), lineage
        elif kind in _JSON_TEXT:
            self.reparsed += 1
            return line, _reparse_json(raw_text), lineage
        else:
            why = f"a {kind or 'non-file'} source's raw text cannot be read again as a record"
        self.unreplayable[why] += 1
        first = (item["errors"] or [{}])[0]
        reason = f"not replayable: {why} (it failed at stage {item['stage']}: {first.get('type', '')}: {first.get('msg', '')})"
        return line, ParseFailure(reason[:2000], raw_text if isinstance(raw_text, str) else None), lineage

    def _reparse_csv(self, source: str, kind: str, raw_text: str, item: dict[str, Any]) -> dict[str, Any] | ParseFailure:
        fields = self._header_of(source, kind)
        if fields is None:
            why = "the header of its CSV source is unknown (the file is gone and no other record of it in the DLQ has its fields)"
            self.unreplayable[why] += 1
            return ParseFailure(f"not replayable: {why}", raw_text)
        self.reparsed += 1
        text = raw_text
        if _first_msg(item).startswith("bytes that are not valid"):
            try:
                text = _ESCAPES.sub(lambda m: bytes.fromhex(m.group(0).replace("\\x", "")).decode(self.encoding), raw_text)
            except UnicodeDecodeError:
                return ParseFailure(f"bytes that are not valid {self.encoding}; give the input's encoding to replay them (--encoding)", raw_text)
        try:
            records = [r for r in csv.reader(io.StringIO(text, newline=""), **self._dialect(kind)) if r]
        except csv.Error as exc:
            return ParseFailure(f"malformed CSV: {exc}", raw_text)
        if len(records) != 1:
            return ParseFailure(f"expected one CSV record, found {len(records)}", raw_text)
        if len(records[0]) != len(fields):
            return ParseFailure(f"expected {len(fields)} fields, found {len(records[0])}", raw_text)
        return dict(zip(fields, records[0]))

    def _dialect(self, kind: str) -> dict[str, Any]:
        delimiter = self.delimiter or ("\t" if kind == ".tsv" else ",")
        return {"delimiter": delimiter, "quotechar": '"', "doublequote": True, "strict": True}

    def _header_of(self, source: str, kind: str) -> list[str] | None:
        """The field names of a CSV source: from a record of it in this DLQ (its keys are
        the header as the run read it), else the source file's own header row."""
        if source not in self._headers:
            self._headers[source] = self._header_in_dlq(source) or self._header_in_file(source, kind)
        return self._headers[source]

    def _header_in_dlq(self, source: str) -> list[str] | None:
        for _, item in read_dlq(self.path):  # once per source with no record seen yet
            if isinstance(item, dict) and str(item["source"]) == source and isinstance(item.get("raw"), dict) and item["raw"]:
                return list(item["raw"])
        return None

    def _header_in_file(self, source: str, kind: str) -> list[str] | None:
        if not os.path.isfile(source):
            return None
        try:
            with open_input(source, "CSV file") as f:
                head = f.readline(1 << 20).decode("utf-8-sig", "replace")
            return next(csv.reader(io.StringIO(head, newline=""), **self._dialect(kind)), None)
        except (OSError, csv.Error, ValueError):
            return None

    def _text_like(self, source: str) -> bool:
        return _kind(source) in TEXT_LIKE


def _kind(source: str) -> str:
    """The input kind a DLQ record's ``source`` names: its extension (``orders.csv.gz`` is
    ``.csv``), or ``""`` for a URL or a name without one."""
    if "://" in source:
        return ""
    stem, ext = os.path.splitext(source)
    if ext.lower() in COMPRESSION_SUFFIXES:
        ext = os.path.splitext(stem)[1]
    return ext.lower()


def _first_msg(item: dict[str, Any]) -> str:
    errors = item.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    return str(first.get("msg", ""))


def _reparse_json(raw_text: str) -> dict[str, Any] | ParseFailure:
    try:
        value = json.loads(raw_text)
    except (ValueError, RecursionError) as exc:
        return ParseFailure(f"invalid JSON: {exc}", raw_text)
    if not isinstance(value, dict):
        return ParseFailure(f"expected a JSON object, got {type(value).__name__}", raw_text)
    return value
