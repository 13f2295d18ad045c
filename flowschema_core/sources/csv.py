"""CSV files, cut into raw byte blocks at record boundaries and parsed by the workers.

The driver only reads bytes and finds record boundaries (quote parity, see
:mod:`flowschema_core.blocks`): no per-record Python work. Workers parse each block with
:mod:`csv`; a ragged row or undecodable bytes become a ``parse`` DLQ record with its raw
text, never a padded row or a dropped one.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .. import blocks, codec, storage
from ..errors import ConfigError, SourceError
from ..kinds import csv as csv_kind
from ..nulls import EmptyCells, empty_cells_mode, null_tokens
from ..units import parse_size
from .base import ReadProgress, Source, open_input, oversized_record

_READ_SIZE = 1 << 20
log = logging.getLogger("flowschema")


class CSVSource(Source):
    """Read a delimited text file with a header row.

    :param header: True to read field names from the first record, or a list of names
        when the file has no header row.
    :param skip_rows: physical lines to skip before the header (titles, notes).
    :param encoding: the file's encoding (ASCII-compatible), or ``"auto"``: detected once
        from the first MiB (charset-normalizer) and said in the run report's ``notes``.
        Compressed files (``.gz``, ``.bz2``, ``.xz``, ``.zst``) are read decompressed.
    :param empty_cells: how an empty cell is read: ``"model"`` (the default) the way the
        model's field asks — ``None`` where the field admits None, not given where it has
        a default or cannot be a string, ``""`` where it takes a string (see
        :mod:`flowschema_core.nulls`); ``"none"``: always ``None``; ``"keep"``: always ``""``,
        as ``csv.DictReader`` reads it.
    :param null_values: more cell values that mean "no value" (``["NA", "N/A", "-"]``),
        read like an empty cell. The DLQ keeps every cell as it was read.
    :param empty_as_none: the older spelling: True is ``empty_cells="none"``, False ``"keep"``.
    :param max_record_bytes: a record longer than this (a giant field, or a stray quote
        that makes the rest of the file one field) is skipped without being held in
        memory and becomes a ``parse`` DLQ record with its first KiB.
    :param storage_options: for a URL path (``s3://bucket/orders.csv``, ``gs://``,
        ``az://``, ``https://``): the fsspec filesystem's options (credentials, endpoint);
        see :mod:`flowschema_core.storage`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        delimiter: str = ",",
        quotechar: str | None = '"',
        encoding: str = "utf-8",
        header: bool | list[str] = True,
        skip_rows: int = 0,
        skipinitialspace: bool = False,
        empty_cells: EmptyCells = "model",
        null_values: Sequence[str] = (),
        empty_as_none: bool | None = None,
        max_record_bytes: int | str = "64MiB",
        storage_options: Mapping[str, Any] | str | None = None,
    ) -> None:
        self.path = storage.local_path(path)
        self.name = storage.display(self.path)
        self.storage_options = storage.options(storage_options)
        if len(delimiter) != 1 or delimiter in "\r\n":
            raise ConfigError(f"delimiter must be one character other than a newline, got {delimiter!r}")
        if quotechar is not None and (len(quotechar) != 1 or quotechar == delimiter):
            raise ConfigError(f"quotechar must be one character different from the delimiter, got {quotechar!r}")
        self.requested_encoding = encoding  # what the user asked; "auto" is resolved when reading
        self.encoding = "utf-8" if encoding == "auto" else _check_encoding(encoding)
        self.delimiter, self.quotechar = delimiter, quotechar
        self.header, self.skip_rows = header, skip_rows
        self.max_record_bytes = parse_size(max_record_bytes, name="max_record_bytes")
        self.dialect: dict[str, Any] = {
            "delimiter": delimiter,
            "quotechar": quotechar or '"',
            "doublequote": True,
            "skipinitialspace": skipinitialspace,
            # A quote left open at the end of a block (a stray quote) is a parse error with
            # the raw text, not a silently swallowed rest of the file; so is text after a
            # closing quote.
            "strict": True,
            "quoting_enabled": quotechar is not None,
            "empty_cells": empty_cells_mode(empty_cells, empty_as_none),
            "null_values": null_tokens(null_values),
        }
        self.fields: list[str] = list(header) if isinstance(header, list) else []
        self.notes: list[str] = []  # what reading noticed and handled; the run report lists it
        self._sample = b""

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "csv", "name": self.path, "dialect": self.dialect, "encoding": self.requested_encoding}

    def chunks(self, target_bytes: int) -> Iterator[tuple[bytes, int]]:
        quote = self.quotechar.encode(self.encoding) if self.quotechar else None
        self.notes = []  # this run's
        self.read_progress = ReadProgress()
        with open_input(self.path, "CSV file", self.read_progress, self.storage_options) as f:
            start = self.read_preamble(f)
            if start is None:
                return  # an empty file holds no records
            buf, lines_before = start
            quote = self.quotechar.encode(self.encoding) if self.quotechar else None
            eof = False
            while not eof or buf:
                if not eof and len(buf) < target_bytes:
                    more = f.read(max(target_bytes - len(buf), _READ_SIZE))
                    eof = not more
                    buf += more
                    if not eof:
                        continue
                cut = len(buf) if eof and len(buf) <= target_bytes else blocks.record_end(buf, self.dialect, min(len(buf), target_bytes))
                if cut <= 0 and len(buf) > target_bytes:
                    cut = len(buf) if eof else blocks.record_end(buf, self.dialect)  # one record longer than a chunk
                if cut <= 0:
                    if len(buf) < self.max_record_bytes:
                        more = f.read(_READ_SIZE)
                        eof = not more
                        buf += more
                        continue
                    # The record at the head of buf is over the limit (a giant field, or
                    # a stray quote swallowing the rest of the file): skip it, DLQ it.
                    head = buf[:1024]
                    size, newlines, buf, eof = blocks.skip_record(f.read, buf, quote)
                    yield oversized_record(lines_before + 1, size, head, self.max_record_bytes, self.encoding)
                    lines_before += newlines
                    continue
                block, buf = buf[:cut], buf[cut:]
                yield codec.encode(csv_kind.chunk(block, lines_before, self.fields, self.dialect, self.encoding))
                lines_before += block.count(b"\n")

    def read_preamble(self, f: Any) -> tuple[bytes, int] | None:
        """Read what comes before the first record from ``f`` (an encoding guess, a BOM,
        skipped rows, blank lines and the header): return what was read past it and the
        lines before it, or None for a file with no header. Distributed mode calls it
        too, to learn where the records start (``f.tell() - len(rest)``)."""
        quote = self.quotechar.encode(self.encoding) if self.quotechar else None
        buf = f.read(_READ_SIZE)
        self._sample = buf  # the first MiB: what an encoding is guessed from
        if self.requested_encoding == "auto":
            self.encoding = self._detect_encoding(buf)
            quote = self.quotechar.encode(self.encoding) if self.quotechar else None
        if buf.startswith(codecs.BOM_UTF8) and self.encoding == "utf-8":
            buf = buf[len(codecs.BOM_UTF8):]
        lines_before = 0
        for _ in range(self.skip_rows):
            buf, _ = self._fill_until(f, buf, lambda b: b.find(b"\n"))
            cut = buf.find(b"\n") + 1 or len(buf)
            buf, lines_before = buf[cut:], lines_before + 1
        if self.header is True:
            blank_lines = 0
            while True:  # blank lines above the header (hand-made files have them) are skipped
                buf, _ = self._fill_until(f, buf, lambda b: blocks.first_boundary(b, quote))
                cut = blocks.first_boundary(buf, quote)
                head, buf = (buf, b"") if cut < 0 else (buf[:cut], buf[cut:])
                lines_before += head.count(b"\n")
                self.fields = self._parse_header(head)
                if self.fields or not buf:
                    break
                blank_lines += head.count(b"\n")
            if not self.fields:
                return None  # an empty file holds no records
            if blank_lines:
                self.notes.append(f"{self.path}: skipped {blank_lines} blank line(s) above the header")
        self._warn_if_wrong_encoding()
        return buf, lines_before

    def _fill_until(self, f: Any, buf: bytes, find: Any) -> tuple[bytes, bool]:
        while find(buf) < 0:
            if len(buf) > self.max_record_bytes:
                raise SourceError(f"{self.path}: no end of the header row within {len(buf)} bytes")
            more = f.read(_READ_SIZE)
            if not more:
                return buf, True
            buf += more
        return buf, False

    def _detect_encoding(self, sample: bytes) -> str:
        """The encoding of the file's first MiB, for ``encoding="auto"`` (said in the report)."""
        guess = likely_encoding(sample)
        if guess is None:
            raise SourceError(f"{self.path}: cannot tell the encoding of this file; pass encoding=... (e.g. 'cp1252', 'latin-1')")
        try:
            encoding = _check_encoding(guess)
        except ConfigError as exc:
            raise SourceError(f"{self.path}: looks like {guess}, which CSVSource cannot read: {exc}") from exc
        self.notes.append(f"encoding='auto': read {self.path} as {encoding}")
        return encoding

    def _parse_header(self, head: bytes) -> list[str]:
        try:
            text = head.decode(self.encoding)
        except UnicodeDecodeError as exc:
            hint = _encoding_hint(self._sample or head, self.encoding)
            raise SourceError(f"{self.path}: the header row is not valid {self.encoding} ({exc.reason} at byte {exc.start}); {hint}") from exc
        try:
            rows = [r for r in csv.reader(io.StringIO(text, newline=""), **blocks.reader_options(self.dialect)) if r]
        except csv.Error as exc:
            raise SourceError(f"{self.path}: the header row is not valid CSV ({exc}): {text.strip()[:200]!r}") from exc
        if not rows:
            return []
        if len(rows) > 1:
            # Only lines ending in \r: records are cut at \n, so every record would be read
            # as part of the header and silently lost. Refuse instead.
            raise SourceError(
                f"{self.path}: lines end with a bare carriage return (\\r, old Mac format), which CSVSource "
                f"does not split; convert the file first, e.g. tr '\\r' '\\n' < in.csv > out.csv"
            )
        fields = rows[0]
        blank = [j for j, name in enumerate(fields) if not name.strip()]
        if blank:
            # As ExcelSource names a blank header cell by its column letter: by position.
            fields = [f"column_{j + 1}" if j in blank else name for j, name in enumerate(fields)]
            self.notes.append(f"{self.path}: blank header cells named by position: {', '.join(fields[j] for j in blank)}")
        if len(fields) == 1:
            self._warn_if_one_column(fields[0])
        duplicates = sorted({f for f in fields if fields.count(f) > 1})
        if duplicates:
            raise SourceError(f"{self.path}: the header names these columns more than once: {duplicates}; rename them or pass header=[...]")
        return fields


    def _warn_if_wrong_encoding(self) -> None:
        """Records that are not valid in the encoding each go to the DLQ; if the first MiB
        already holds some, say once, at the start, which encoding the file likely has."""
        if self.requested_encoding == "auto":
            return
        try:
            codecs.getincrementaldecoder(self.encoding)().decode(self._sample, final=False)
        except UnicodeDecodeError as exc:
            self._warn(f"{self.path}: bytes that are not valid {self.encoding} in the first MiB (at byte {exc.start}); the records "
                       f"holding them go to the DLQ; {_encoding_hint(self._sample, self.encoding)}")

    def _warn_if_one_column(self, header: str) -> None:
        """A header of one column holding another likely delimiter: every record would be
        refused for the same reason, so say it once, at the start, with the fix."""
        others = [d for d in (",", ";", "\t", "|") if d != self.delimiter and d in header]
        if not others:
            return
        likely = max(others, key=header.count)
        self._warn(f"{self.path}: the header is a single column ({header[:80]!r}); the delimiter is probably {likely!r}, "
                   f"not {self.delimiter!r}: pass delimiter={likely!r}")

    def _warn(self, note: str) -> None:
        """Say it once, at the start: as a warning, and in the run report's notes."""
        self.notes.append(note)
        log.warning("%s", note)


