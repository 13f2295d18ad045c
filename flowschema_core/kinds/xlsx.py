"""``xlsx`` chunks: raw bytes of whole ``<row>`` elements of a sheet, parsed here, in the worker.

::

    driver: sheet part ─► inflate ─► cut at </row> ─► chunk {data, row0, counter, fields}
    worker: data ─► one compiled pattern finds every row start and cell ─► values
                     (shared strings and date styles from the worker context, sent once)
                ─► a record per non-empty row, or a ``parse`` failure naming the cell

The driver streams the sheet's XML out of the zip and cuts it at ``</row>`` (a row's
text cannot hold ``<``, so the cut is exact; the driver sends sheets holding comments or
CDATA to openpyxl instead), as it cuts CSV at record boundaries. Shared strings and the
styles that mean a date travel once per worker, in the worker context
(:attr:`flowschema_core.worker.ChunkProcessor.context`), not in every chunk.

Values follow openpyxl's read-only, data-only reading exactly (the slower path that
:class:`~flowschema_core.sources.excel.ExcelSource` falls back to), so both readers give
the same records and the same DLQ: numbers are ``int`` unless written with a ``.`` or an
exponent, a date style turns a serial into ``date`` / ``datetime`` / ``time`` or, for a
duration format, seconds; an error cell fails its row, naming the cell.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..dlq import outcome_of
from ..errors import CodecError
from .base import Chunk, ChunkKind

if TYPE_CHECKING:
    from ..worker import Batch, ChunkProcessor

#: The values a cell of type "e" can hold.
EXCEL_ERRORS = frozenset({"#N/A", "#DIV/0!", "#REF!", "#VALUE!", "#NAME?", "#NUM!", "#NULL!", "#GETTING_DATA", "#SPILL!", "#CALC!"})

# What a style does to a number: nothing, a date format showing only a date, another date
# format (date and time, or time only), a duration format ([h]:mm).
PLAIN, DATE, DATETIME, DURATION = 0, 1, 2, 3

_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def unescape(text: str) -> str:
    """XML character data as a parser gives it: line ends normalised, the five named
    entities and character references replaced (an XML parser knows no other entity)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" not in text:
        return text
    return _ENTITY.sub(_entity, text)


def _entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name[0] == "#":
        return chr(int(name[2:], 16) if name[1] in "xX" else int(name[1:]))
    return _NAMED[name]


class Patterns:
    """The compiled patterns for one namespace prefix (``""`` or e.g. ``"x:"``)."""

    _cache: ClassVar[dict[str, Patterns]] = {}

    def __init__(self, prefix: str) -> None:
        p = re.escape(prefix)
        # One pattern finds both row starts and whole cells, so a block is read by a
        # single findall at C speed. Attributes in the order every writer seen uses
        # (r, s, t; double quotes) are captured directly; anything else about a tag lands
        # in a "rest" group and is read attribute by attribute (rare, slower, same result).
        # A cell whose only child is a <v>, or an inline string of one <t>, is captured too.
        self.tokens = re.compile(
            rf'<{p}(row)((?: r="[0-9]+")?)((?:\s[^>]*?)?)(/?)>'
            rf'|<{p}c((?: r="[$]?[A-Za-z]+[$]?[0-9]*")?(?: s="[0-9]+")?(?: t="[A-Za-z]+")?)((?:\s[^>]*?)?)'
            rf"(?:/>|>(?:<{p}v>([^<]*)</{p}v>|<{p}is><{p}t(?:\s[^>]*)?>([^<]*)</{p}t></{p}is>)?(.*?)</{p}c>)",
            re.S,
        )
        # The shape nearly every writer uses (Excel, LibreOffice, openpyxl, xlsxwriter):
        # numbered rows, cells with r, then s and t, a formula or not, a <v> or a one-<t>
        # inline string. A block whose every row and cell this matches (counted at C
        # speed) is read with it: a third less regex work and a simpler loop.
        self.simple = re.compile(
            rf'<{p}(row) r="([0-9]+)"[^>]*?(/?)>'
            rf'|<{p}c r="([A-Z]+)[0-9]+"(?: s="([0-9]+)")?(?: t="([a-zA-Z]+)")?(?: [a-zA-Z0-9:]+="[^"]*")* ?'
            rf'(?:/>|>(?:<{p}f\b[^>]*?(?:/>|>[^<]*</{p}f>))?(?:<{p}v>([^<]*)</{p}v>|<{p}v/>|<{p}is><{p}t(?: [^>]*)?(?:/>|>([^<]*)</{p}t>)</{p}is>)?</{p}c>)'
        )
        self.row_open = f"<{prefix}row"
        self.cell_open = f"<{prefix}c"
        self.value = re.compile(rf"<{p}v\b[^>]*?(?:/>|>([^<]*)</{p}v>)", re.S)
        self.inline = re.compile(rf"<{p}is\b[^>]*?(?:/>|>(.*?)</{p}is>)", re.S)
        self.text = re.compile(rf"<{p}t\b[^>]*?(?:/>|>([^<]*)</{p}t>)", re.S)
        self.phonetic = re.compile(rf"<{p}rPh\b.*?</{p}rPh>", re.S)
        self.row_tag = f"<{prefix}row".encode()

    @classmethod
    def of(cls, prefix: str) -> Patterns:
        found = cls._cache.get(prefix)
        if found is None:
            found = cls._cache[prefix] = cls(prefix)
        return found

    def rich_text(self, content: str) -> str:
        """The text of an ``<is>`` / ``<si>`` element: its ``<t>`` and its runs' ``<t>``,
        phonetic guides left out (openpyxl's ``Text.content``)."""
        if "rPh" in content:
            content = self.phonetic.sub("", content)
        return "".join(unescape(t) for t in self.text.findall(content))


