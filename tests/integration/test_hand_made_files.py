"""What hand-made files bring: other encodings, compression, blank header cells, the wrong
delimiter. Each gets a clear outcome, said once, in the error or the run report."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import subprocess
import sys

import pytest
from pydantic import BaseModel, ConfigDict

import flowschema_core as fs
from tests.helpers import read_jsonl, run_to_jsonl
from tests.integration.pipeline_models import Item, write_items_csv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int


def _compress(data: bytes, kind: str) -> bytes:
    if kind == "gz":
        return gzip.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zst"])
@pytest.mark.parametrize("executor", ["inline", "process"])
def test_compressed_csv_reads_as_the_plain_file(tmp_path, kind, executor):
    plain = tmp_path / "items.csv"
    write_items_csv(plain, 3000, bad_every=40)
    packed = tmp_path / f"items.csv.{kind}"
    packed.write_bytes(_compress(plain.read_bytes(), kind))
    ref, ref_out, ref_dlq = run_to_jsonl(tmp_path, "ref", fs.CSVSource(plain), Item, "inline", chunk_bytes="8KiB")
    report, out, dlq = run_to_jsonl(tmp_path, "z", fs.CSVSource(packed), Item, executor, chunk_bytes="8KiB", max_bytes_in_flight="64KiB")
    assert out == ref_out
    assert [{**d, "source": ""} for d in dlq] == [{**d, "source": ""} for d in ref_dlq]
    assert report.bytes_read == ref.bytes_read  # the budget counts decompressed bytes
    assert report.peak_bytes_in_flight <= 64 * 1024


def test_compressed_jsonl_and_the_cli_picks_the_kind_under_the_suffix(tmp_path):
    src = tmp_path / "items.jsonl.gz"
    src.write_bytes(gzip.compress(b"".join(b'{"id": %d, "name": "n", "price": "1.5"}\n' % i for i in range(1, 101)) + b'{"id": -1}\n'))
    done = subprocess.run([sys.executable, "-m", "flowschema_core.cli", "run", str(src), "--model", "tests.integration.pipeline_models:Item",
                           "--sink", "out.jsonl", "--errors", "dlq.jsonl", "--executor", "inline"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 100 and len(read_jsonl(tmp_path / "dlq.jsonl")) == 1


def test_a_truncated_gzip_is_a_flowschema_error_naming_the_file(tmp_path):
    plain = tmp_path / "items.csv"
    write_items_csv(plain, 5000)
    packed = tmp_path / "items.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes())[:-200])
    with pytest.raises(fs.FlowSchemaError, match=r"items\.csv\.gz"):
        fs.Pipeline(fs.CSVSource(packed), Item, fs.JSONLSink(tmp_path / "o.jsonl"), executor="inline").run()
    assert not (tmp_path / "o.jsonl").exists()


def test_a_header_in_another_encoding_names_the_likely_one_and_auto_reads_it(tmp_path):
    src = tmp_path / "cp1251.csv"
    text = "id,name,price,note,заметка\n" + "".join(f"{i},Товар номер {i} из Москвы,2.50,,Доставка в пятницу\n" for i in range(1, 51))
    src.write_bytes(text.encode("cp1251"))
    with pytest.raises(fs.SourceError, match=r"not valid utf-8.*looks like cp1251.*encoding='auto'"):
        fs.Pipeline(fs.CSVSource(src), _Loose, fs.JSONLSink(tmp_path / "o.jsonl"), executor="inline").run()
    report, out, _ = run_to_jsonl(tmp_path, "auto", fs.CSVSource(src, encoding="auto"), _Loose, "inline")
    assert report.rows_valid == 50 and "Товар номер 1 из Москвы" in out.decode("utf-8")
    assert report.notes == [f"encoding='auto': read {src} as cp1251"]


def test_records_in_another_encoding_under_an_ascii_header_are_said_once(tmp_path, caplog):
    src = tmp_path / "rows.csv"
    text = "id,name\n" + "".join(f"{i},Товар номер {i} из Москвы с доставкой\n" for i in range(1, 51))  # noqa: RUF001 - Cyrillic on purpose
    src.write_bytes(text.encode("cp1251"))
    with caplog.at_level("WARNING", logger="flowschema"):
        report, _, dlq = run_to_jsonl(tmp_path, "e", fs.CSVSource(src), _Loose, "inline")
    assert report.rows_invalid == 50 and dlq[0]["raw_text"].startswith("1,\\x")
    assert len([r for r in caplog.records if "encoding" in r.getMessage()]) == 1
    assert "looks like cp1251" in report.notes[0]


def test_blank_header_cells_are_named_by_position_and_said(tmp_path):
    src = tmp_path / "blank.csv"
    src.write_text("id,,name,\n1,x,a,y\n")
    report, out, _ = run_to_jsonl(tmp_path, "b", fs.CSVSource(src), _Loose, "inline")
    assert b'"column_2":"x"' in out and b'"column_4":"y"' in out
    assert any("column_2, column_4" in note for note in report.notes)


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_blank_lines_above_the_header_are_skipped_and_said(tmp_path, executor):
    # Once read as "a file without records": every record silently dropped.
    src = tmp_path / "blank-top.csv"
    src.write_bytes(b"\n\r\n\nid,name,price\n1,a,2\nx,b,3\n3,c,4\n")
    report, out, dlq = run_to_jsonl(tmp_path, "b", fs.CSVSource(src), Item, executor)
    assert report.rows_read == 3 and report.rows_valid == 2
    assert out.count(b"\n") == 2 and b'"id":3' in out
    assert [(r["record"], r["line"]) for r in dlq] == [(2, 6)]  # line numbers still the file's
    assert any("skipped 3 blank line(s) above the header" in note for note in report.notes)


def test_a_wrong_delimiter_is_said_once_at_the_start_with_the_fix(tmp_path, caplog):
    src = tmp_path / "semi.csv"
    src.write_text("id;name;price;note\n" + "".join(f"{i};n;1.5;\n" for i in range(1, 200)))
    with caplog.at_level("WARNING", logger="flowschema"):
        report, _, _ = run_to_jsonl(tmp_path, "s", fs.CSVSource(src), Item, "inline")
    assert report.rows_invalid == 199
    assert [r.getMessage() for r in caplog.records if "delimiter" in r.getMessage()] == [report.notes[0]]
    assert "pass delimiter=';'" in report.notes[0]
