"""ExcelSource on real .xlsx files built with openpyxl in each test, and hostile ones crafted by hand."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import pathlib
import sys
import zipfile
from typing import Any

import pytest
from openpyxl import Workbook
from pydantic import BaseModel

import flowschema_core as fs
from flowschema_core.registry import source_for
from flowschema_core.sources import excel as excel_module
from flowschema_core.sources.base import ParseFailure
from flowschema_core.sources.excel import ExcelSource


@pytest.fixture(autouse=True, params=["fast", "openpyxl"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs through both readers ("fast" never falls back: it fails instead)."""
    monkeypatch.setattr(excel_module, "DEFAULT_READER", request.param)
    return str(request.param)


class Order(BaseModel):
    id: int
    name: str
    day: dt.date | None = None


def book(path: pathlib.Path, sheets: dict[str, list[list[Any]]]) -> pathlib.Path:
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def records(source: ExcelSource) -> list[tuple[int | None, Any]]:
    return list(source.records())


def read_jsonl(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


# -- values ---------------------------------------------------------------------------------

def test_error_cells_become_parse_failures_naming_the_cell(tmp_path: pathlib.Path) -> None:
    path = book(tmp_path / "e.xlsx", {"S": [
        ["id", "name", "price", "ratio"],
        [1, "a", 10, 0.5],
        [2, "b", 20, "#DIV/0!"],
        [3, "c", "#N/A", "#REF!"],
        *[[i, n, 1, e] for i, (n, e) in enumerate([("d", "#VALUE!"), ("e", "#NAME?"), ("f", "#NUM!"), ("g", "#NULL!")], 4)],
    ]})
    got = records(ExcelSource(path))
    assert got[0] == (2, [1, "a", 10, 0.5])
    failures = [(line, r.reason) for line, r in got if isinstance(r, ParseFailure)]
    assert failures == [
        (3, "cell D3 holds #DIV/0!"), (4, "cell C4 holds #N/A"), (5, "cell D5 holds #VALUE!"),
        (6, "cell D6 holds #NAME?"), (7, "cell D7 holds #NUM!"), (8, "cell D8 holds #NULL!"),
    ]
    assert json.loads(got[1][1].raw_text) == {"id": 2, "name": "b", "price": 20, "ratio": "#DIV/0!"}


def test_pipeline_sends_error_rows_to_the_dlq_with_line_and_cell(tmp_path: pathlib.Path) -> None:
    path = book(tmp_path / "o.xlsx", {"orders": [
        ["id", "name", "day"],
        [1, "a", dt.date(2024, 1, 31)],
        [2, "#N/A", None],
        [],
        ["x", "c", None],
        [4, "d", dt.datetime(2024, 2, 1)],
    ]})
    report = fs.Pipeline(ExcelSource(path, sheet="orders"), Order, fs.JSONLSink(tmp_path / "out.jsonl"),
                         fs.JSONLSink(tmp_path / "dlq.jsonl"), executor="inline").run()
    assert (report.rows_read, report.rows_valid, report.rows_invalid) == (4, 2, 2)
    assert read_jsonl(tmp_path / "out.jsonl") == [{"id": 1, "name": "a", "day": "2024-01-31"}, {"id": 4, "name": "d", "day": "2024-02-01"}]
    parse, validate = read_jsonl(tmp_path / "dlq.jsonl")
    assert (parse["record"], parse["line"], parse["stage"]) == (2, 3, "parse")
    assert parse["errors"][0]["msg"] == "cell B3 holds #N/A"
    assert (validate["record"], validate["line"], validate["stage"]) == (3, 5, "validate")


def test_dates_times_and_numbers_keep_their_types(tmp_path: pathlib.Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["date", "datetime", "midnight", "time", "int", "float", "bool", "text"])
    ws.append([dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 13, 45, 10), dt.datetime(2024, 3, 1), dt.time(8, 30), 7, 2.5, True, "  x "])
    ws["C2"].number_format = "yyyy-mm-dd hh:mm"  # a datetime at midnight stays a datetime
    ws.append([dt.date(1900, 1, 1), None, None, None, 0, -0.0, False, ""])
    wb.save(tmp_path / "d.xlsx")
    (_, row1), (_, row2) = records(ExcelSource(tmp_path / "d.xlsx"))
    assert row1 == [dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 13, 45, 10), dt.datetime(2024, 3, 1), dt.time(8, 30), 7, 2.5, True, "  x "]
    assert type(row1[0]) is dt.date and type(row1[4]) is int
    assert row2 == [dt.date(1900, 1, 1), None, None, None, 0, 0.0, False, None]