def chunk(data: bytes, row0: int, counter: int, fields: list[str] | None, prefix: str, book: str,
          nulls: dict[str, Any] | None) -> Chunk:
    """``row0``: the sheet row number of the row before the block (rows without an ``r``
    attribute count on from it); ``counter``: the first row number still to come (a row
    numbered below it is a repeat, skipped as openpyxl does); ``book``: the token of the
    worker context this chunk needs."""
    return {"kind": XlsxKind.name, "data": data, "row0": row0, "counter": counter, "fields": fields, "prefix": prefix,
            "book": book, "nulls": nulls}


class Book:
    """What every row of a workbook needs: shared strings, date styles, date system."""

    def __init__(self, context: dict[str, Any]) -> None:
        self.token: str = context["token"]
        self.strings: list[str] = context["strings"]
        # Keyed by the style index as written in the XML, so a cell costs no int().
        self.styles: dict[str, int] = {str(i): kind for i, kind in enumerate(context["styles"]) if kind}
        self.epoch1904: bool = context["epoch1904"]
        self.columns: dict[str, int] = {}
        self.epoch = dt.datetime(1904, 1, 1) if self.epoch1904 else dt.datetime(1899, 12, 30)
        self.dates: dict[int, dt.date] = {}  # date-only serials repeat: each is built once

    def column(self, letters: str) -> int:
        """0-based index of a column's letters (cached: a sheet has few)."""
        index = 0
        for ch in letters.upper():
            index = index * 26 + ord(ch) - 64
        self.columns[letters] = index - 1
        return index - 1

    def date(self, number: float, kind: int) -> Any:
        """A serial in a date style, as openpyxl's ``from_excel`` gives it and ExcelSource keeps it."""
        if kind != DURATION and number >= 60:
            # openpyxl's from_excel for every serial past the 1900 leap-year bug, inline.
            if kind == DATE and number.__class__ is int:
                found = self.dates.get(number)  # type: ignore[call-overload]
                if found is None:
                    found = self.dates[number] = (self.epoch + dt.timedelta(days=number)).date()  # type: ignore[index]
                return found
            day, fraction = divmod(number, 1)
            value = self.epoch + dt.timedelta(days=day) + dt.timedelta(milliseconds=round(fraction * 86400000))
            if kind == DATE and value.hour == value.minute == value.second == value.microsecond == 0:
                return value.date()
            return value
        from openpyxl.utils.datetime import CALENDAR_MAC_1904, WINDOWS_EPOCH, from_excel

        value = from_excel(number, CALENDAR_MAC_1904 if self.epoch1904 else WINDOWS_EPOCH, timedelta=kind == DURATION)
        return adjust_date(value, kind)


