"""What a DLQ holds, summarised exactly in bounded memory: :func:`inspect_dlq`.

The file is streamed once (:mod:`flowschema_core.dlq_file`). Each error of each record
falls in a group keyed by ``(stage, error type, field)``; the field is the error's ``loc``
joined with dots (``items.0.price``), ``""`` for an error about the whole record (a parse
error, a model validator, a hook).

How a record with several errors is counted: each group counts its *errors* (entries)
and its *records* (DLQ records with at least one error in the group), both exact; the
totals count each record once. So the groups' records add up to more than the total
when records have errors in several groups, and a record whose ``errors`` list is empty
counts in the group ``(stage, "", "")``.

Memory is bounded by the number of groups, which is capped (``max_groups``, default
1000): once the cap is reached, errors of new groups are counted in one ``other`` bucket
(exact counts, no examples) and the summary says so. Examples are *varied*: per group,
the ``examples`` errors whose input values have the smallest stable hashes, one per
distinct input — a uniform sample of the group's distinct inputs, not the first few
records (which are often the same mistake repeated), and the same on every run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from dataclasses import asdict, dataclass
from typing import Any

from .dlq import type_and_field
from .dlq_file import BadLine, read_dlq

MAX_GROUPS = 1000
EXAMPLES = 3
MAX_SOURCES = 100  # distinct source names listed; more are counted under "(other sources)"
MAX_BAD_LINES_SHOWN = 5
_MAX_SHOWN = 200  # characters of an example's input kept in the summary


@dataclass
class Example:
    """One error of a group: where it was, what the input was, what pydantic said."""

    source: str
    record: int
    line: int | None
    input: Any
    msg: str


@dataclass
class ErrorGroup:
    """The errors of one ``(stage, type, field)``: exact counts, first and last record
    (in file order: the engine writes in source order), and a few varied examples."""

    stage: str
    type: str
    field: str
    records: int = 0
    errors: int = 0
    first_record: int | None = None
    last_record: int | None = None
    examples: list[Example] = dataclasses.field(default_factory=list)
    # (hash, example) of the distinct inputs with the smallest hashes, largest first out.
    _sample: list[tuple[int, Example]] = dataclasses.field(default_factory=list, repr=False)

    def add(self, record: dict[str, Any], error: dict[str, Any], examples: int) -> None:
        self.errors += 1
        if examples <= 0:
            return
        value = error.get("input") if isinstance(error, dict) else None
        if value is None:  # a parse error or a hook's: what was read is the varied part
            value = record.get("raw_text") if record.get("raw_text") is not None else record.get("raw")
        key = _stable_hash(value)
        sample = self._sample
        if len(sample) == examples and key >= sample[-1][0]:
            return
        if any(k == key for k, _ in sample):
            return  # this input is already an example: keep its first occurrence
        msg = str(error.get("msg", "")) if isinstance(error, dict) else str(error)
        sample.append((key, Example(str(record.get("source")), record["record"], record.get("line"), _shown(value), msg[:_MAX_SHOWN])))
        sample.sort(key=lambda pair: pair[0])
        del sample[examples:]

    def finish(self) -> None:
        # Shown in file order, which reads better than hash order.
        self.examples = sorted((e for _, e in self._sample), key=lambda e: (e.source, e.record))


@dataclass
class DLQSummary:
    """A DLQ file summarised: :meth:`to_dict` is the ``--json`` output."""

    path: str
    records: int = 0  # DLQ records (each counted once, whatever its errors)
    errors: int = 0  # error entries, over all records
    by_stage: dict[str, int] = dataclasses.field(default_factory=dict)  # records per stage
    sources: dict[str, int] = dataclasses.field(default_factory=dict)  # records per original source
    groups: list[ErrorGroup] = dataclasses.field(default_factory=list)  # most records first
    other: dict[str, int] | None = None  # {"records", "errors"} past the group cap, else None
    max_groups: int = MAX_GROUPS
    bad_lines: int = 0  # lines that are not DLQ records (e.g. a truncated last line)
    bad_line_numbers: list[int] = dataclasses.field(default_factory=list)  # the first few

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for group in out["groups"]:
            group.pop("_sample", None)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=repr)


def inspect_dlq(path: str | os.PathLike[str], *, max_groups: int = MAX_GROUPS, examples: int = EXAMPLES) -> DLQSummary:
    """Summarise the DLQ at ``path`` (JSON Lines, maybe compressed): records and errors
    grouped by ``(stage, error type, field)``, exact counts, first and last record numbers
    and up to ``examples`` varied examples a group. Streams the file; memory is bounded by
    ``max_groups``. Raises :class:`~flowschema_core.errors.SourceError` when the file is
    missing or is not a DLQ."""
    summary = DLQSummary(path=os.fspath(path), max_groups=max_groups)
    groups: dict[tuple[str, str, str], ErrorGroup] = {}
    other_records = other_errors = 0
    for number, record in read_dlq(path):
        if isinstance(record, BadLine):
            summary.bad_lines += 1
            if len(summary.bad_line_numbers) < MAX_BAD_LINES_SHOWN:
                summary.bad_line_numbers.append(number)
            continue
        summary.records += 1
        stage = record["stage"]
        summary.by_stage[stage] = summary.by_stage.get(stage, 0) + 1
        source = str(record["source"])
        if source in summary.sources or len(summary.sources) < MAX_SOURCES:
            summary.sources[source] = summary.sources.get(source, 0) + 1
        else:
            summary.sources["(other sources)"] = summary.sources.get("(other sources)", 0) + 1
        errors = record["errors"] or [{}]  # a record without reasons still counts, once
        summary.errors += len(record["errors"])
        seen: set[tuple[str, str, str]] = set()
        in_other = False
        for error in errors:
            key = (stage, *type_and_field(error))
            group = groups.get(key)
            if group is None:
                if len(groups) >= max_groups:
                    other_errors += 1 if error else 0
                    if not in_other:
                        other_records, in_other = other_records + 1, True
                    continue
                group = groups[key] = ErrorGroup(*key)
            if error:
                group.add(record, error, examples)
            if key not in seen:
                seen.add(key)
                group.records += 1
                if group.first_record is None:
                    group.first_record = record["record"]
                group.last_record = record["record"]
    for group in groups.values():
        group.finish()
    summary.groups = sorted(groups.values(), key=lambda g: (-g.records, -g.errors, g.stage, g.type, g.field))
    if other_records or other_errors:
        summary.other = {"records": other_records, "errors": other_errors}
    return summary


def _stable_hash(value: Any) -> int:
    """The same on every run and machine (``hash()`` of a str is salted per process);
    CRC-32 is plenty to sample by and costs little per error."""
    if isinstance(value, str):
        text = "s" + value  # a string and the JSON of another value never collide by construction
    else:
        try:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def _shown(value: Any) -> Any:
    """An example's input, short: a long string or structure is cut for display."""
    if isinstance(value, str):
        return value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "…"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=repr)
        return value if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"
    return value
