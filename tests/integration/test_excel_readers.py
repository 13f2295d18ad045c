"""The fast Excel reader against openpyxl's on the calamine project's test workbooks and on
hand-made sheets: the same records and the same DLQ, through records() and through a run."""

from __future__ import annotations

import json
import pathlib
import warnings
import zipfile
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from pydantic import BaseModel

import flowschema_core as fs
from flowschema_core.kinds import xlsx as xlsx_kind
from flowschema_core.sources.base import ParseFailure
from flowschema_core.sources.excel import ExcelSource

from .pipeline_models import Anything, IdName, Poison

CALAMINE = pathlib.Path(__file__).parent.parent / "data" / "calamine"
WORKBOOKS = sorted(p for p in CALAMINE.iterdir() if p.suffix in (".xlsx", ".xlsm"))
# What the fast reader leaves to openpyxl (reader="auto" falls back; "fast" refuses).
NOT_FAST = {"inlineStr_cdata.xlsx": "CDATA sections"}
# What openpyxl cannot read and the fast reader can, with its record count: a Strict OOXML
# workbook, whose sheets openpyxl does not find.
ONLY_FAST = {"strict_iso_paths.xlsx": 76}


def sheets_of(path: pathlib.Path) -> list[str | int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(load_workbook(path, read_only=True).sheetnames)
    except Exception:  # noqa: BLE001 - a workbook openpyxl cannot open: sheet 0, both readers must refuse it
        return [0]


def outcome(path: pathlib.Path, reader: str, **options: Any) -> tuple[str, Any]:
    """``("ok", (records, fields, notes))`` or ``("error", exception type)``."""
    source = ExcelSource(path, reader=reader, **options)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = [(line, (r.reason, r.raw_text) if isinstance(r, ParseFailure) else r) for line, r in source.records()]
    except fs.FlowSchemaError as exc:
        return "error", type(exc).__name__
    return "ok", (got, source.fields, source.notes)


CASES = [(p, sheet, header) for p in WORKBOOKS for sheet in sheets_of(p) for header in (1, None)]


@pytest.mark.parametrize(("path", "sheet", "header_row"), CASES, ids=[f"{p.name}-{s}-{h}" for p, s, h in CASES])
def test_calamine_workbooks_read_the_same_with_both_readers(path: pathlib.Path, sheet: str | int, header_row: int | None) -> None:
    expected = outcome(path, "openpyxl", sheet=sheet, header_row=header_row)
    got = outcome(path, "auto", sheet=sheet, header_row=header_row)
    assert got[0] == expected[0]
    if got[0] == "ok":
        assert got[1][:2] == expected[1][:2]  # records and fields
        fast = path.name not in NOT_FAST
        assert ("read with the fast reader" in got[1][2][0]) is fast, got[1][2]
    if path.name in NOT_FAST:
        with pytest.raises(fs.SourceError, match=NOT_FAST[path.name]):
            list(ExcelSource(path, reader="fast", sheet=sheet, header_row=header_row).records())


@pytest.mark.parametrize("path", [p for p in WORKBOOKS if p.name not in NOT_FAST], ids=lambda p: p.name)
def test_the_general_loop_reads_what_the_common_shape_loop_reads(path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sheet in sheets_of(path):
        common = outcome(path, "fast", sheet=sheet, header_row=None)
        monkeypatch.setattr(xlsx_kind, "SIMPLE_SHAPE", False)
        general = outcome(path, "fast", sheet=sheet, header_row=None)
        monkeypatch.setattr(xlsx_kind, "SIMPLE_SHAPE", True)
        assert general == common


def run(path: pathlib.Path, tmp: pathlib.Path, reader: str, executor: Any = "inline", **options: Any) -> tuple[fs.RunReport, list[Any], list[Any]]:
    out, dlq = tmp / f"{reader}.jsonl", tmp / f"{reader}.errors.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = fs.Pipeline(ExcelSource(path, reader=reader, **options), Anything, fs.JSONLSink(out), fs.JSONLSink(dlq),
                             executor=executor, chunk_bytes="2KiB").run()
    errors = [{k: v for k, v in json.loads(line).items() if k not in ("run_id", "ts")} for line in dlq.open(encoding="utf-8")]
    return report, [json.loads(line) for line in out.open(encoding="utf-8")], errors


@pytest.mark.parametrize("path", WORKBOOKS, ids=lambda p: p.name)
def test_calamine_workbooks_give_the_same_run_outputs_with_both_readers(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    try:
        slow, slow_out, slow_dlq = run(path, tmp_path, "openpyxl", header_row=None)
    except fs.FlowSchemaError as exc:  # a workbook openpyxl cannot read: the fast path refuses it the same way...
        if path.name in ONLY_FAST:  # ...or reads it
            fast, _, _ = run(path, tmp_path, "auto", header_row=None)
            assert fast.rows_read == ONLY_FAST[path.name] and fast.balanced
            return
        with pytest.raises(type(exc)):
            run(path, tmp_path, "auto", header_row=None)
        return
    fast, fast_out, fast_dlq = run(path, tmp_path, "auto", header_row=None)
    assert (fast_out, fast_dlq) == (slow_out, slow_dlq)
    assert (fast.rows_read, fast.rows_valid, fast.rows_invalid) == (slow.rows_read, slow.rows_valid, slow.rows_invalid)
    assert fast.notes[0].endswith("(sheet XML parsed in the workers)") is (path.name not in NOT_FAST)


# -- hand-made sheets ----------------------------------------------------------------------------

SHEET_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
              b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')


def with_sheet(tmp_path: pathlib.Path, rows_xml: bytes, *, strings: list[str] = ()) -> pathlib.Path:  # type: ignore[assignment]
    """A workbook whose sheet XML is ``rows_xml`` (and shared strings ``strings``)."""
    wb = Workbook()
    wb.active.append(["placeholder"])
    base = tmp_path / "base.xlsx"
    wb.save(base)
    path = tmp_path / "made.xlsx"
    sst = ("<sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
           + "".join(f"<si><t>{s}</t></si>" for s in strings) + "</sst>").encode()
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = SHEET_HEAD + rows_xml + b"</sheetData></worksheet>"
            elif info.filename == "xl/_rels/workbook.xml.rels":  # openpyxl writes inline strings: add the part
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdS" Target="sharedStrings.xml" Type="http://schemas'
                                    b'.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/></Relationships>')
            elif info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats'
                                    b'-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            out.writestr(info, data)
        out.writestr("xl/sharedStrings.xml", sst)
    return path


def test_rows_and_cells_without_numbers_across_blocks(tmp_path: pathlib.Path) -> None:
    # No r attributes anywhere (some writers leave them out); tiny blocks cut between rows.
    rows = b"<row><c t=\"inlineStr\"><is><t>id</t></is></c><c t=\"inlineStr\"><is><t>name</t></is></c></row>"
    rows += b"".join(f'<row><c><v>{i}</v></c><c t="s"><v>{i % 3}</v></c></row>'.encode() for i in range(300))
    rows += b'<row r="400"><c r="B400" t="e"><v>#N/A</v></c></row><row><c><v>7</v></c></row>'
    path = with_sheet(tmp_path, rows, strings=["a", "b &amp; c", ""])
    expected = outcome(path, "openpyxl")
    assert outcome(path, "fast")[1][:2] == expected[1][:2]
    got = expected[1][0]
    assert got[0] == (2, [0, "a"]) and got[2] == (4, [2, None]) and got[-1] == (401, [7, None])
    assert got[-2] == (400, ("cell B400 holds #N/A", '{"id": null, "name": "#N/A"}'))
    _, out_slow, dlq_slow = run(path, tmp_path, "openpyxl", executor=fs.MultiprocessingExecutor(workers=2))
    report_fast, out_fast, dlq_fast = run(path, tmp_path, "fast", executor=fs.MultiprocessingExecutor(workers=2))
    assert report_fast.chunks > 5
    assert (out_fast, dlq_fast) == (out_slow, dlq_slow)
    assert dlq_fast[0]["line"] == 400 and dlq_fast[0]["record"] == 301 and dlq_fast[0]["stage"] == "parse"


def test_odd_attribute_order_quotes_and_prefixes_read_like_openpyxl(tmp_path: pathlib.Path) -> None:
    rows = (b"<row r='1' spans='1:2'><c t='inlineStr' r='A1'><is><t>id</t></is></c><c r=\"B1\" t=\"inlineStr\"><is><r><t>na</t></r>"
            b"<r><rPr/><t>me</t></r><rPh sb=\"0\" eb=\"1\"><t>x</t></rPh></is></c></row>"
            b'<row r="2"><c r="A2" s="0" t="n" ><f>1+1</f><v>2</v></c><c r="B2" t="str"><v>a&lt;b&#x41;</v></c></row>'
            b'<row r="3"><c r="B3" t="b"><v>1</v></c><c r="A3"><v>1.5E3</v></c></row>'
            b'<row r="5" /><row r="6"><c r="A6" t="n"><v></v></c></row>')
    path = with_sheet(tmp_path, rows)
    expected = outcome(path, "openpyxl")
    assert expected[1][0] == [(2, [2, "a<bA"]), (3, [1500.0, None])]  # B3 is dropped: the row ends at its last cell, A3
    assert outcome(path, "fast")[1][:2] == expected[1][:2]


def test_a_record_that_kills_its_worker_is_isolated_to_its_row(tmp_path: pathlib.Path) -> None:
    wb = Workbook()
    wb.active.append(["id", "name"])
    for i in range(1, 400):
        wb.active.append([i, "poison-x" if i == 250 else f"n{i}"])
    wb.save(tmp_path / "p.xlsx")
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    report = fs.Pipeline(ExcelSource(tmp_path / "p.xlsx", reader="fast"), Anything, fs.JSONLSink(out), fs.JSONLSink(dlq),
                         executor=fs.MultiprocessingExecutor(workers=2, max_attempts=1, max_restarts=50), hooks=[Poison()], chunk_bytes="4KiB").run()
    assert (report.rows_read, report.rows_valid, report.rows_invalid) == (399, 398, 1)
    (bad,) = [json.loads(line) for line in dlq.open(encoding="utf-8")]
    assert (bad["stage"], bad["record"], bad["line"]) == ("worker", 250, 251)
    # Its worker's beacon said which record it died on: that row alone is marked, at the cost of one death.
    assert bad["raw"] == {"id": 250, "name": "poison-x"} and bad["errors"][0]["type"] == "worker_crashed"
    assert report.worker_restarts == 1


def test_huge_shared_strings_fall_back_to_openpyxl_and_the_context_counts_against_the_budget(tmp_path: pathlib.Path) -> None:
    strings = ["id", "name"] + [f"a distinct and fairly long string number {i:06d}" for i in range(3000)]
    rows = b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    rows += b"".join(f'<row r="{i + 2}"><c r="A{i + 2}"><v>{i}</v></c><c r="B{i + 2}" t="s"><v>{i + 2}</v></c></row>'.encode() for i in range(3000))
    (tmp_path / "s.xlsx").write_bytes(with_sheet(tmp_path, rows, strings=strings).read_bytes())
    with zipfile.ZipFile(tmp_path / "s.xlsx") as archive:
        sst = archive.getinfo("xl/sharedStrings.xml").file_size
    assert sst > 100_000
    (tmp_path / "small").mkdir()
    roomy, roomy_out, _ = run(tmp_path / "s.xlsx", tmp_path / "small", "auto", executor=fs.MultiprocessingExecutor(workers=2))
    # The budget below gives each worker copy less room than the shared strings need.
    out, dlq = tmp_path / "o.jsonl", tmp_path / "d.jsonl"
    tight = fs.Pipeline(ExcelSource(tmp_path / "s.xlsx"), Anything, fs.JSONLSink(out), fs.JSONLSink(dlq),
                        executor=fs.MultiprocessingExecutor(workers=2), max_bytes_in_flight=sst, chunk_bytes="16KiB").run()
    assert "read with openpyxl" in tight.notes[0] and "exceed the share of the byte budget" in tight.notes[0]
    assert "read with the fast reader" in roomy.notes[0]
    assert [json.loads(line) for line in out.open(encoding="utf-8")] == roomy_out
    # Each of the two workers holds a copy of the strings for the whole run: the ledger saw them.
    assert roomy.peak_bytes_in_flight >= 2 * sst * 0.5
    with pytest.raises(fs.SourceError, match="the fast Excel reader cannot read this workbook: its shared strings"):
        fs.Pipeline(ExcelSource(tmp_path / "s.xlsx", reader="fast"), Anything, fs.JSONLSink(out), fs.JSONLSink(dlq),
                    executor="inline", max_bytes_in_flight=sst, chunk_bytes="16KiB").run()


def test_reader_option_is_checked() -> None:
    with pytest.raises(fs.ConfigError, match="reader must be one of auto, fast, openpyxl"):
        ExcelSource("x.xlsx", reader="calamine")


def test_a_worker_without_the_workbook_context_refuses_xlsx_chunks(tmp_path: pathlib.Path) -> None:
    from flowschema_core import codec
    from flowschema_core.worker import ChunkProcessor, WorkerSpec

    wb = Workbook()
    wb.active.append(["id"])
    wb.active.append([1])
    wb.save(tmp_path / "w.xlsx")
    source = ExcelSource(tmp_path / "w.xlsx", reader="fast")
    context = source.worker_context(1 << 20)
    assert context is not None
    (blob, _), = list(source.chunks(1 << 20))
    with pytest.raises(fs.CodecError, match="started without the workbook's shared strings"):
        ChunkProcessor(WorkerSpec(Anything)).process(blob)
    other = dict(context["xlsx"], token="another")
    with pytest.raises(fs.CodecError, match="reached a worker holding workbook another"):
        ChunkProcessor(WorkerSpec(Anything, context=codec.pack({"xlsx": other}))).process(blob)
    result = codec.decode(ChunkProcessor(WorkerSpec(Anything, context=codec.pack(context))).process(blob))
    assert (result["n"], result["valid"]) == (1, 1)


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_chunk_as_large_as_the_budget_still_goes_when_the_workers_hold_shared_strings(tmp_path: pathlib.Path, executor: str) -> None:
    # The shared strings every worker holds are reserved in the ledger for the whole run.
    # They once counted as a chunk in flight, so a chunk the budget could only take alone
    # never went: the run hung. chunk_bytes == max_bytes_in_flight is a valid setting.
    strings = ["id", "name"] + [f"customer {i:05d}" for i in range(3000)]
    rows = b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    rows += b"".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c><c r="B{i}" t="s"><v>{2 + i % 3000}</v></c></row>'.encode() for i in range(2, 20000))
    path = with_sheet(tmp_path, rows, strings=strings)
    report = fs.Pipeline(ExcelSource(path), IdName, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"),
                         executor=executor, max_bytes_in_flight="1MiB", chunk_bytes="1MiB").run()
    assert (report.rows_read, report.rows_valid) == (19998, 19998)
    assert "read with the fast reader" in report.notes[0]


def test_a_resume_that_would_read_the_workbook_with_the_other_reader_is_refused(tmp_path: pathlib.Path) -> None:
    # reader="auto" chooses by the budget's share per worker; a resume with another budget
    # once cut the sheet differently and skipped the wrong chunks: rows silently lost.
    strings = ["id", "name"] + [f"customer number {i:05d} with a long name" for i in range(3000)]
    rows = b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    rows += b"".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c><c r="B{i}" t="s"><v>{2 + i % 3000}</v></c></row>'.encode() for i in range(2, 3000))
    path = with_sheet(tmp_path, rows, strings=strings)

    def run(budget: str) -> fs.RunReport:
        return fs.Pipeline(ExcelSource(path), IdName, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"), executor="inline",
                           max_bytes_in_flight=budget, chunk_bytes="64KiB", checkpoint=tmp_path / "ck").run()

    assert "fast reader" in run("4MiB").notes[0]
    with pytest.raises(fs.CheckpointError, match=r"differs in: worker_context\) \(whether an Excel workbook is read by the fast reader"):
        run("128KiB")  # its shared strings no longer fit a worker's share: openpyxl would read it
    assert run("4MiB").rows_read == 2998  # the same settings resume (here: the finished run's report)


class IdInt(BaseModel):
    id: int
    name: int


def test_unnumbered_rows_after_numbered_ones_keep_their_lines_across_blocks(tmp_path: pathlib.Path) -> None:
    # Rows without r="…" follow the last numbered row (openpyxl's rule). A block ending in
    # one once counted every row tag from the block's start instead: wrong DLQ lines.
    rows = b'<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c><c r="B1" t="inlineStr"><is><t>name</t></is></c></row>'
    rows += b'<row r="2"><c r="A2"><v>2</v></c><c r="B2"><v>1</v></c></row>'
    rows += b'<row r="100"><c r="A100"><v>100</v></c><c r="B100"><v>1</v></c></row>'
    rows += b"".join(f'<row><c><v>{101 + i}</v></c><c t="inlineStr"><is><t>bad{101 + i}</t></is></c></row>'.encode() for i in range(40))
    path = with_sheet(tmp_path, rows)

    def lines(reader: str, chunk_bytes: int) -> list[tuple[int, int]]:
        errors = tmp_path / f"e-{reader}-{chunk_bytes}.jsonl"
        fs.Pipeline(ExcelSource(path, reader=reader), IdInt, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(errors), executor="inline",
                    chunk_bytes=chunk_bytes).run()
        return [(d["record"], d["line"]) for d in map(json.loads, errors.read_text().splitlines())]

    expected = lines("openpyxl", 1 << 20)
    assert expected[0] == (3, 101) and len(expected) == 40
    for chunk_bytes in range(100, 700, 37):
        assert lines("fast", chunk_bytes) == expected, chunk_bytes