def adjust_date(value: Any, kind: int) -> Any:
    """A datetime at midnight in a date-only style is a ``date``; a duration is seconds
    (msgpack has no duration type; pydantic reads seconds as a ``timedelta``)."""
    if isinstance(value, dt.datetime):
        if kind == DATE and value.hour == value.minute == value.second == value.microsecond == 0:
            return value.date()
        return value
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


class _Bad(Exception):
    """A row the fast reader cannot turn into values: a ``parse`` failure, not a crash."""


_ATTRS = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_CELL_REF = re.compile(r"[$]?([A-Za-z]+)")


def _attributes(text: str) -> dict[str, str]:
    """Every attribute of a tag, by local name (the slow path: odd order, quotes, spacing)."""
    return {name.rsplit(":", 1)[-1]: unescape(double or single) for name, double, single in _ATTRS.findall(text)}


def rows(data: bytes, book: Book, prefix: str, row0: int, counter: int) -> Iterator[tuple[int, list[Any], list[int], str | None]]:
    """Every row of a block that openpyxl would yield, empty ones included, in order:
    ``(row_number, values, error_columns, problem)``. ``values`` runs to the row's last
    cell (empty cells are None); ``error_columns`` the columns holding an error cell (its
    text is the value); ``problem`` says why the row could not be read (then ``values``
    is empty)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
    pats = Patterns.of(prefix)
    if SIMPLE_SHAPE:
        tokens = pats.simple.findall(text)
        if len(tokens) == text.count(pats.row_open) + text.count(pats.cell_open):
            yield from _simple_rows(tokens, book, row0, counter)
            return
    strings, styles, columns, date = book.strings, book.styles, book.columns, book.date
    number: int = row0
    values: list[Any] = []
    errors: list[int] = []
    last = -1
    started = False
    problem: str | None = None
    for is_row, head, rest, closed, attrs, extra, v, inline, inner in pats.tokens.findall(text):
        if is_row:
            if started and number >= counter:
                yield number, _cut(values, last), errors, problem
                counter = number + 1
            if rest:
                r = _attributes(head + rest).get("r")
                number = int(float(r)) if r else number + 1
            else:
                number = int(head[4:-1]) if head else number + 1
            values, errors, last, started, problem = [], [], -1, True, None
            if closed:
                if number >= counter:
                    yield number, [], [], None
                    counter = number + 1
                started = False
            continue
        if problem is not None:
            continue
        try:
            if extra:
                found = _attributes(attrs + extra)
                ref, s, t = found.get("r", ""), found.get("s", ""), found.get("t", "")
                col = m.group(1) if ref and (m := _CELL_REF.match(ref)) else ""
            else:
                col = s = t = ""
                if attrs:
                    pieces = attrs.split('"')  # ' r=', 'A1', ' s=', '3', ...
                    for k in range(0, len(pieces) - 1, 2):
                        name = pieces[k][-2]
                        if name == "r":
                            col = pieces[k + 1].strip("$0123456789")
                        elif name == "s":
                            s = pieces[k + 1]
                        else:
                            t = pieces[k + 1]
            if col:
                index = columns.get(col)
                if index is None:
                    index = book.column(col)
            else:
                index = last + 1
            last = index
            if not t or t == "n":
                raw = v or (_value(pats, inner) if inner else "")
                if raw:
                    value: Any = float(raw) if ("." in raw or "E" in raw or "e" in raw) else int(raw)
                    if s:
                        kind = styles.get(s)
                        if kind:
                            try:
                                value = date(value, kind)
                            except (OverflowError, ValueError):
                                value = "#VALUE!"  # openpyxl's reading of a date out of range
                                errors.append(index)
                else:
                    value = None
            elif t == "s":
                raw = v or (_value(pats, inner) if inner else "")
                value = strings[int(raw)] if raw else None
                if value == "":
                    value = None
            elif t == "inlineStr":
                if inline:
                    value = unescape(inline)
                elif inner:
                    found_is = pats.inline.search(inner)
                    value = pats.rich_text(found_is.group(1) or "") if found_is is not None else None
                else:
                    value = None
                if value == "":
                    value = None
            else:
                raw = v or (_value(pats, inner) if inner else "")
                value = _other_type(t, raw, s, styles, errors, index) if raw else None
        except (ValueError, IndexError, OverflowError) as exc:
            problem = f"cell {letters(max(last, 0))}{number} cannot be read: {type(exc).__name__}: {exc}"
            continue
        if index == len(values):
            values.append(value)
        elif index > len(values):
            values.extend([None] * (index - len(values)))
            values.append(value)
        else:
            values[index] = value  # a column written twice: the later cell wins, as in openpyxl
    if started and number >= counter:
        yield number, _cut(values, last), errors, problem


def _other_type(t: str, raw: str, s: str, styles: dict[str, int], errors: list[int], index: int) -> Any:
    """A non-empty cell that is not a number, a shared or an inline string (the rare
    types, out of both row loops): formula text, boolean, error (noted in ``errors``),
    ISO date, or anything else as text."""
    if t == "b":
        return bool(int(raw))
    if t == "e":
        errors.append(index)
    elif t == "d":
        from openpyxl.utils.datetime import from_ISO8601

        kind = styles.get(s, PLAIN) if s else PLAIN
        return adjust_date(from_ISO8601(raw), DATE if kind == DATE else PLAIN)
    return unescape(raw)


#: Read blocks of the common shape with :attr:`Patterns.simple` (tests turn it off to
#: check that both loops give the same rows).
SIMPLE_SHAPE = True


def _simple_rows(tokens: list[tuple[str, ...]], book: Book, number: int, counter: int
                 ) -> Iterator[tuple[int, list[Any], list[int], str | None]]:
    """:func:`rows` for a block of the common shape (the hot loop: kept flat on purpose)."""
    strings, styles, columns, date = book.strings, book.styles, book.columns, book.date
    values: list[Any] = []
    errors: list[int] = []
    last = -1
    started = False
    problem: str | None = None
    for is_row, r, closed, col, s, t, v, inline in tokens:
        if is_row:
            if started and number >= counter:
                yield number, _cut(values, last), errors, problem
                counter = number + 1
            number = int(r)
            values, errors, last, started, problem = [], [], -1, True, None
            if closed:
                if number >= counter:
                    yield number, [], [], None
                    counter = number + 1
                started = False
            continue
        if problem is not None:
            continue
        index = columns.get(col)
        if index is None:
            index = book.column(col)
        last = index
        try:
            if not t or t == "n":
                if v:
                    value: Any = float(v) if ("." in v or "E" in v or "e" in v) else int(v)
                    if s:
                        kind = styles.get(s)
                        if kind:
                            try:
                                value = date(value, kind)
                            except (OverflowError, ValueError):
                                value = "#VALUE!"  # openpyxl's reading of a date out of range
                                errors.append(index)
                else:
                    value = None
            elif t == "s":
                value = strings[int(v)] if v else None
                if value == "":
                    value = None
            elif t == "inlineStr":
                value = (unescape(inline) if "&" in inline or "\r" in inline else inline) if inline else None
            else:
                value = _other_type(t, v, s, styles, errors, index) if v else None
        except (ValueError, IndexError, OverflowError) as exc:
            problem = f"cell {col}{number} cannot be read: {type(exc).__name__}: {exc}"
            continue
        n = len(values)
        if index == n:
            values.append(value)
        elif index > n:
            values.extend([None] * (index - n))
            values.append(value)
        else:
            values[index] = value  # a column written twice: the later cell wins, as in openpyxl
    if started and number >= counter:
        yield number, _cut(values, last), errors, problem


def _value(pats: Patterns, inner: str) -> str:
    """The text of a cell's <v> when it has other children (a formula) or attributes."""
    found = pats.value.search(inner)
    return (found.group(1) or "") if found is not None else ""


