"""Excel workbooks (.xlsx / .xlsm): the sheet's XML cut into blocks for the workers, or
streamed row by row with openpyxl's read-only mode.

Two readers, chosen per workbook (said in the run report's ``notes``):

* the fast reader (the default): the driver streams the sheet's XML out of the zip and
  cuts it at ``</row>`` into ``xlsx`` chunks; the workers parse them
  (:mod:`flowschema_core.kinds.xlsx`, :mod:`.xlsx_book`). Shared strings and date styles
  are read once and sent to each worker once, counted against the byte budget;
* openpyxl, in the driver, for what the fast reader does not read (comments or CDATA in
  the sheet, a sheet not in UTF-8, shared strings too large for the budget), or when
  asked with ``reader="openpyxl"``.

Both give the same records and the same DLQ. The openpyxl path:

::

    file ─► magic bytes (zip? OLE = encrypted/legacy .xls? other = not Excel)
         ─► zip directory: total uncompressed size, compression ratios   (zip bomb)
         ─► every XML part's prolog: no <!DOCTYPE / <!ENTITY             (billion laughs, XXE)
         ─► openpyxl read_only + data_only (parses with defusedxml)
         ─► one row at a time: header → ``fields``; each later row → a value list,
            or a ParseFailure naming the cell (Excel error, cells beyond the header)

openpyxl rather than python-calamine, because calamine turns error cells into empty
strings: the measurements and the reasoning are in ``docs/excel.md``.

Rules (also in the docs):

* The record's ``line`` is the sheet row number, so a DLQ record says where to look.
* Empty rows (every cell empty or ``None``) are skipped: they are not records.
* Merged cells: the value sits in the top-left cell only; the other cells are empty.
* Dates: a cell with a date-only number format (``yyyy-mm-dd``, no hours or seconds) is a
  ``datetime.date``; a date-and-time format gives ``datetime.datetime``; a time-only value
  (serial below 1) gives ``datetime.time``; a duration format (``[h]:mm``) gives the number
  of seconds as a float (pydantic reads that as a ``timedelta``).
* Formulas give their cached value (what Excel last computed); a formula never computed
  (a file written by a library, never opened in Excel) gives ``None``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from .. import codec, storage
from ..errors import ConfigError, MissingDependencyError, SourceError
from ..kinds import xlsx as xlsx_kind
from ..kinds.xlsx import EXCEL_ERRORS, letters, row_json, short
from ..nulls import EmptyCells, empty_cells_mode, null_tokens
from ..units import parse_size
from .base import ParseFailure, RecordSource, open_input
from .xlsx_book import Unsupported, Workbook

__all__ = ["EXCEL_ERRORS", "READERS", "ExcelSource"]

#: ``"auto"``: the fast reader, openpyxl for a workbook it does not cover; ``"fast"``: the
#: fast reader or a SourceError; ``"openpyxl"``: openpyxl only.
READERS = ("auto", "fast", "openpyxl")
#: The reader of an ExcelSource created without ``reader=`` (tests run every Excel test
#: through each reader by changing it).
DEFAULT_READER = "auto"

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# How much of each XML part is read to look for a DTD: a DOCTYPE can only come before the
# root element, so the prolog is enough; 64 KiB leaves room for long comments.
_PROLOG_BYTES = 64 * 1024
# An entry this small cannot hurt, whatever its ratio.
_RATIO_MIN_BYTES = 16 * 1024 * 1024


class ExcelSource(RecordSource):
    """Read one sheet of an ``.xlsx`` / ``.xlsm`` workbook; each row is a record.

    :param sheet: the sheet's name or 0-based index (default: the first sheet).
    :param header_row: the 1-based row holding the column names (default 1). ``None``:
        no header, columns are named by their letters ``A``, ``B``, ...
    :param skip_rows: rows to skip before the header (``skip_rows=2`` = header in row 3);
        an alternative to ``header_row``.
    :param max_uncompressed_bytes: refuse a workbook whose zip parts add up to more than
        this once inflated (zip bomb guard), e.g. ``"1GiB"``.
    :param max_compression_ratio: refuse a zip part (above 16 MiB inflated) compressed more
        than this many times; real sheets stay far below.
    :param empty_cells: how an empty cell (or an empty string) is read: ``"model"`` (the
        default) the way the model's field asks (:mod:`flowschema_core.nulls`), ``"none"``
        always ``None``, ``"keep"`` always ``""``. Applies to sheets with a header row.
    :param null_values: more string cell values that mean "no value" (``["N/A", "-"]``).
    :param reader: ``"auto"`` (the default: the fast reader, openpyxl for a workbook it does
        not cover), ``"fast"`` (the fast reader only) or ``"openpyxl"``. The run report's
        ``notes`` say which read the workbook, and why.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sheet: str | int = 0,
        header_row: int | None = 1,
        skip_rows: int | None = None,
        max_uncompressed_bytes: int | str = "1GiB",
        max_compression_ratio: float = 200.0,
        empty_cells: EmptyCells = "model",
        null_values: Sequence[str] = (),
        reader: str | None = None,
    ) -> None:
        self.path = storage.local_path(path)
        if storage.is_remote(self.path):  # the zip is opened by name several times (checks, openpyxl, the fast reader)
            raise ConfigError(f"{storage.display(self.path)}: ExcelSource reads local workbooks only; download it first "
                              "(e.g. aws s3 cp URL book.xlsx)")
        self.reader = DEFAULT_READER if reader is None else reader
        if self.reader not in READERS:
            raise ConfigError(f"reader must be one of {', '.join(READERS)}, not {reader!r}")
        self.name = self.path
        if not isinstance(sheet, (str, int)) or isinstance(sheet, bool):
            raise ConfigError(f"sheet must be a sheet name or a 0-based index, not {sheet!r}")
        self.sheet = sheet
        if skip_rows is not None:
            if skip_rows < 0:
                raise ConfigError(f"skip_rows must be >= 0, not {skip_rows}")
            if header_row not in (1, skip_rows + 1):
                raise ConfigError("give header_row or skip_rows, not both")
            header_row = skip_rows + 1
        if header_row is not None and header_row < 1:
            raise ConfigError(f"header_row is a 1-based row number (or None for no header), not {header_row}")
        self.header_row = header_row
        self.max_uncompressed_bytes = parse_size(max_uncompressed_bytes, name="max_uncompressed_bytes")
        self.max_compression_ratio = max_compression_ratio
        self.fields = None
        # An empty cell reaches the worker as None (an empty string cell too).
        self.nulls = {"mode": empty_cells_mode(empty_cells, None), "tokens": [None, *null_tokens(null_values)]}
        self._workbook: Any = None
        self.notes: list[str] = []
        self._fast: _FastSheet | None = None  # prepared by worker_context for this run's chunks
        self._driver_reads = False  # True while chunks() reads with openpyxl

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "excel", "name": self.path, "sheet": self.sheet, "header_row": self.header_row, "reader": self.reader}

    # -- safety checks before any XML is parsed ------------------------------------------
    def _check_container(self) -> None:
        with open_input(self.path, "Excel file") as f:
            head = f.read(8)
            if head.startswith(_OLE_MAGIC[:4]):
                f.seek(0)
                body = f.read(4 * 1024 * 1024)
                if "EncryptionInfo".encode("utf-16-le") in body:
                    raise SourceError(f"{self.path}: the workbook is password-protected (encrypted); save it without a password first")
                raise SourceError(
                    f"{self.path}: this is an OLE2 container (a legacy .xls workbook or an encrypted .xlsx), "
                    "not an .xlsx zip; save it as .xlsx (without a password) first"
                )
            if not head.startswith(_ZIP_MAGIC):
                what = "the file is empty" if not head else f"it starts with {head!r}, not a zip header"
                raise SourceError(f"{self.path}: not an Excel .xlsx workbook ({what})")
            size = f.seek(0, os.SEEK_END)
        try:
            archive = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise SourceError(f"{self.path}: truncated or corrupt workbook (the zip directory cannot be read: {exc})") from exc
        with archive:
            infos = archive.infolist()
            # zipfile never inflates an entry beyond its declared file_size (and checks the
            # CRC), so the directory's figures bound what opening the workbook can cost.
            total = sum(i.file_size for i in infos)
            if total > self.max_uncompressed_bytes:
                raise SourceError(
                    f"{self.path}: refused as a possible zip bomb: its parts inflate to {total} bytes, "
                    f"above max_uncompressed_bytes={self.max_uncompressed_bytes}"
                )
            if sum(i.compress_size for i in infos) > size:
                raise SourceError(f"{self.path}: refused: zip entries overlap or claim more bytes than the file holds (zip bomb?)")
            for info in infos:
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > _RATIO_MIN_BYTES and ratio > self.max_compression_ratio:
                    raise SourceError(
                        f"{self.path}: refused as a possible zip bomb: part {info.filename} is compressed {ratio:.0f}:1 "
                        f"(max_compression_ratio={self.max_compression_ratio:g})"
                    )
            names = {i.filename for i in infos}
            if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
                raise SourceError(f"{self.path}: a zip file but not an Excel workbook (no [Content_Types].xml / xl/ parts)")
            for info in infos:
                if info.filename.endswith((".xml", ".rels", ".vml")):
                    self._check_prolog(archive, info)

    def _check_prolog(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        try:
            with archive.open(info) as part:
                head = part.read(_PROLOG_BYTES)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise SourceError(f"{self.path}: truncated or corrupt workbook (part {info.filename}: {exc})") from exc
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            head = head.decode("utf-16", "replace").encode("utf-8")
        upper = head.upper()
        if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
            raise SourceError(
                f"{self.path}: refused: part {info.filename} declares a DOCTYPE/ENTITY "
                "(Excel never writes one; entity expansion and external entities are XML attacks)"
            )

    # -- choosing the reader ----------------------------------------------------------
    def worker_context(self, limit: int) -> dict[str, Any] | None:
        """Open the workbook for the fast reader and return what every worker needs (shared
        strings, date styles, date system); None when this workbook goes to openpyxl. Shared
        strings larger than ``limit`` (the run's share of the byte budget per worker) are not
        sent: the workbook is read with openpyxl, in the driver, and the notes say so."""
        self.notes = []
        self._fast = self._open_fast(limit)
        return {"xlsx": self._fast.context} if self._fast is not None else None

    def _open_fast(self, limit: int | None) -> _FastSheet | None:
        """The fast reader's view of the sheet, or None (with a note) for openpyxl."""
        if self.reader == "openpyxl":
            self.notes.append(f"{self.path}: read with openpyxl (reader='openpyxl')")
            return None
        _require_openpyxl()  # its number-format rules decide what a date is, in both readers
        self._check_container()
        try:
            archive = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise SourceError(f"{self.path}: truncated or corrupt workbook (the zip directory cannot be read: {exc})") from exc
        try:
            book = Workbook(archive, self.path)
            part = book.sheet_part(self.sheet)
            size = book.shared_strings_size()
            if limit is not None and size > limit:
                raise Unsupported(f"its shared strings ({size:,} bytes) exceed the share of the byte budget each worker may hold "
                                  f"({limit:,} bytes); a larger max_bytes_in_flight keeps the fast reader")
            prefix = book.scan_sheet(part)
            context = book.context()
            if limit is not None and len(codec.pack(context)) > limit:
                raise Unsupported(f"its shared strings exceed the share of the byte budget each worker may hold ({limit:,} bytes)")
        except Unsupported as why:
            archive.close()
            if self.reader == "fast":
                raise SourceError(f"{self.path}: the fast Excel reader cannot read this workbook: {why}; use reader='openpyxl'") from None
            self.notes.append(f"{self.path}: read with openpyxl, in the driver (slower): the fast reader does not cover it: {why}")
            return None
        except BaseException:
            archive.close()
            raise
        self.notes.append(f"{self.path}: read with the fast reader (sheet XML parsed in the workers)")
        return _FastSheet(archive, book, part, prefix, context)

    def chunks(self, target_bytes: int) -> Iterator[tuple[bytes, int]]:
        fast, self._fast = self._fast, None  # a run prepares it once, with its worker context
        if fast is None:
            # openpyxl in the driver: chosen by worker_context (its note says why), or no
            # worker context was asked for, so workers could not read xlsx chunks.
            if not self.notes:
                self.notes.append(f"{self.path}: read with openpyxl (no worker context was prepared for the fast reader)")
            self._driver_reads = True
            try:
                yield from super().chunks(target_bytes)
            finally:
                self._driver_reads = False
            return
        token = fast.context["token"]
        try:
            for block, row0, counter in self._fast_blocks(fast, target_bytes):
                yield codec.encode(xlsx_kind.chunk(block, row0, counter, self.fields, fast.prefix, token,
                                                   self.nulls if self.fields is not None else None))
        finally:
            fast.close()

    def _fast_blocks(self, fast: _FastSheet, target_bytes: int) -> Iterator[tuple[bytes, int, int]]:
        """The sheet's blocks after the header row, each with the ``(row0, counter)`` it
        starts from; reads the header row (``self.fields``) first."""
        first = self.header_row or 1
        row0, counter = 0, first
        blocks = fast.book.blocks(fast.part, fast.prefix, target_bytes)
        if self.header_row is not None:
            fields: list[str] | None = None
            for block in blocks:
                rest, row0, fields = self._header_in(fast, block, row0, first)
                if fields is not None:
                    if not fields:
                        break
                    self.fields, counter = fields, first + 1
                    if rest.strip():
                        yield rest, row0, counter
                        row0, counter = xlsx_kind.boundary_state(rest, fast.prefix, row0, counter)
                    break
            if not fields:
                raise SourceError(f"{self.path}: the header row {self.header_row} of sheet {self.sheet!r} is empty")
        for block in blocks:
            yield block, row0, counter
            row0, counter = xlsx_kind.boundary_state(block, fast.prefix, row0, counter)

    def _header_in(self, fast: _FastSheet, block: bytes, row0: int, first: int) -> tuple[bytes, int, list[str] | None]:
        """Look for the header row in ``block``: ``(what follows it, row0, fields)``;
        fields is ``[]`` when the first row at or after ``first`` is not row ``first``
        (openpyxl then reads an empty header), None when the block ends before it."""
        tag = fast.book_row_tag
        starts = [m.start() for m in tag.finditer(block)] + [len(block)]
        for start, end in itertools.pairwise(starts):
            segment = block[start:end]
            for number, values, _, problem in xlsx_kind.rows(segment, fast.book_rows, fast.prefix, row0, first):
                if problem is not None:
                    raise SourceError(f"{self.path}: the header row {number} cannot be read: {problem}")
                fields = _header(list(values)) if number == first else []
                return block[end:], number, fields
            row0, _ = xlsx_kind.boundary_state(segment, fast.prefix, row0, first)
        return b"", row0, None

    def _fast_records(self, fast: _FastSheet) -> Iterator[tuple[int | None, Any]]:
        """The fast reader's records, parsed here (what the workers do with the chunks)."""
        try:
            for block, row0, counter in self._fast_blocks(fast, 1 << 20):
                for number, record, reason, raw_text in xlsx_kind.records(block, fast.book_rows, fast.prefix, row0, counter, self.fields):
                    yield number, ParseFailure(reason or "", raw_text) if record is None else record
        finally:
            fast.close()

    # -- reading -----------------------------------------------------------------------
    def _open_sheet(self) -> Any:
        _require_openpyxl()
        import openpyxl

        self._check_container()
        try:
            workbook = openpyxl.load_workbook(self.path, read_only=True, data_only=True, keep_links=False)
        except Exception as exc:  # openpyxl raises many kinds (KeyError, zipfile, XML errors)
            raise SourceError(f"{self.path}: cannot open the workbook: {_describe(exc)}") from exc
        self._workbook = workbook
        names = workbook.sheetnames
        if isinstance(self.sheet, int):
            if not -len(names) <= self.sheet < len(names):
                raise SourceError(f"{self.path}: no sheet at index {self.sheet}; the workbook has {len(names)}: {names}")
            return workbook[names[self.sheet]]
        if self.sheet not in names:
            raise SourceError(f"{self.path}: no sheet named {self.sheet!r}; sheets: {names}")
        return workbook[self.sheet]

    def records(self) -> Iterator[tuple[int | None, Any]]:
        """The records, read in this process (by the fast reader unless it does not cover
        the workbook); a run reads through :meth:`chunks` instead."""
        if self._driver_reads:  # a run's chunks, read with openpyxl as decided
            yield from self._openpyxl_records()
            return
        self.notes = []
        fast = self._open_fast(None)
        if fast is not None:
            yield from self._fast_records(fast)
            return
        yield from self._openpyxl_records()

    def _openpyxl_records(self) -> Iterator[tuple[int | None, Any]]:
        worksheet = self._open_sheet()
        if not hasattr(worksheet, "iter_rows") or type(worksheet).__name__ == "ReadOnlyChartsheet":
            raise SourceError(f"{self.path}: sheet {self.sheet!r} is a chart sheet, not a worksheet")
        # The <dimension> element is written by the producing program and is sometimes
        # wrong ("A1" for a whole table); read-only mode would cut every row to it. Forget
        # it, so each row runs to its own last cell.
        worksheet.reset_dimensions()
        first = self.header_row or 1
        rows = worksheet.iter_rows(min_row=first)
        try:
            yield from self._rows(rows, first)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"{self.path}: the sheet cannot be read (truncated or malformed XML?): {_describe(exc)}") from exc
        finally:
            self.close()

    def _rows(self, rows: Iterator[tuple[Any, ...]], first: int) -> Iterator[tuple[int | None, Any]]:
        row_number = first - 1
        width = 0
        fields: list[str] | None = None
        if self.header_row is not None:
            for cells in rows:
                row_number += 1
                fields = _header([c.value for c in cells])
                break
            if not fields:
                raise SourceError(f"{self.path}: the header row {self.header_row} of sheet {self.sheet!r} is empty")
            width = len(fields)
            self.fields = fields
        for cells in rows:
            row_number += 1
            values: list[Any] = []
            failure: str | None = None
            last = 0  # cells after the last non-empty one are dropped
            for index, cell in enumerate(cells):
                value = cell.value
                if value is None:
                    values.append(None)
                    continue
                kind = cell.data_type
                if kind == "e" and failure is None:
                    failure = f"cell {_coordinate(index, row_number)} holds {value}"
                elif kind == "d":
                    value = _date_value(value, cell)
                elif kind == "s" and value == "":
                    values.append(None)
                    continue
                values.append(value)
                last = index + 1
            if not last:
                continue  # an empty row is not a record
            del values[last:]
            if fields is None:
                # No header: a dict keyed by column letter (rows may differ in width).
                if failure is not None:
                    yield row_number, ParseFailure(failure, row_json([], values, row_number))
                else:
                    yield row_number, {letters(i): v for i, v in enumerate(values)}
                continue
            if last > width and failure is None:
                extra = next(i for i in range(width, last) if values[i] is not None)
                failure = (
                    f"row {row_number} has {last} cells but the header names {width} columns "
                    f"(cell {_coordinate(extra, row_number)} holds {short(values[extra])})"
                )
            if failure is not None:
                yield row_number, ParseFailure(failure, row_json(fields, values, row_number))
                continue
            values.extend([None] * (width - last))
            yield row_number, values

    def close(self) -> None:
        workbook, self._workbook = self._workbook, None
        if workbook is not None:
            workbook.close()
        fast, self._fast = self._fast, None  # prepared for a run that stopped before reading
        if fast is not None:
            fast.close()