def test_empty_rows_are_skipped_and_lines_are_sheet_rows(tmp_path: pathlib.Path) -> None:
    path = book(tmp_path / "e.xlsx", {"S": [["id", "name"], [], [1, "a"], [None, None], ["", None], [2, "b"], []]})
    assert records(ExcelSource(path)) == [(3, [1, "a"]), (6, [2, "b"])]


def test_short_rows_are_padded_and_ragged_rows_fail(tmp_path: pathlib.Path) -> None:
    path = book(tmp_path / "r.xlsx", {"S": [["id", "name", "note"], [1], [2, "b", "n", None, None], [3, "c", None, None, "extra"]]})
    got = records(ExcelSource(path))
    assert got[0] == (2, [1, None, None])
    assert got[1] == (3, [2, "b", "n"])  # empty cells past the header are fine
    line, failure = got[2]
    assert line == 4 and isinstance(failure, ParseFailure)
    assert failure.reason == "row 4 has 5 cells but the header names 3 columns (cell E4 holds 'extra')"
    assert json.loads(failure.raw_text or "") == {"id": 3, "name": "c", "note": None, "D4": None, "E4": "extra"}


def test_merged_cells_give_the_value_in_the_top_left_cell_only(tmp_path: pathlib.Path) -> None:
    wb = Workbook()
    ws = wb.active
    for row in (["region", "city"], ["North", "Oslo"], [None, "Bergen"]):
        ws.append(row)
    ws.merge_cells("A2:A3")
    wb.save(tmp_path / "m.xlsx")
    assert records(ExcelSource(tmp_path / "m.xlsx")) == [(2, ["North", "Oslo"]), (3, [None, "Bergen"])]


def test_header_names_blank_and_duplicate_titles(tmp_path: pathlib.Path) -> None:
    path = book(tmp_path / "h.xlsx", {"S": [["id", None, "id", " name ", None], [1, 2, 3, 4]]})
    source = ExcelSource(path)
    assert records(source) == [(2, [1, 2, 3, 4])]
    assert source.fields == ["id", "B", "id_2", "name"]


def test_a_wrong_dimension_element_does_not_cut_rows(tmp_path: pathlib.Path) -> None:
    good = book(tmp_path / "g.xlsx", {"S": [["id", "name", "note"], [1, "a", "x"], [2, "b", "y"]]})
    sheet = zipfile.ZipFile(good).read("xl/worksheets/sheet1.xml")
    assert b'<dimension ref="A1:C3"' in sheet
    path = with_part(tmp_path, "xl/worksheets/sheet1.xml", sheet.replace(b'<dimension ref="A1:C3"', b'<dimension ref="A1"'),
                     base=good.read_bytes())
    assert records(ExcelSource(path)) == [(2, [1, "a", "x"]), (3, [2, "b", "y"])]


# -- sheets and header position ----------------------------------------------------------------

def test_several_sheets_by_name_and_index(tmp_path: pathlib.Path) -> None:
    path = book(tmp_path / "s.xlsx", {"first": [["a"], [1]], "second": [["b"], [2], [3]], "third": [["c"], [4]]})
    assert records(ExcelSource(path)) == [(2, [1])]
    assert records(ExcelSource(path, sheet=1)) == [(2, [2]), (3, [3])]
    assert records(ExcelSource(path, sheet=-1)) == [(2, [4])]
    source = ExcelSource(path, sheet="second")
    assert [r for _, r in records(source)] == [[2], [3]] and source.fields == ["b"]
    with pytest.raises(fs.SourceError, match=r"no sheet named 'nope'; sheets: \['first', 'second', 'third'\]"):
        records(ExcelSource(path, sheet="nope"))
    with pytest.raises(fs.SourceError, match="no sheet at index 3"):
        records(ExcelSource(path, sheet=3))


