"""Excel workbooks (.xlsx / .xlsm), streamed row by row with openpyxl's read-only mode.

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
import json
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ConfigError, MissingDependencyError, SourceError
from ..nulls import EmptyCells, empty_cells_mode, null_tokens
from ..units import parse_size
from .base import ParseFailure, RecordSource, open_input

#: The values a cell of type "e" can hold.
EXCEL_ERRORS = frozenset({"#N/A", "#DIV/0!", "#REF!", "#VALUE!", "#NAME?", "#NUM!", "#NULL!", "#GETTING_DATA", "#SPILL!", "#CALC!"})

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
    ) -> None:
        self.path = os.fspath(path)
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

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "excel", "name": self.path, "sheet": self.sheet, "header_row": self.header_row}

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

    # -- reading -----------------------------------------------------------------------
    def _open_sheet(self) -> Any:
        try:
            import defusedxml  # noqa: F401 - openpyxl parses with it when it is importable
            import openpyxl
        except ImportError as exc:
            raise MissingDependencyError("Excel support", "excel", getattr(exc, "name", None)) from exc
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
                    yield row_number, ParseFailure(failure, _row_json([], values, row_number))
                else:
                    yield row_number, {_letters(i): v for i, v in enumerate(values)}
                continue
            if last > width and failure is None:
                extra = next(i for i in range(width, last) if values[i] is not None)
                failure = (
                    f"row {row_number} has {last} cells but the header names {width} columns "
                    f"(cell {_coordinate(extra, row_number)} holds {_short(values[extra])})"
                )
            if failure is not None:
                yield row_number, ParseFailure(failure, _row_json(fields, values, row_number))
                continue
            values.extend([None] * (width - last))
            yield row_number, values

    def close(self) -> None:
        workbook, self._workbook = self._workbook, None
        if workbook is not None:
            workbook.close()


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
            name = _letters(index)
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


def _letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _coordinate(index: int, row_number: int) -> str:
    return f"{_letters(index)}{row_number}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _row_json(fields: list[str], values: list[Any], row_number: int) -> str:
    row: dict[str, Any] = {}
    for index, value in enumerate(values):
        key = fields[index] if index < len(fields) else _coordinate(index, row_number)
        row[key] = value
    return json.dumps(row, ensure_ascii=False, default=str)


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