def _encoding_hint(sample: bytes, encoding: str) -> str:
    guess = likely_encoding(sample)
    if guess and guess != encoding:
        return f"it looks like {guess}: pass encoding={guess!r}, or encoding='auto'"
    return "pass encoding=... or encoding='auto'"


def likely_encoding(sample: bytes) -> str | None:
    """The most likely encoding of ``sample`` (charset-normalizer), as a codec name."""
    from charset_normalizer import from_bytes

    best = from_bytes(sample[:_READ_SIZE]).best()
    if best is None:
        return None
    name = codecs.lookup(best.encoding).name
    return "utf-8" if name in ("ascii", "utf-8") else name


def _check_encoding(encoding: str) -> str:
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise ConfigError(f"unknown encoding {encoding!r}") from exc
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        return "utf-8"  # any spelling of UTF-8; a BOM is skipped when reading either way
    # Blocks are cut on raw bytes, so newline, quote and comma must be the ASCII bytes.
    probe = '\n\r",;|\t'
    try:
        ascii_compatible = probe.encode(encoding) == probe.encode("ascii")
    except UnicodeEncodeError:
        ascii_compatible = False
    if not ascii_compatible:
        raise ConfigError(
            f"encoding {encoding!r} is not ASCII-compatible (e.g. UTF-16); convert the file "
            f"first, for example: iconv -f {encoding} -t utf-8 in.csv > out.csv"
        )
    return encoding
