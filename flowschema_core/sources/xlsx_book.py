"""The driver's half of the fast Excel reader: the workbook's parts, and the sheet cut into blocks.

::

    zip ─► _rels/.rels ─► workbook part ─► sheet names, date system, sheet part paths
        ─► styles.xml   ─► per cell style: plain / date / datetime / duration (openpyxl's rules)
        ─► sharedStrings.xml ─► list of strings            (all three: the worker context)
        ─► sheet part, inflated piece by piece ─► blocks cut after a ``</row>``

The small parts are parsed with defusedxml; the shared strings and the sheet with the
patterns of :mod:`flowschema_core.kinds.xlsx`. Anything this reader does not cover raises
:class:`Unsupported`, and :class:`~flowschema_core.sources.excel.ExcelSource` reads that
workbook with openpyxl instead, saying why in the run report's notes.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

from ..errors import SourceError
from ..kinds import xlsx as xlsx_kind

_PIECE = 1 << 20
_REL_WORKSHEET = "/worksheet"
_REL_CHARTSHEET = "/chartsheet"
_REL_OFFICE_DOCUMENT = "/officeDocument"
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError)


class Unsupported(Exception):
    """The workbook holds something the fast reader does not read; openpyxl will."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: Any, name: str) -> str | None:
    """An attribute by local name, whatever its namespace (r:id)."""
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value  # type: ignore[no-any-return]
    return None