def test_header_row_offset_skip_rows_and_no_header(tmp_path: pathlib.Path) -> None:
    rows = [["Quarterly report"], ["generated 2024-01-01"], ["id", "name"], [1, "a"], [2, "b"]]
    path = book(tmp_path / "o.xlsx", {"S": rows})
    for source in (ExcelSource(path, header_row=3), ExcelSource(path, skip_rows=2)):
        assert records(source) == [(4, [1, "a"]), (5, [2, "b"])]
        assert source.fields == ["id", "name"]
    source = ExcelSource(path, header_row=None)
    got = records(source)
    assert got[0] == (1, {"A": "Quarterly report"}) and got[3] == (4, {"A": 1, "B": "a"})
    with pytest.raises(fs.ConfigError):
        ExcelSource(path, header_row=2, skip_rows=5)
    with pytest.raises(fs.ConfigError):
        ExcelSource(path, header_row=0)


def test_empty_header_row_is_an_error(tmp_path: pathlib.Path) -> None:
    path = book(tmp_path / "e.xlsx", {"S": [[None], [1, 2]]})
    with pytest.raises(fs.SourceError, match=r"header row 1 .* is empty"):
        records(ExcelSource(path))


# -- bad files -------------------------------------------------------------------------------

def good_bytes(tmp_path: pathlib.Path) -> bytes:
    return book(tmp_path / "good.xlsx", {"S": [["id", "name"]] + [[i, f"n{i}"] for i in range(200)]}).read_bytes()