def _cut(values: list[Any], last: int) -> list[Any]:
    # openpyxl's row runs to its last cell's column, even when an earlier cell lies beyond.
    if len(values) > last + 1:
        del values[last + 1:]
    return values


def records(data: bytes, book: Book, prefix: str, row0: int, counter: int, fields: list[str] | None
            ) -> Iterator[tuple[int, Any, str | None, str | None]]:
    """The records of a block: ``(row_number, record, reason, raw_text)``; ``record`` is a
    value list as wide as ``fields`` (a dict by column letter without a header), or None
    with the ``reason`` the row is a ``parse`` failure and its cells as JSON."""
    width = len(fields) if fields is not None else 0
    for number, values, errors, problem in rows(data, book, prefix, row0, counter):
        if problem is not None:
            yield number, None, problem, _raw_row(data, prefix, number)
            continue
        last = len(values)
        while last and values[last - 1] is None:
            last -= 1
        if not last:
            continue  # an empty row is not a record
        del values[last:]
        failure = None
        if errors:
            index = min(i for i in errors if i < last and values[i] is not None) if any(i < last and values[i] is not None for i in errors) else None
            if index is not None:
                failure = f"cell {letters(index)}{number} holds {values[index]}"
        if fields is None:
            if failure is not None:
                yield number, None, failure, row_json([], values, number)
            else:
                yield number, {letters(i): v for i, v in enumerate(values)}, None, None
            continue
        if last > width and failure is None:
            extra = next(i for i in range(width, last) if values[i] is not None)
            failure = (f"row {number} has {last} cells but the header names {width} columns "
                       f"(cell {letters(extra)}{number} holds {short(values[extra])})")
        if failure is not None:
            yield number, None, failure, row_json(fields, values, number)
            continue
        if last < width:
            values.extend([None] * (width - last))
        yield number, values, None, None


