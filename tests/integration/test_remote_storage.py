"""Sources and sinks on URLs (flowschema_core.storage), against a real S3 API on loopback.

Every S3 test talks to the session's moto server (``s3`` fixture, credentials enforced):
the same run on local files and on S3 must give byte-equal outputs, an aborted run must
leave nothing under the final names, and a wrong bucket, key or credential must give a
clear SourceError / SinkError naming the URL.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

import flowschema_core as fs
from flowschema_core import cli, registry, storage
from flowschema_core.errors import ConfigError, InvalidRecordsError, MissingDependencyError, SinkError, SourceError
from tests.helpers import dlq_without_run_fields
from tests.integration.pipeline_models import Item, write_items_csv
from tests.s3_server import S3Endpoint, get, keys, pending_uploads, put

REPO = Path(__file__).resolve().parents[2]
ROWS = 300  # enough for several chunks at chunk_bytes="2KiB", a second to run


def run(source: fs.Source, sink: fs.Sink, errors: fs.Sink, **kwargs: Any) -> fs.RunReport:
    kwargs.setdefault("executor", "inline")
    report = fs.Pipeline(source, Item, sink, errors, chunk_bytes="2KiB", **kwargs).run()
    assert report.balanced, report.to_dict()
    return report


def without_source(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "source"} for r in records]


@pytest.fixture
def items_csv(tmp_path: Path) -> Path:
    path = tmp_path / "items.csv"
    write_items_csv(path, ROWS, bad_every=25)  # bad prices, ragged rows, quoted newlines
    return path


def _jsonl_of(csv_path: Path) -> bytes:
    import csv

    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lines = [json.dumps(r) for r in rows]
    lines[3] = "{not json"  # a parse failure travels to the DLQ too
    return ("\n".join(lines) + "\n").encode()


def _parquet_of(csv_path: Path) -> bytes:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(csv_path, parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"),
                           convert_options=pacsv.ConvertOptions(column_types={"price": "string", "note": "string"}))
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=50)
    return out.getvalue()


# -- sources ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "jsonl", "parquet"])
def test_a_source_on_s3_reads_as_the_same_local_file(tmp_path, items_csv, s3, s3_bucket, kind):
    data = {"csv": items_csv.read_bytes(), "csv.gz": gzip.compress(items_csv.read_bytes()),
            "jsonl": _jsonl_of(items_csv), "parquet": _parquet_of(items_csv)}[kind]
    local = tmp_path / f"items.{kind}"
    local.write_bytes(data)
    url = put(s3, s3_bucket, f"in/items.{kind}", data)

    run(registry.source_for(str(local)), fs.JSONLSink(tmp_path / "local.jsonl"), fs.JSONLSink(tmp_path / "local.dlq.jsonl"))
    source = registry.source_for(url, storage_options=s3.storage_options())
    report = run(source, fs.JSONLSink(tmp_path / "s3.jsonl"), fs.JSONLSink(tmp_path / "s3.dlq.jsonl"))

    assert report.chunks > 2 and report.rows_invalid > 0
    assert (tmp_path / "s3.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    remote_dlq = dlq_without_run_fields(tmp_path / "s3.dlq.jsonl")
    assert without_source(remote_dlq) == without_source(dlq_without_run_fields(tmp_path / "local.dlq.jsonl"))
    assert {r["source"] for r in remote_dlq} == {url}
    if kind != "parquet":  # the progress line's ETA: bytes read of the object's size
        assert source.read_progress is not None and source.read_progress.total == len(data) == source.read_progress.done


def test_a_parquet_dataset_under_an_s3_prefix_reads_with_its_partitions(tmp_path, s3, s3_bucket):
    rows = [[i, f"item {i}", Decimal(f"{i}.50"), "a" if i % 2 else "b"] for i in range(1, 41)]
    sink = fs.ParquetSink(tmp_path / "ds", partition_by=["note"])
    sink.open(["id", "name", "price", "note"], Item)
    sink.write(rows)
    sink.commit()
    for path in sorted((tmp_path / "ds").rglob("*.parquet")):
        put(s3, s3_bucket, f"ds/{path.relative_to(tmp_path / 'ds').as_posix()}", path.read_bytes())

    local = sorted(tuple(r) for _, r in fs.ParquetSource(tmp_path / "ds").records())
    remote_source = fs.ParquetSource(f"s3://{s3_bucket}/ds/", storage_options=s3.storage_options())
    assert sorted(tuple(r) for _, r in remote_source.records()) == local and len(local) == 40
    assert [f.rsplit("/", 2)[-2] for f in remote_source.files_read] == ["note=a", "note=b"]


# -- sinks --------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_sinks_and_the_dlq_on_s3_hold_the_bytes_of_a_local_run(tmp_path, items_csv, s3, s3_bucket, ext):
    options = s3.storage_options()
    run(fs.CSVSource(items_csv), registry.sink_for(str(tmp_path / f"out.{ext}")), fs.JSONLSink(tmp_path / "dlq.jsonl"))
    run(fs.CSVSource(items_csv), registry.sink_for(f"s3://{s3_bucket}/clean/out.{ext}", storage_options=options),
        fs.JSONLSink(f"s3://{s3_bucket}/clean/dlq.jsonl", storage_options=options))

    assert keys(s3, s3_bucket) == ["clean/dlq.jsonl", f"clean/out.{ext}"]  # no staging object left behind
    assert get(s3, s3_bucket, f"clean/out.{ext}") == (tmp_path / f"out.{ext}").read_bytes()
    (tmp_path / "remote.dlq.jsonl").write_bytes(get(s3, s3_bucket, "clean/dlq.jsonl"))
    assert dlq_without_run_fields(tmp_path / "remote.dlq.jsonl") == dlq_without_run_fields(tmp_path / "dlq.jsonl") != []


def test_the_default_dlq_of_an_s3_sink_is_beside_it(tmp_path, items_csv, s3, s3_bucket):
    sink = fs.JSONLSink(f"s3://{s3_bucket}/out/orders.jsonl", storage_options=s3.storage_options())
    pipeline = fs.Pipeline(fs.CSVSource(items_csv), Item, sink, executor="inline")
    assert pipeline.errors.name == f"s3://{s3_bucket}/out/orders.errors.jsonl"
    report = pipeline.run()
    assert keys(s3, s3_bucket) == ["out/orders.errors.jsonl", "out/orders.jsonl"]
    assert get(s3, s3_bucket, "out/orders.errors.jsonl").count(b"\n") == report.rows_invalid > 0


def test_a_run_stopped_by_max_invalid_leaves_no_sink_object(tmp_path, items_csv, s3, s3_bucket):
    options = s3.storage_options()
    sink = fs.JSONLSink(f"s3://{s3_bucket}/out.jsonl", storage_options=options)
    errors = fs.JSONLSink(f"s3://{s3_bucket}/dlq.jsonl", storage_options=options)
    with pytest.raises(InvalidRecordsError):
        fs.Pipeline(fs.CSVSource(items_csv), Item, sink, errors, executor="inline", chunk_bytes="2KiB", max_invalid=3).run()
    assert keys(s3, s3_bucket) == ["dlq.jsonl"]  # as on local files: the DLQ so far is kept, the sink is not
    assert pending_uploads(s3, s3_bucket) == []


class WaitForUpload(fs.Hook):
    """At record ``id == at`` (run inline, so in this process), wait until the sink's
    multipart upload has parts on the server, and note what the server showed."""

    seen: ClassVar[list[list[str]]] = []

    def __init__(self, endpoint: S3Endpoint, bucket: str, at: int) -> None:
        self.endpoint, self.bucket, self.at = endpoint, bucket, at

    def before_validate(self, record: dict) -> dict:
        if record.get("id") == self.at:
            deadline = time.monotonic() + 60
            while not pending_uploads(self.endpoint, self.bucket) and time.monotonic() < deadline:
                time.sleep(0.05)  # the driver thread writes the chunks before this one meanwhile
            WaitForUpload.seen.append(pending_uploads(self.endpoint, self.bucket) + keys(self.endpoint, self.bucket))
        return record


def test_a_run_failing_mid_source_leaves_nothing_under_the_final_names(s3, s3_bucket, monkeypatch):
    monkeypatch.setattr(storage, "PART_BYTES", 16 << 10)  # parts go up mid-run (S3's 5 MiB minimum is checked on complete only)
    good = ",".join(json.dumps({"id": i, "name": f"item {i}", "price": "1.5"}) for i in range(1, 2001))
    url = put(s3, s3_bucket, "in/broken.json", f"[{good}, {{\"id\": 1,".encode())  # cut off mid-element
    options = s3.storage_options()
    sink = fs.JSONLSink(f"s3://{s3_bucket}/out.jsonl", storage_options=options)
    errors = fs.JSONLSink(f"s3://{s3_bucket}/dlq.jsonl", storage_options=options)
    WaitForUpload.seen.clear()
    with pytest.raises(SourceError, match="not valid JSON"):
        fs.Pipeline(fs.JSONSource(url, storage_options=options), Item, sink, errors, executor="inline", chunk_bytes="8KiB",
                    hooks=[WaitForUpload(s3, s3_bucket, at=1500)]).run()
    assert WaitForUpload.seen == [["out.jsonl", "in/broken.json"]]  # mid-run: the sink's upload is under way, invisible
    assert keys(s3, s3_bucket) == ["in/broken.json"]  # after: no output, no DLQ ...
    assert pending_uploads(s3, s3_bucket) == []  # ... and no parts left behind


def test_a_multipart_upload_is_invisible_until_commit_and_gone_after_abort(s3, s3_bucket):
    url = put(s3, s3_bucket, "big.bin", b"the old object")
    data = os.urandom(storage.PART_BYTES + (3 << 20))  # two parts: one full, one short last part
    for commit in (False, True):
        out = storage.open_output(url, s3.storage_options())
        for i in range(0, len(data), 1 << 20):
            out.write(data[i:i + (1 << 20)])
        assert pending_uploads(s3, s3_bucket) == ["big.bin"]  # a part is up ...
        assert get(s3, s3_bucket, "big.bin") == b"the old object"  # ... and the old object still shows
        out.commit() if commit else out.abort()
        assert pending_uploads(s3, s3_bucket) == []
        assert get(s3, s3_bucket, "big.bin") == (data if commit else b"the old object")
    assert storage.size(url, s3.storage_options()) == len(data)


def test_parts_of_one_upload_can_come_from_elsewhere_in_any_order(s3, s3_bucket):
    url, options = f"s3://{s3_bucket}/parts.bin", s3.storage_options()
    upload = storage.MultipartUpload.begin(url, options)
    first, last = os.urandom(5 << 20), b"the short last part"
    elsewhere = pickle.loads(pickle.dumps(upload))  # what another process (a Ray actor) would receive
    parts = [elsewhere.upload_part(2, last), upload.upload_part(1, first)]
    assert keys(s3, s3_bucket) == [] and pending_uploads(s3, s3_bucket) == ["parts.bin"]
    upload.complete(parts)
    assert get(s3, s3_bucket, "parts.bin") == first + last and pending_uploads(s3, s3_bucket) == []
    doomed = storage.MultipartUpload.begin(f"s3://{s3_bucket}/doomed.bin", options)
    doomed.upload_part(1, b"x")
    doomed.abort()
    assert keys(s3, s3_bucket) == ["parts.bin"] and pending_uploads(s3, s3_bucket) == []


def test_staged_parts_commit_as_one_upload_of_grouped_parts(s3, s3_bucket):
    """Distributed mode's S3 commit, each step in this process (the Ray tests run it on
    actors): parts staged under a prefix, grouped to S3's 5 MiB minimum, a large part copied
    server-side, small ones joined, the header first; the server refuses a small non-last part."""
    from flowschema_core import range_io

    url, options = f"s3://{s3_bucket}/out/o.csv", s3.storage_options()
    staging = range_io.make_staging(url, options)
    assert staging.location.startswith(f"s3://{s3_bucket}/out/.o.csv.") and staging.location.endswith(".staging")
    assert options["secret"] not in repr(staging) and range_io.staging_visible(pickle.loads(pickle.dumps(staging)))
    data = {"p0": os.urandom(6 << 20), "p1": b"small\n", "p2": os.urandom(3 << 20), "p3": os.urandom(3 << 20), "p4": b"tail\n"}
    for name, body in data.items():
        range_io.write_part(staging, name, body)
    sizes = range_io.part_sizes(staging)
    assert sizes == {**{name: len(body) for name, body in data.items()}, range_io.MARKER: 0}
    groups = range_io.upload_groups([(name, sizes[name]) for name in data])
    assert [[name for name, _ in group] for group in groups] == [["p0"], ["p1", "p2", "p3"], ["p4"]]
    before = None  # what the final key holds: nothing, then the first round's object until the second completes
    for head, copies in ((b"", [True, False, False]), (b"id,name\n", [False, False, False])):
        assert [range_io.copied(group, head if k == 0 else b"") for k, group in enumerate(groups)] == copies
        upload = storage.MultipartUpload.begin(url, options)
        assert options["secret"] not in repr(upload)  # it travels to the actors as a task argument
        parts = [range_io.upload_group(upload, k + 1, staging, group, head if k == 0 else b"") for k, group in enumerate(groups)]
        assert pending_uploads(s3, s3_bucket) == ["out/o.csv"]
        assert (get(s3, s3_bucket, "out/o.csv") if "out/o.csv" in keys(s3, s3_bucket) else None) == before
        upload.complete(parts)
        before = get(s3, s3_bucket, "out/o.csv")
        assert before == head + b"".join(data.values())
    range_io.remove_staging(staging)
    assert keys(s3, s3_bucket) == ["out/o.csv"] and pending_uploads(s3, s3_bucket) == []
    range_io.put_object(range_io.Place(f"s3://{s3_bucket}/out/empty.jsonl", options), b"")  # an output with no part
    assert get(s3, s3_bucket, "out/empty.jsonl") == b""


def test_upload_groups_keep_order_and_grow_past_the_part_limit():
    from flowschema_core.range_io import UPLOAD_PART_MIN, UPLOAD_PARTS_MAX, upload_groups

    assert upload_groups([]) == []
    assert upload_groups([("a", 1), ("b", 2)]) == [[("a", 1), ("b", 2)]]  # one small last part is allowed
    many = [(f"{i:05d}", 1 << 20) for i in range(60_000)]  # 60,000 MiB: 5 MiB parts would be 12,000
    groups = upload_groups(many)
    assert [name for group in groups for name, _ in group] == [name for name, _ in many]
    assert len(groups) <= UPLOAD_PARTS_MAX and all(sum(s for _, s in g) >= UPLOAD_PART_MIN for g in groups[:-1])


def test_an_output_on_another_fsspec_store_is_moved_into_place_on_commit():
    import fsspec

    memory = fsspec.filesystem("memory")
    for commit in (False, True):
        sink = fs.JSONLSink("memory://flowschema-test/out.jsonl")
        sink.open(["id"])
        sink.write(b'{"id": 1}\n')
        assert memory.find("/flowschema-test") != [] and not memory.exists("/flowschema-test/out.jsonl")  # only the staging object
        sink.commit() if commit else sink.abort()
        assert memory.find("/flowschema-test") == (["/flowschema-test/out.jsonl"] if commit else [])
    assert memory.cat("/flowschema-test/out.jsonl") == b'{"id": 1}\n'
    memory.rm("/flowschema-test", recursive=True)


# -- what a user gets wrong -----------------------------------------------------------------


def test_wrong_bucket_key_or_credentials_are_clear_errors(s3, s3_bucket, items_csv):
    put(s3, s3_bucket, "items.csv", items_csv.read_bytes())
    options = s3.storage_options()
    cases = [
        (f"s3://no-such-bucket-{s3_bucket}/items.csv", options, "not found"),
        (f"s3://{s3_bucket}/missing.csv", options, "not found"),
        (f"s3://{s3_bucket}/items.csv", s3.storage_options(secret="wrong"), "access denied"),
    ]
    for url, opts, words in cases:
        with pytest.raises(SourceError) as caught:
            list(fs.CSVSource(url, storage_options=opts).chunks(1 << 20))
        message = str(caught.value)
        assert url in message and words in message, message
        assert "Traceback" not in message and "wrong" not in message
    sink = fs.JSONLSink(f"s3://no-such-bucket-{s3_bucket}/out.jsonl", storage_options=options)
    sink.open(["id"])
    sink.write(b'{"id": 1}\n')
    with pytest.raises(SinkError, match=f"cannot write s3://no-such-bucket-{s3_bucket}/out.jsonl: not found"):
        sink.commit()


def test_a_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # what an environment without s3fs looks like to an import
    with pytest.raises(MissingDependencyError, match=r"pip install \"flowschema\[s3\]\""):
        list(fs.CSVSource("s3://bucket/orders.csv").chunks(1 << 20))
    with pytest.raises(MissingDependencyError, match=r"flowschema\[s3\]"):
        fs.JSONLSink("s3://bucket/out.jsonl").open(["id"])


def test_what_remote_outputs_cannot_do_is_refused_up_front(tmp_path, items_csv, s3, s3_bucket):
    options = s3.storage_options()
    with pytest.raises(ConfigError, match="checkpoint= needs a local sink"):
        fs.Pipeline(fs.CSVSource(items_csv), Item, fs.JSONLSink(f"s3://{s3_bucket}/out.jsonl", storage_options=options),
                    fs.JSONLSink(tmp_path / "dlq.jsonl"), executor="inline", checkpoint=tmp_path / "ckpt").run()
    with pytest.raises(ConfigError, match="partition_by writes a local directory"):
        fs.ParquetSink(f"s3://{s3_bucket}/ds", partition_by=["note"], storage_options=options).open(["id", "note"], Item)
    with pytest.raises(ConfigError, match="reads local workbooks only"):
        fs.ExcelSource(f"s3://{s3_bucket}/book.xlsx")
    with pytest.raises(ConfigError, match="cannot write to an http"):
        fs.JSONLSink("https://example.invalid/out.jsonl").open(["id"])
    with pytest.raises(ConfigError, match="storage_options must be a JSON object"):
        fs.CSVSource("s3://bucket/x.csv", storage_options="{not json")
    assert keys(s3, s3_bucket) == []


# -- URLs: which source, file:// and https:// files ------------------------------------------


def test_the_kind_of_a_url_comes_from_its_extension_and_http_apis_stay_apis():
    expected = {
        "s3://bucket/orders.csv": "CSVSource", "s3://bucket/orders.csv.gz": "CSVSource", "gs://b/a/orders.jsonl": "JSONLSource",
        "az://container/orders.parquet": "ParquetSource", "file:///data/orders.tsv": "CSVSource",
        "https://host/exports/orders.csv": "CSVSource", "https://host/orders.ndjson.zst?sig=abc": "JSONLSource",
        "https://host/api/orders": "HTTPSource", "https://host/api/orders.json": "HTTPSource", "http://host/v1/orders?page=1": "HTTPSource",
    }
    assert {url: registry.source_class(url).__name__ for url in expected} == expected
    assert registry.sink_class("s3://bucket/out/clean.parquet").__name__ == "ParquetSink"
    assert registry.source_for("file:///data/orders.csv").path == "/data/orders.csv"
    assert fs.CSVSource("https://host/orders.csv?token=abc").name == "https://host/orders.csv?token=***"  # shown redacted


def test_file_urls_are_local_files(tmp_path, items_csv):
    run(fs.CSVSource(items_csv), fs.CSVSink(tmp_path / "plain.csv"), fs.JSONLSink(tmp_path / "plain.dlq.jsonl"))
    run(registry.source_for(items_csv.as_uri()), registry.sink_for((tmp_path / "url.csv").as_uri()),
        fs.JSONLSink((tmp_path / "url.dlq.jsonl").as_uri()))
    assert (tmp_path / "url.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert dlq_without_run_fields(tmp_path / "url.dlq.jsonl") == dlq_without_run_fields(tmp_path / "plain.dlq.jsonl")


def test_an_https_style_file_url_is_read_as_a_file_from_a_real_server(tmp_path, items_csv):
    served = tmp_path / "www"
    served.mkdir()
    (served / "items.csv").write_bytes(items_csv.read_bytes())
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/items.csv"
        run(registry.source_for(url), fs.JSONLSink(tmp_path / "http.jsonl"), fs.JSONLSink(tmp_path / "http.dlq.jsonl"))
        run(fs.CSVSource(items_csv), fs.JSONLSink(tmp_path / "local.jsonl"), fs.JSONLSink(tmp_path / "local.dlq.jsonl"))
        assert (tmp_path / "http.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
        with pytest.raises(SourceError, match="not found"):
            list(fs.CSVSource(url.replace("items.csv", "missing.csv")).chunks(1 << 20))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- the command line ----------------------------------------------------------------------------


def flowschema(*args: Any, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowschema_core", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def test_the_cli_reads_and_writes_s3_urls(tmp_path, items_csv, s3, s3_bucket):
    src = put(s3, s3_bucket, "in/items.csv", items_csv.read_bytes())
    run(fs.CSVSource(items_csv), fs.JSONLSink(tmp_path / "out.jsonl"), fs.JSONLSink(tmp_path / "dlq.jsonl"))
    done = flowschema("run", src, "--model", "tests.integration.pipeline_models:Item", "--sink", f"s3://{s3_bucket}/out/items.jsonl",
                      "--errors", f"s3://{s3_bucket}/out/dlq.jsonl", "--executor", "inline", "--chunk-bytes", "2KiB", "--quiet",
                      env=s3.env(), cwd=tmp_path)  # credentials and endpoint from the environment, as boto reads them
    assert done.returncode == 0, done.stderr
    assert get(s3, s3_bucket, "out/items.jsonl") == (tmp_path / "out.jsonl").read_bytes()
    (tmp_path / "remote.dlq.jsonl").write_bytes(get(s3, s3_bucket, "out/dlq.jsonl"))
    assert without_source(dlq_without_run_fields(tmp_path / "remote.dlq.jsonl")) == without_source(dlq_without_run_fields(tmp_path / "dlq.jsonl"))


def test_the_cli_says_in_one_line_when_an_object_is_missing(s3, s3_bucket, capsys):
    options = "storage_options=" + json.dumps(s3.storage_options())  # as JSON text, not from the environment
    status = cli.main(["run", f"s3://{s3_bucket}/in/nope.csv", "--model", "tests.integration.pipeline_models:Item", "--source-option", options,
                       "--sink", f"s3://{s3_bucket}/x.jsonl", "--sink-option", options,
                       "--executor", "inline", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err == (f"flowschema: error: cannot open s3://{s3_bucket}/in/nope.csv: not found ({s3_bucket}/in/nope.csv); "
                   "check the bucket (container) and the key\n")
    assert keys(s3, s3_bucket) == []


def test_a_config_file_gives_storage_options_as_tables(tmp_path, items_csv, s3, s3_bucket, capsys):
    src = put(s3, s3_bucket, "in/items.csv", items_csv.read_bytes())
    run(fs.CSVSource(items_csv), fs.CSVSink(tmp_path / "out.csv"), fs.JSONLSink(tmp_path / "dlq.jsonl"))
    options = (f'storage_options = {{ key = "{s3.key}", secret = "{s3.secret}", '
               f'client_kwargs = {{ endpoint_url = "{s3.endpoint_url}", region_name = "us-east-1" }} }}')
    (tmp_path / "job.toml").write_text(f'model = "tests.integration.pipeline_models:Item"\nexecutor = "inline"\nchunk_bytes = "2KiB"\n'
                                       f'quiet = true\n[source]\npath = "{src}"\n{options}\n'
                                       f'[sink]\npath = "s3://{s3_bucket}/out/items.csv"\n{options}\n')
    assert cli.main(["run", "--config", str(tmp_path / "job.toml")]) == 0, capsys.readouterr().err
    assert get(s3, s3_bucket, "out/items.csv") == (tmp_path / "out.csv").read_bytes()
    assert keys(s3, s3_bucket) == ["in/items.csv", "out/items.csv", "out/items.errors.jsonl"]  # the DLQ beside the sink, same options



def test_a_checkpoint_of_an_s3_object_does_not_resume_on_another_version_of_it(tmp_path, items_csv, s3, s3_bucket):
    # Same key, same size, other rows: the object's ETag says it changed. Without it, a
    # resume mixed the old rows before the checkpoint with the new rows after it.
    data = items_csv.read_bytes()
    url = put(s3, s3_bucket, "in/items.csv", data)

    def checkpointed_run() -> fs.RunReport:
        return fs.Pipeline(fs.CSVSource(url, storage_options=s3.storage_options()), Item, fs.JSONLSink(tmp_path / "out.jsonl"),
                           fs.JSONLSink(tmp_path / "dlq.jsonl"), executor="inline", chunk_bytes="2KiB", checkpoint=tmp_path / "ckpt").run()

    assert checkpointed_run().rows_read == ROWS
    put(s3, s3_bucket, "in/items.csv", data.replace(b"item ", b"itex "))
    with pytest.raises(fs.CheckpointError, match=r"differs in: source\)"):
        checkpointed_run()
    time.sleep(1.1)  # a later LastModified (whole seconds): the version is the content's ETag, not the upload time
    put(s3, s3_bucket, "in/items.csv", data)  # the same bytes again: the same ETag, the checkpoint's own object
    assert checkpointed_run().rows_read == ROWS


def test_a_staging_prefix_that_cannot_be_removed_is_logged_not_hidden(s3, s3_bucket, caplog):
    """Removing the staging is housekeeping after the outcome: its failure must not
    replace the run's error, but it must not pass unseen either (the prefix's parts stay)."""
    from flowschema_core import range_io

    options = s3.storage_options()
    staging = range_io.make_staging(f"s3://{s3_bucket}/house/o.jsonl", options)
    range_io.write_part(staging, "p0", b"part\n")
    denied = range_io.Place(staging.location, s3.storage_options(secret="wrong"))  # the server checks signatures
    with caplog.at_level("WARNING", logger="flowschema_core.range_io"):
        range_io.remove_staging(denied)
    assert "could not remove the staging prefix" in caplog.text and "wrong" not in caplog.text
    assert any(key.startswith("house/") for key in keys(s3, s3_bucket))
    caplog.clear()
    with caplog.at_level("WARNING", logger="flowschema_core.range_io"):
        range_io.remove_staging(staging)
        range_io.remove_staging(staging)  # already gone: nothing to say
    assert caplog.text == "" and not any(key.startswith("house/") for key in keys(s3, s3_bucket))


def test_an_abort_that_fails_is_logged_not_raised(s3, s3_bucket, caplog):
    """abort() runs on failure paths: its own error must not replace the one being
    handled, and must not pass unseen (the parts stay, billed, until removed)."""
    import dataclasses

    upload = storage.MultipartUpload.begin(f"s3://{s3_bucket}/aborted.bin", s3.storage_options())
    denied = dataclasses.replace(upload, storage_options=s3.storage_options(secret="wrong"))  # the server checks signatures
    with caplog.at_level("WARNING", logger="flowschema_core.storage"):
        denied.abort()
    assert "cannot abort" in caplog.text and upload.upload_id in caplog.text and "wrong" not in caplog.text
    assert pending_uploads(s3, s3_bucket) == ["aborted.bin"]
    upload.abort()
    assert pending_uploads(s3, s3_bucket) == []


def test_a_prefix_has_a_version_made_of_all_its_objects(s3, s3_bucket):
    """A Parquet dataset under a prefix: its identity changes when an object under it is
    added or rewritten, not otherwise (a checkpoint and distributed mode rely on it)."""
    options = s3.storage_options()
    put(s3, s3_bucket, "ds/a=1/f.parquet", b"one")
    put(s3, s3_bucket, "ds/a=2/f.parquet", b"two")
    url = f"s3://{s3_bucket}/ds"
    first = storage.identity(url, options)
    assert first == storage.identity(url, options) and first["objects"] == 2 and first["size"] == 6
    put(s3, s3_bucket, "ds/a=2/f.parquet", b"TWO")  # same size, new content
    second = storage.identity(url, options)
    assert second != first
    put(s3, s3_bucket, "ds/a=3/f.parquet", b"")
    third = storage.identity(url, options)
    assert third["objects"] == 3
    put(s3, s3_bucket, "ds/.out.jsonl.0123.staging/p0.part", b"staged")  # a run writing beside its input
    put(s3, s3_bucket, "ds/_SUCCESS", b"")
    assert storage.identity(url, options) == third
