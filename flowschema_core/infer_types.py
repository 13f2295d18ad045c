"""The type of one column, from the values a sample holds (for ``flowschema infer``).

A column gets the narrowest type that *nearly all* of its non-empty sampled values fit
(``threshold``, 95% by default): the file is messy by assumption, so a few values that fit
nothing (``"abc"`` in an amount column) must not turn the column into ``str``. They are
counted, and they are what the dead-letter queue will hold.

"Fits" means Pydantic's own ``TypeAdapter`` accepts the value, never a regular
expression of ours, so the model that ``infer`` writes agrees with the validation that
will run. Candidates for text, narrowest first::

    int  →  Decimal / float  →  date  →  datetime  →  bool      (else str)

The candidate that most values fit wins; on a tie the narrower one (``"0"``/``"1"`` is
``int``, not ``bool``; ``"2024-01-05"`` is ``date``, not ``datetime``). Numbers never count
as dates (Pydantic reads ``"1700000000"`` as a timestamp; a column of numbers is numbers).
Numbers are ``Decimal`` when every one is written in fixed-point with the same number (1-4) of
decimals (money: ``"12.50"``, ``"3.99"``, ``"7"``), else ``float``. Values with leading
zeros (``"007"``, zip codes, phone numbers) keep the column ``str``: a number would lose them.

Typed values (Parquet, SQL, JSON numbers, Excel numeric and date cells) map to their own
Python type, checked the same way.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import TypeAdapter

#: A value the record did not carry at all (a JSON object without the key).
MISSING: Any = object()

#: Type names as the generated module spells them → the type Pydantic validates.
TYPES: dict[str, Any] = {
    "int": int,
    "Decimal": Decimal,
    "float": float,
    "dt.date": dt.date,
    "dt.datetime": dt.datetime,
    "bool": bool,
    "str": str,
    "dt.time": dt.time,
    "dt.timedelta": dt.timedelta,
    "bytes": bytes,
    "dict[str, Any]": dict[str, Any],
    "list[Any]": list[Any],
    "Any": Any,
}
# Candidates for text values, narrowest first ("number" is Decimal or float, decided by shape).
_TEXT_CANDIDATES = ("int", "number", "dt.date", "dt.datetime", "bool")
# The Python type of a typed value → its type name (bool before int: bool is an int).
_NATIVE = ((bool, "bool"), (int, "int"), (float, "float"), (Decimal, "Decimal"), (dt.datetime, "dt.datetime"), (dt.date, "dt.date"),
           (dt.time, "dt.time"), (dt.timedelta, "dt.timedelta"), (bytes, "bytes"), (str, "str"), (dict, "dict[str, Any]"), (list, "list[Any]"))
_FIXED_POINT = re.compile(r"\s*[+-]?\d+(?:\.(\d+))?\s*")
_LEADING_ZERO = re.compile(r"\s*[+-]?0\d")
_ADAPTERS: dict[str, TypeAdapter[Any]] = {}
_RARE = 0.005  # an enum label is in at least this share of the rows
_MAX_LABEL = 40
_MAX_MONEY_PLACES = 4  # more fixed decimals than this look like measurements (coordinates), not money


@dataclass
class ColumnType:
    """What a column's sampled values showed, and the type they call for."""

    name: str  # the column's name in the source
    type_name: str  # as the module spells it: "int", "dt.date", "Literal[...]"
    sampled: int  # records in the sample
    fit: int  # non-empty sampled values the type accepts
    empty: int  # sampled records where the cell was empty, null or absent
    misfits: int  # non-empty sampled values the type refuses (they will go to the DLQ)
    examples: list[str] = field(default_factory=list)  # a few refused values, repr'd
    optional: bool = False  # None is allowed (empty cells occur)
    note: str = ""  # why the type is what it is, when that is not plain

    def comment(self) -> str:
        """``9,812 of 10,000 sampled: int; 3 empty; 2 did not fit ('abc', 'n/a')``."""
        label = "enum" if self.type_name.startswith("Literal[") else self.type_name.removeprefix("dt.")
        parts = [f"{self.fit:,} of {self.sampled:,} sampled: {label}"]
        if self.empty:
            parts.append(f"{self.empty:,} empty")
        if self.misfits:
            parts.append(f"{self.misfits:,} did not fit ({', '.join(self.examples)})")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


def adapter(type_name: str) -> TypeAdapter[Any]:
    """The (cached) TypeAdapter of a type name of :data:`TYPES`."""
    found = _ADAPTERS.get(type_name)
    if found is None:
        found = _ADAPTERS[type_name] = TypeAdapter(TYPES[type_name])
    return found


def fits(type_name: str, value: Any) -> bool:
    """Whether Pydantic accepts ``value`` for the type (lax mode, as a model field would)."""
    return _accepts(adapter(type_name), value)


def _accepts(check: TypeAdapter[Any], value: Any) -> bool:
    try:
        check.validate_python(value)
    except Exception:  # noqa: BLE001 - a ValidationError, or a value a validator chokes on
        return False
    return True