def _raw_row(data: bytes, prefix: str, number: int) -> str:
    """The XML of row ``number`` in the block (for a row the reader could not read)."""
    text = data.decode("utf-8", "backslashreplace")
    found = re.search(rf'<{re.escape(prefix)}row\b[^>]*?\sr\s*=\s*["\']{number}["\'].*?(?:</{re.escape(prefix)}row>|/>)', text, re.S)
    return (found.group(0) if found else text)[:65536]


class XlsxKind(ChunkKind):
    name = "xlsx"

    def parse(self, chunk: Chunk, processor: ChunkProcessor, batch: Batch) -> None:
        book = book_of(processor, chunk)
        fields: list[str] | None = chunk["fields"]
        nulls = chunk.get("nulls") if fields is not None else None
        plan = processor.nulls.plan(fields, nulls["mode"], nulls["tokens"]) if nulls and fields is not None else None
        # Without hooks, validation is inlined (as in the CSV kind): no Python call per
        # record beyond the validator's and the serializer's. outcome_of decides what an
        # exception means for the record.
        # A worker that enforces record_timeout (beacon) or must skip stuck records takes
        # them from processor.record, or is told here about each record (as the CSV kind).
        beacon = processor.beacon
        fast = not processor.before and not processor.after and processor.stuck is None
        on_record = beacon.on_record if beacon is not None else None
        validate, dump, record_of = processor.validate, processor.dump, processor.record
        valid_append, valid_i_append = batch.valid.append, batch.valid_i.append
        i = 0
        for number, values, reason, raw_text in records(chunk["data"], book, chunk["prefix"], chunk["row0"], chunk["counter"], fields):
            if values is None:
                batch.parse_error(i, number, reason or "", raw_text)
            elif fields is None:
                record_of(values, i, number, batch)
            else:
                if plan is not None:
                    record, changed = plan.record(values)
                else:
                    record, changed = dict(zip(fields, values)), False
                if fast:
                    if on_record is not None:
                        on_record(i)
                    try:
                        obj = validate(record)
                    except BaseException as exc:  # noqa: BLE001 - outcome_of re-raises what is not the record's
                        batch.fail(i, number, *outcome_of(exc, "validate"), dict(zip(fields, values)) if changed else record)
                    else:
                        try:
                            out = dump(obj)
                        except BaseException as exc:  # noqa: BLE001 - as above
                            batch.fail(i, number, *outcome_of(exc, "dump"), dict(zip(fields, values)) if changed else record)
                        else:
                            valid_append(out)
                            valid_i_append(i)
                else:
                    record_of(record, i, number, batch, dict(zip(fields, values)) if changed else None)
            i += 1
        batch.seen = i

    def split(self, chunk: Chunk) -> tuple[Chunk, Chunk] | None:
        data: bytes = chunk["data"]
        end = f"</{chunk['prefix']}row>".encode()
        ends = [m.end() for m in re.finditer(re.escape(end), data)]
        inner = [e for e in ends if data[e:].strip()]
        if not inner:
            return None
        middle = len(data) // 2
        cut = min(inner, key=lambda e: abs(e - middle))
        left, right = dict(chunk), dict(chunk)
        left["data"], right["data"] = data[:cut], data[cut:]
        right["row0"], right["counter"] = boundary_state(data[:cut], chunk["prefix"], chunk["row0"], chunk["counter"])
        return left, right

    def describe_single(self, chunk: Chunk) -> tuple[int | None, Any, str | None]:
        data: bytes = chunk["data"]
        row0, _ = chunk["row0"], chunk["counter"]
        number, _ = boundary_state(data, chunk["prefix"], row0, chunk["counter"])
        return number, None, data.decode("utf-8", "backslashreplace").strip()