class _FastSheet:
    """An open workbook and the sheet the fast reader streams."""

    def __init__(self, archive: zipfile.ZipFile, book: Workbook, part: str, prefix: str, context: dict[str, Any]) -> None:
        import re

        self.archive, self.book, self.part, self.prefix, self.context = archive, book, part, prefix, context
        self.book_rows = xlsx_kind.Book(context)
        self.book_row_tag = re.compile(rf"<{re.escape(prefix)}row[\s>/]".encode())

    def close(self) -> None:
        self.archive.close()


def _require_openpyxl() -> None:
    try:
        import defusedxml  # noqa: F401 - openpyxl parses with it when it is importable
        import openpyxl  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("Excel support", "excel", getattr(exc, "name", None)) from exc


def _header(values: list[Any]) -> list[str]:
    while values and (values[-1] is None or (isinstance(values[-1], str) and not values[-1].strip())):
        values.pop()
    names: list[str] = []
    seen: set[str] = set()
    for index, value in enumerate(values):
        if isinstance(value, dt.datetime) and value.time() == dt.time():
            value = value.date()
        name = value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value).strip() if value is not None else ""
        if not name:
            name = letters(index)
        base, n = name, 2
        while name in seen:  # duplicate titles get a suffix so no column is lost
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        names.append(name)
    return names


def _date_value(value: Any, cell: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.hour == value.minute == value.second == value.microsecond == 0:
            from openpyxl.styles.numbers import is_datetime

            if is_datetime(cell.number_format) == "date":
                return value.date()
        return value
    if isinstance(value, dt.timedelta):
        return value.total_seconds()  # msgpack has no duration type; pydantic reads seconds
    return value



def _coordinate(index: int, row_number: int) -> str:
    return f"{letters(index)}{row_number}"




def _describe(exc: BaseException) -> str:
    """The error and its root cause (openpyxl wraps the parser's error in a vague one)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 4:
        seen.add(id(current))
        text = str(current).strip().splitlines()
        parts.append(f"{type(current).__name__}: {text[0][:200]}" if text else type(current).__name__)
        current = current.__cause__ or current.__context__
    return parts[0] if len(parts) == 1 else f"{parts[0]} (cause: {parts[-1]})"