def column_type(name: str, values: Sequence[Any], *, empty_is_null: bool, threshold: float = 0.95, enums: bool = False,
                max_enum_values: int = 20, empty_elsewhere: bool = False) -> ColumnType:
    """The type of the column ``name`` from its sampled ``values`` (one per sampled record,
    :data:`MISSING` where the record had no such key).

    :param empty_is_null: ``""`` means "no value" (CSV and Excel under the null policy);
        otherwise only ``None`` and a missing key do, and ``""`` is a string.
    :param threshold: the share of non-empty values a type must fit.
    :param enums: a text column with few distinct values becomes ``Literal[...]``.
    :param empty_elsewhere: the scan saw empty cells in this column outside the sample.
    """
    present = [v for v in values if not (v is None or v is MISSING or (empty_is_null and v == ""))]
    empty = len(values) - len(present)
    optional = empty > 0 or empty_elsewhere
    note = "empty cells outside the sample" if empty_elsewhere and not empty else ""
    if not present:
        return ColumnType(name, "str", len(values), 0, empty, 0, optional=True, note=note or "no value in the sample")
    counts, typed = _count(present)
    need = threshold * len(present)
    if sum(counts.values()) < need:
        chosen = _native_type(counts, typed, need)
    else:
        chosen = _text_type(counts, need)
    if chosen in ("int", "Decimal", "float") and any(isinstance(v, str) and _LEADING_ZERO.match(v) for v in counts):
        chosen, note = "str", note or "leading zeros kept"
    if chosen == "str" and not _fits_enough("str", counts, typed, need):
        chosen = "Any"
    fit, refused = _tally(chosen, counts, typed)
    type_name = chosen
    if enums and chosen == "str" and not typed:
        members = _enum_members(counts, len(present), need, max_enum_values)
        if members:
            type_name = "Literal[" + ", ".join(repr(v) for v in members) + "]"
            fit, refused = _tally(type_name, counts, typed, TypeAdapter(Literal[tuple(members)]))  # type: ignore[valid-type,arg-type]
    return ColumnType(name, type_name, len(values), fit, empty, len(present) - fit, _examples(refused), optional, note)


def _enum_members(counts: Counter[str], present: int, need: float, max_values: int) -> list[str]:
    """The labels of an enum column, or [] when the column is not one. Labels are short
    single-line values; a value in fewer than 0.5% of the rows is not one (a typo, most
    likely): it counts as a value that did not fit, as long as the labels still cover
    ``need`` rows."""
    members = sorted(v for v, n in counts.items() if n >= _RARE * present)
    covered = sum(counts[v] for v in members)
    if not members or len(members) > max_values or covered < need or present < 2 * len(members):
        return []
    if any(len(v) > _MAX_LABEL or "\n" in v for v in members):
        return []  # free text that happens to repeat
    return members


def _count(present: list[Any]) -> tuple[Counter[str], list[Any]]:
    """Text values by distinct value (each is validated once), and the typed values."""
    return Counter(v for v in present if isinstance(v, str)), [v for v in present if not isinstance(v, str)]


def _native_type(counts: Counter[str], typed: list[Any], need: float) -> str:
    """The type of a column of typed values: the Python type most of them have."""
    kinds: Counter[str] = Counter()
    kinds["str"] = sum(counts.values())
    for value in typed:
        kinds[_native_name(value)] += 1
    # Whole and fractional numbers in one column are one numeric column.
    if kinds["float"] and kinds["int"]:
        kinds["float"] += kinds.pop("int")
    if kinds["Decimal"] and kinds["int"]:
        kinds["Decimal"] += kinds.pop("int")
    if kinds["dt.datetime"] and kinds["dt.date"]:
        kinds["dt.datetime"] += kinds.pop("dt.date")
    chosen, _ = kinds.most_common(1)[0]
    if chosen == "str":
        return _text_type(counts, need)
    return chosen if _fits_enough(chosen, counts, typed, need) else "Any"


def _native_name(value: Any) -> str:
    return next((name for cls, name in _NATIVE if isinstance(value, cls)), "Any")


def _text_type(counts: Counter[Any], need: float) -> str:
    """The narrowest candidate most text values fit, else ``str``."""
    numbers = {v for v in counts if fits("float", v)}
    best, best_fit = "str", -1
    for candidate in _TEXT_CANDIDATES:
        if candidate == "number":
            fit = sum(counts[v] for v in numbers)
        elif candidate in ("dt.date", "dt.datetime"):
            fit = sum(n for v, n in counts.items() if v not in numbers and fits(candidate, v))
        else:
            fit = sum(n for v, n in counts.items() if fits(candidate, v))
        if fit >= need and fit > best_fit:
            best, best_fit = candidate, fit
    if best == "number":
        return "Decimal" if _fixed_point([v for v in numbers if isinstance(v, str)]) else "float"
    return best


def _fixed_point(texts: list[str]) -> bool:
    """Money-like: plain digits, and every value with a point has the same decimals (1-4)."""
    places: set[int] = set()
    for text in texts:
        match = _FIXED_POINT.fullmatch(text)
        if match is None:
            return False
        if match.group(1) is not None:
            places.add(len(match.group(1)))
    return len(places) == 1 and next(iter(places)) <= _MAX_MONEY_PLACES


def _fits_enough(type_name: str, counts: Counter[Any], typed: list[Any], need: float) -> bool:
    return _tally(type_name, counts, typed)[0] >= need


def _tally(type_name: str, counts: Counter[Any], typed: list[Any], check: TypeAdapter[Any] | None = None) -> tuple[int, list[Any]]:
    """How many values the type accepts, and the distinct values it refuses (most common first)."""
    if type_name == "Any":
        return sum(counts.values()) + len(typed), []
    check = check or adapter(type_name)
    fit = 0
    refused: Counter[str] = Counter()
    for value, n in counts.items():
        if _accepts(check, value):
            fit += n
        else:
            refused[_show(value)] += n
    for value in typed:
        if _accepts(check, value):
            fit += 1
        else:
            refused[_show(value)] += 1
    return fit, [v for v, _ in refused.most_common()]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _examples(refused: list[Any]) -> list[str]:
    return refused[:3]