def test_truncated_random_empty_and_missing_files(tmp_path: pathlib.Path) -> None:
    data = good_bytes(tmp_path)
    (tmp_path / "cut.xlsx").write_bytes(data[: len(data) // 2])
    with pytest.raises(fs.SourceError, match=r"cut\.xlsx: truncated or corrupt workbook"):
        records(ExcelSource(tmp_path / "cut.xlsx"))
    (tmp_path / "random.xlsx").write_bytes(os.urandom(4096))
    with pytest.raises(fs.SourceError, match=r"random\.xlsx: not an Excel \.xlsx workbook"):
        records(ExcelSource(tmp_path / "random.xlsx"))
    (tmp_path / "empty.xlsx").write_bytes(b"")
    with pytest.raises(fs.SourceError, match="the file is empty"):
        records(ExcelSource(tmp_path / "empty.xlsx"))
    with pytest.raises(fs.SourceError, match="not found"):
        records(ExcelSource(tmp_path / "missing.xlsx"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "not a workbook")
    (tmp_path / "plain.xlsx").write_bytes(buf.getvalue())
    with pytest.raises(fs.SourceError, match="a zip file but not an Excel workbook"):
        records(ExcelSource(tmp_path / "plain.xlsx"))


def test_encrypted_and_legacy_ole_files_are_refused(tmp_path: pathlib.Path) -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 1000
    (tmp_path / "enc.xlsx").write_bytes(ole + "EncryptionInfo".encode("utf-16-le") + b"\0" * 500)
    with pytest.raises(fs.SourceError, match=r"enc\.xlsx: the workbook is password-protected"):
        records(ExcelSource(tmp_path / "enc.xlsx"))
    (tmp_path / "old.xlsx").write_bytes(ole)
    with pytest.raises(fs.SourceError, match=r"old\.xlsx: this is an OLE2 container"):
        records(ExcelSource(tmp_path / "old.xlsx"))


def with_part(tmp_path: pathlib.Path, name: str, content: bytes, *, replace: str | None = None, base: bytes | None = None) -> pathlib.Path:
    """A copy of a good workbook (or ``base``) with one part replaced or added."""
    src = zipfile.ZipFile(io.BytesIO(base or good_bytes(tmp_path)))
    out = tmp_path / "crafted.xlsx"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            if info.filename != (replace or name):
                zf.writestr(info, src.read(info))
        zf.writestr(replace or name, content)
    return out


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="inlineStr"><is><t>&lol4;</t></is></c></row></sheetData></worksheet>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="inlineStr"><is><t>&xxe;</t></is></c></row></sheetData></worksheet>"""


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_xml_attacks_are_refused(tmp_path: pathlib.Path, payload: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    path = with_part(tmp_path, "xl/worksheets/sheet1.xml", payload)
    with pytest.raises(fs.SourceError, match=r"part xl/worksheets/sheet1\.xml declares a DOCTYPE/ENTITY"):
        records(ExcelSource(path))
    # Defence in depth: without our prolog check, openpyxl (parsing with defusedxml) refuses it too.
    import openpyxl.xml

    assert openpyxl.xml.DEFUSEDXML
    monkeypatch.setattr(ExcelSource, "_check_prolog", lambda self, archive, info: None)
    with pytest.raises(fs.SourceError, match=r"(EntitiesForbidden|ExternalReferenceForbidden|DTDForbidden)"):
        records(ExcelSource(path))


def test_zip_bomb_by_ratio_and_by_total_size(tmp_path: pathlib.Path) -> None:
    # 64 MiB of zeros deflate to about 64 KiB (1000:1), written in streaming pieces.
    good = good_bytes(tmp_path)
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(good)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf, zf.open("xl/media/zeros.bin", "w", force_zip64=True) as part:
        block = b"\0" * (1 << 20)
        for _ in range(64):
            part.write(block)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(fs.SourceError, match=r"zip bomb: part xl/media/zeros\.bin is compressed \d+:1"):
        records(ExcelSource(path))
    with pytest.raises(fs.SourceError, match=r"zip bomb: its parts inflate to \d+ bytes, above max_uncompressed_bytes=33554432"):
        records(ExcelSource(path, max_uncompressed_bytes="32MiB"))
    (tmp_path / "small.xlsx").write_bytes(good)
    with pytest.raises(fs.SourceError, match="above max_uncompressed_bytes=1000"):
        records(ExcelSource(tmp_path / "small.xlsx", max_uncompressed_bytes=1000))


def test_lying_zip_directory_is_caught(tmp_path: pathlib.Path) -> None:
    # A directory that declares a small size but holds more: zipfile stops at the declared
    # size and the CRC check fails, so the lie costs nothing and ends in a SourceError.
    data = bytearray(good_bytes(tmp_path))
    zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = zf.getinfo("xl/worksheets/sheet1.xml")
    start = data.rfind(b"xl/worksheets/sheet1.xml") - 46  # its central directory entry (the last mention)
    assert data[start:start + 4] == b"PK\x01\x02"
    data[start + 24:start + 28] = (info.file_size // 2).to_bytes(4, "little")  # uncompressed size
    (tmp_path / "liar.xlsx").write_bytes(bytes(data))
    with pytest.raises(fs.SourceError):
        records(ExcelSource(tmp_path / "liar.xlsx"))


# -- wiring ----------------------------------------------------------------------------------

def test_registry_and_missing_dependency(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = book(tmp_path / "r.xlsx", {"S": [["id"], [1]]})
    assert isinstance(source_for(str(path), sheet="S"), ExcelSource)
    assert isinstance(source_for(str(tmp_path / "x.xlsm")), ExcelSource)
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    with pytest.raises(fs.MissingDependencyError, match=r'pip install "flowschema\[excel\]"'):
        records(ExcelSource(path))


def test_process_executor_run(tmp_path: pathlib.Path) -> None:
    rows = [["id", "name", "day"]] + [[i, f"n{i}", dt.date(2024, 1, 1) + dt.timedelta(days=i)] for i in range(500)]
    rows[100][1] = "#REF!"
    path = book(tmp_path / "p.xlsx", {"S": rows})
    report = fs.Pipeline(ExcelSource(path), Order, fs.JSONLSink(tmp_path / "out.jsonl"), fs.JSONLSink(tmp_path / "dlq.jsonl"),
                         executor="process", chunk_bytes="4KiB").run()
    assert (report.rows_read, report.rows_valid, report.rows_invalid) == (500, 499, 1)
    (bad,) = read_jsonl(tmp_path / "dlq.jsonl")
    assert (bad["record"], bad["line"], bad["errors"][0]["msg"]) == (100, 101, "cell B101 holds #REF!")


def test_corrupt_deflate_data_is_a_source_error(tmp_path) -> None:
    import zipfile

    import openpyxl

    path = tmp_path / "corrupt.xlsx"
    wb = openpyxl.Workbook()
    for i in range(2000):
        wb.active.append([i, f"name {i}", i * 1.5])
    wb.save(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for k in range(start + 100, start + 130):  # inside the sheet's compressed bytes
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(fs.SourceError, match="corrupt"):
        list(fs.ExcelSource(path).records())