class Workbook:
    """One workbook's metadata, read once on the driver."""

    def __init__(self, archive: zipfile.ZipFile, path: str) -> None:
        self.archive, self.path = archive, path
        self.names = {info.filename for info in archive.infolist()}
        self.part = self._workbook_part()
        root = self._xml(self.part)
        pr = next((e for e in root.iter() if _local(e.tag) == "workbookPr"), None)
        flag = _attr(pr, "date1904") if pr is not None else None
        self.epoch1904 = flag is not None and flag not in ("false", "f", "0")
        rels = self._rels(self.part)
        self.sheets: list[tuple[str, str, bool]] = []  # (name, part, is a chart sheet)
        for sheet in (e for e in root.iter() if _local(e.tag) == "sheet"):
            rel = rels.get(_attr(sheet, "id") or "")
            if rel is None:
                continue
            target, kind = rel
            if target in self.names:
                self.sheets.append((sheet.get("name", ""), target, kind.endswith(_REL_CHARTSHEET)))
        self.styles = self._styles()

    # -- parts ---------------------------------------------------------------------------
    def _read(self, name: str) -> bytes:
        try:
            return self.archive.read(name)
        except KeyError:
            raise Unsupported(f"part {name} is missing") from None
        except _ZIP_ERRORS as exc:
            raise SourceError(f"{self.path}: truncated or corrupt workbook (part {name}: {exc})") from exc

    def _xml(self, name: str) -> Any:
        from defusedxml import ElementTree
        from defusedxml.common import DefusedXmlException

        data = self._read(name)
        try:
            return ElementTree.fromstring(data)
        except DefusedXmlException as exc:
            raise SourceError(f"{self.path}: refused: part {name}: {type(exc).__name__}: {exc}") from exc
        except ElementTree.ParseError as exc:
            raise SourceError(f"{self.path}: cannot open the workbook: part {name} is not well-formed XML ({exc})") from exc

    def _rels(self, part: str) -> dict[str, tuple[str, str]]:
        folder, base = posixpath.split(part)
        name = posixpath.join(folder, "_rels", base + ".rels")
        if name not in self.names:
            return {}
        rels: dict[str, tuple[str, str]] = {}
        for rel in self._xml(name).iter():
            if _local(rel.tag) != "Relationship" or rel.get("TargetMode") == "External":
                continue
            target = rel.get("Target", "")
            target = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
            rels[rel.get("Id", "")] = (target, rel.get("Type", ""))
        return rels

    def _workbook_part(self) -> str:
        for target, kind in self._rels("").values() if "_rels/.rels" in self.names else ():
            if kind.endswith(_REL_OFFICE_DOCUMENT) and target in self.names:
                return target
        if "xl/workbook.xml" in self.names:
            return "xl/workbook.xml"
        raise Unsupported("no workbook part")

    def _styles(self) -> list[int]:
        """Per cell style (cellXfs index): what it does to a number, by openpyxl's rules."""
        from openpyxl.styles.numbers import BUILTIN_FORMATS, is_datetime, is_timedelta_format

        rels = self._rels(self.part)
        name = next((t for t, k in rels.values() if k.endswith("/styles")), "xl/styles.xml")
        if name not in self.names:
            return []
        root = self._xml(name)
        custom: dict[int, str] = {}
        kinds: list[int] = []
        for element in root.iter():
            tag = _local(element.tag)
            if tag == "numFmt":
                custom[int(element.get("numFmtId", "0"))] = element.get("formatCode", "")
            elif tag == "cellXfs":
                for xf in element:
                    if _local(xf.tag) != "xf":
                        continue
                    number_format = int(xf.get("numFmtId", "0"))
                    fmt = custom[number_format] if number_format in custom else BUILTIN_FORMATS.get(number_format)
                    date_kind = is_datetime(fmt)
                    if date_kind is None:
                        kinds.append(xlsx_kind.PLAIN)
                    elif is_timedelta_format(fmt):
                        kinds.append(xlsx_kind.DURATION)
                    else:
                        kinds.append(xlsx_kind.DATE if date_kind == "date" else xlsx_kind.DATETIME)
        return kinds

    def shared_strings_part(self) -> str | None:
        rels = self._rels(self.part)
        name = next((t for t, k in rels.values() if k.endswith("/sharedStrings")), None)
        if name is not None and name not in self.names:
            raise SourceError(f"{self.path}: cannot open the workbook: its shared strings part {name} is missing from the zip")
        if name is None and "xl/sharedStrings.xml" in self.names:
            name = "xl/sharedStrings.xml"
        return name

    def shared_strings_size(self) -> int:
        name = self.shared_strings_part()
        return 0 if name is None else self.archive.getinfo(name).file_size

    def shared_strings(self) -> list[str]:
        """Every shared string, as openpyxl reads it (rich text runs joined, phonetic
        guides left out, ``x005F_`` removed)."""
        name = self.shared_strings_part()
        if name is None:
            return []
        text = _decoded(self._read(name), name)
        declaration = re.match(r"\s*<\?xml[^>]*\?>", text)
        body = declaration.end() if declaration else 0
        if text.find("<!", body) >= 0 or text.find("<?", body) >= 0:
            upper = text.upper()
            if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
                _refuse_or_unsupported(upper, name, self.path)
            # Comments and processing instructions hold no text: drop them; CDATA is openpyxl's.
            text = re.sub(r"<!--.*?-->|<\?.*?\?>", "", text[body:], flags=re.S)
            if "<!" in text:
                _refuse_or_unsupported(text, name, self.path)
        root = re.search(r"<(\w+:)?sst\b", text)
        prefix = root.group(1) or "" if root else ""
        pats = xlsx_kind.Patterns.of(prefix)
        items = re.compile(rf"<{re.escape(prefix)}si\b[^>]*?(?:/>|>(.*?)</{re.escape(prefix)}si>)", re.S)
        return [pats.rich_text(content).replace("x005F_", "") if content else "" for content in items.findall(text)]

    def context(self) -> dict[str, Any]:
        """The worker context: shared strings, styles, date system, and a token that ties
        chunks to it."""
        strings = self.shared_strings()
        token = hashlib.sha1(f"{self.path}:{len(strings)}:{self.styles}:{self.epoch1904}".encode()).hexdigest()[:12]
        return {"token": token, "strings": strings, "styles": self.styles, "epoch1904": self.epoch1904}

    # -- the sheet ------------------------------------------------------------------------
    def sheet_part(self, sheet: str | int) -> str:
        names = [name for name, _, _ in self.sheets]
        if isinstance(sheet, int):
            if not -len(names) <= sheet < len(names):
                raise SourceError(f"{self.path}: no sheet at index {sheet}; the workbook has {len(names)}: {names}")
            entry = self.sheets[sheet]
        else:
            if sheet not in names:
                raise SourceError(f"{self.path}: no sheet named {sheet!r}; sheets: {names}")
            entry = self.sheets[names.index(sheet)]
        if entry[2]:
            raise SourceError(f"{self.path}: sheet {sheet!r} is a chart sheet, not a worksheet")
        return entry[1]

    def pieces(self, part: str) -> Iterator[bytes]:
        """The sheet part, inflated piece by piece (zip errors become a SourceError)."""
        try:
            with self.archive.open(part) as stream:
                while piece := stream.read(_PIECE):
                    yield piece
        except _ZIP_ERRORS as exc:
            raise SourceError(f"{self.path}: truncated or corrupt workbook (part {part}: {exc})") from exc

    def scan_sheet(self, part: str) -> str:
        """One pass over the sheet before any block is sent: its namespace prefix; refuse a
        DTD; :class:`Unsupported` for what cutting at ``</row>`` cannot handle (comments,
        CDATA, processing instructions in the body, an encoding other than UTF-8)."""
        head = b""
        prefix: str | None = None
        tail = b""
        for piece in self.pieces(part):
            if prefix is None:
                head += piece
                if head.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise Unsupported("the sheet is not UTF-8")
                declaration = re.match(rb"""(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)""", head)
                if declaration and declaration.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
                    raise Unsupported(f"the sheet's encoding is {declaration.group(1).decode('ascii', 'replace')}")
                found = re.search(rb"<(\w+:)?sheetData\b", head)
                if found is None:
                    if len(head) > 64 * _PIECE:
                        raise Unsupported("no <sheetData> in the sheet's first 64 MiB")
                    continue
                prolog = head[:found.start()].upper()
                # Comments and processing instructions before the rows do not move a </row>;
                # a DTD is refused wherever it is.
                if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
                    _refuse_or_unsupported(prolog.decode("utf-8", "replace"), part, self.path)
                prefix = (found.group(1) or b"").decode("ascii")
                piece = head[found.start():]
            window = tail + piece
            if b"<!" in window or b"<?" in window:
                _refuse_or_unsupported(window.decode("utf-8", "replace"), part, self.path)
            tail = piece[-1:]
        return prefix or ""

    def blocks(self, part: str, prefix: str, target: int) -> Iterator[bytes]:
        """The body of ``<sheetData>`` in blocks of about ``target`` bytes, each ending
        just after a ``</row>`` (the last one at the end of the sheet data)."""
        end_tag = f"</{prefix}row>".encode()
        open_tag = re.compile(rf"<{re.escape(prefix)}sheetData\b[^>]*?(/?)>".encode())
        close_tag = f"</{prefix}sheetData>".encode()
        buf = b""
        started = False
        for piece in self.pieces(part):
            buf += piece
            if not started:
                found = open_tag.search(buf)
                if found is None:
                    continue
                if found.group(1):
                    return  # <sheetData/>: no rows
                buf, started = buf[found.end():], True
            stop = buf.find(close_tag)
            if stop >= 0:
                buf = buf[:stop]
                break
            while len(buf) >= target:
                cut = buf.rfind(end_tag, 0, target)
                cut = buf.find(end_tag) if cut < 0 else cut  # one row longer than a block
                if cut < 0:
                    break
                cut += len(end_tag)
                yield buf[:cut]
                buf = buf[cut:]
        else:
            if not started:
                return
            raise SourceError(f"{self.path}: the sheet cannot be read (truncated or malformed XML?): no </{prefix}sheetData> in {part}")
        while buf.strip():
            cut = buf.rfind(end_tag, 0, target) if len(buf) > target else -1
            if cut < 0:
                yield buf
                return
            cut += len(end_tag)
            yield buf[:cut]
            buf = buf[cut:]


def _decoded(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unsupported(f"part {name} is not UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unsupported(f"part {name} is not valid UTF-8") from None


def _refuse_or_unsupported(text: str, part: str, path: str) -> None:
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise SourceError(f"{path}: refused: part {part} declares a DOCTYPE/ENTITY (DTDForbidden: Excel never writes one)")
    if "<!--" in text or "<![CDATA[" in text or "<?" in text:
        raise Unsupported(f"part {part} holds XML comments, CDATA sections or processing instructions")