_ROW_NUMBER = re.compile(rb"""\sr\s*=\s*["']([0-9]+)""")
#: A row start tag with its number (any namespace prefix), for boundary_state.
_NUMBERED_ROW = re.compile(rb"""<(?:\w+:)?row\b[^>]*?\sr\s*=\s*["']([0-9]+)""")


def boundary_state(block: bytes, prefix: str, row0: int, counter: int) -> tuple[int, int]:
    """``(row0, counter)`` for the block that follows ``block``: the number of its last
    row, and the next row number still to come. Found from the last row's start tag."""
    tag = f"<{prefix}row".encode()
    start = block.rfind(tag)
    while start >= 0 and block[start + len(tag):start + len(tag) + 1] not in (b" ", b">", b"/", b"\t", b"\n", b"\r"):
        start = block.rfind(tag, 0, start)  # a longer tag name that begins with "row"
    if start < 0:
        return row0, counter
    head_end = block.find(b">", start)
    found = _ROW_NUMBER.search(block, start, head_end if head_end >= 0 else len(block))
    if found is not None:
        number = int(found.group(1))
    else:  # rows without numbers follow the last numbered one (openpyxl's rule): count them
        row_tags = re.compile(re.escape(tag) + rb"[\s>/]")
        # Only when numbered and unnumbered rows mix (rare): the last numbered row's tag.
        last_numbered = collections.deque(_NUMBERED_ROW.finditer(block), maxlen=1)
        if not last_numbered:
            number = row0 + len(row_tags.findall(block))
        else:
            number = int(last_numbered[0].group(1)) + len(row_tags.findall(block, last_numbered[0].end()))
    return number, max(counter, number + 1)


def book_of(processor: ChunkProcessor, chunk: Chunk) -> Book:
    """The worker's :class:`Book` for this chunk, built once from the worker context."""
    context = processor.context
    book = context.get("xlsx_book")
    if book is None:
        raw = context.get("xlsx")
        if raw is None:
            raise CodecError("an xlsx chunk reached a worker started without the workbook's shared strings and styles")
        book = context["xlsx_book"] = Book(raw)
    if book.token != chunk["book"]:
        raise CodecError(f"an xlsx chunk of workbook {chunk['book']} reached a worker holding workbook {book.token}")
    return book  # type: ignore[no-any-return]


# -- helpers shared with ExcelSource (both readers word failures the same way) --------------

def letters(index: int) -> str:
    """Column letters of a 0-based index (0 → A, 26 → AA)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def row_json(fields: list[str], values: list[Any], row_number: int) -> str:
    """A row's cells as JSON (for a DLQ record's ``raw_text``); cells beyond the header by coordinate."""
    row: dict[str, Any] = {}
    for index, value in enumerate(values):
        key = fields[index] if index < len(fields) else f"{letters(index)}{row_number}"
        row[key] = value
    return json.dumps(row, ensure_ascii=False, default=str)


KIND = XlsxKind()
