"""End to end: a real 2-node cluster on loopback, `ray job submit` of examples/ray_job.py.

A head node and a worker node (one CPU each, so the job's two actors run one on each
node), started by :class:`flowschema_ray.local_cluster.LocalCluster`: each under ``ray
start --block`` in its own process group with its own ``--temp-dir``; teardown ends those
process trees and any process whose command line names one of the temp dirs, so it never
stops another Ray on the machine (the session's local Ray, or another user's) the way
``ray stop --force`` would. The input, the outputs
and the staging parts live on the session's S3 server (moto on loopback, its endpoint and
credentials given to the job as ``--storage-options``), so the job runs in distributed
mode: actors read ranges and write parts, the driver moves no record and completes the
multipart uploads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")

import flowschema_core as fs
from flowschema_ray.local_cluster import LocalCluster, ray_cli
from tests.s3_server import get, keys, pending_uploads, put

psutil = pytest.importorskip("psutil", reason="LocalCluster stops its nodes with psutil")

ROOT = Path(__file__).resolve().parents[2]
ROWS = 20_000


@pytest.fixture(scope="module")
def head_node():
    """A 2-node cluster (one CPU each): the dashboard URL, the environment for the ``ray``
    CLI, the nodes' temp dirs (the head's first), and a function that stops the worker node."""
    try:
        cluster = LocalCluster(nodes=2, cpus_per_node=1)
    except fs.MissingDependencyError as exc:
        pytest.skip(str(exc))
    with cluster:
        yield cluster.dashboard_url, cluster.env, cluster.temp_dirs, lambda: cluster.stop_node(1)


def _working_dir(dest):
    """A small upload: only the packages and the example the job needs."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("flowschema_core", "flowschema_ray", "examples"):
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    return dest


def test_ray_job_submit_runs_the_example_on_a_real_cluster(head_node, tmp_path, s3, s3_bucket):  # the first test: the next one stops a node
    url, env, _, _ = head_node
    source = tmp_path / "orders.csv"
    sys.path.insert(0, str(ROOT))
    try:
        from examples.generate_orders import generate_orders_csv
    finally:
        sys.path.remove(str(ROOT))
    bad = generate_orders_csv(source, ROWS, seed=7)
    s3_source = put(s3, s3_bucket, "in/orders.csv", source.read_bytes())
    sink, errors = f"s3://{s3_bucket}/out/orders.jsonl", f"s3://{s3_bucket}/out/orders.errors.jsonl"
    job_id = f"flowschema-e2e-{uuid.uuid4().hex[:8]}"
    ray = ray_cli()
    submit_env = {**env, "RAY_AUTH_MODE": "token"}
    runtime_env = json.dumps({"env_vars": {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}})
    done = subprocess.run(
        [ray, "job", "submit", "--address", url, "--submission-id", job_id,
         "--working-dir", str(_working_dir(tmp_path / "wd")), "--runtime-env-json", runtime_env, "--",
         "python", "examples/ray_job.py", "--source", s3_source, "--sink", sink, "--errors", errors,
         "--chunk-bytes", "256KiB", "--storage-options", json.dumps(s3.storage_options())],
        env=submit_env, capture_output=True, text=True, timeout=240,
    )
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs[-4000:]
    status = subprocess.run([ray, "job", "status", "--address", url, job_id], env=submit_env, capture_output=True, text=True, timeout=60)
    assert "succeeded" in (status.stdout + status.stderr).lower(), status.stdout + status.stderr  # SUCCEEDED

    report = json.loads(logs[logs.index("{\n"):logs.rindex("\n}") + 2])
    assert report["executor"] == "RayExecutor" and report["workers"] == 2
    # Distributed mode: one actor on each node read and wrote the data; none crossed the driver.
    assert report["bytes_through_driver"] == 0
    assert any(note.startswith("distributed mode:") for note in report["notes"])
    assert any(note.startswith(f"{sink}: ") and "multipart upload" in note for note in report["notes"])
    assert report["rows_read"] == ROWS == report["rows_valid"] + report["rows_invalid"] + report["rows_filtered"]
    assert report["rows_invalid"] == sum(bad.values())
    assert report["invalid_by_stage"]["parse"] == bad["ragged_short"] + bad["ragged_long"]

    # Same bytes as a local inline run of the same file; nothing else left in the bucket.
    from examples.orders_model import Order

    inline_sink, inline_errors = tmp_path / "inline.jsonl", tmp_path / "inline.errors.jsonl"
    fs.Pipeline(fs.CSVSource(source), Order, fs.JSONLSink(inline_sink), fs.JSONLSink(inline_errors), executor="inline").run()
    assert get(s3, s3_bucket, "out/orders.jsonl") == inline_sink.read_bytes()
    assert _dlq(get(s3, s3_bucket, "out/orders.errors.jsonl")) == _dlq(inline_errors.read_bytes()) != []
    assert keys(s3, s3_bucket) == ["in/orders.csv", "out/orders.errors.jsonl", "out/orders.jsonl"]
    assert pending_uploads(s3, s3_bucket) == []


def _dlq(data: bytes) -> list[dict]:
    """DLQ records without the fields that differ between runs and places (run_id, ts, source)."""
    return [{k: v for k, v in json.loads(line).items() if k not in ("run_id", "ts", "source")} for line in data.splitlines()]


_NODE_LOSS_JOB = """
import os, sys, time
sys.path.insert(0, os.getcwd())
import flowschema_core as fs
from examples.orders_model import Order
from flowschema_core import storage
from flowschema_ray import RayExecutor

class Slow(fs.Hook):
    def before_validate(self, record):
        time.sleep(0.001)
        return record

source, sink, errors = sys.argv[1:4]
options = storage.options(sys.argv[4])
report = fs.Pipeline(fs.CSVSource(source, storage_options=options), Order, fs.JSONLSink(sink, storage_options=options),
                     fs.JSONLSink(errors, storage_options=options), hooks=[Slow()],
                     executor=RayExecutor(address="auto", num_actors=2, distributed=True), chunk_bytes="32KiB").run()
print(report.to_json())
"""


def _cluster_actor_pids(temp_dirs: list[str]) -> list[int]:
    """The RangeActor processes of this cluster's nodes (a raylet names its temp dir in its
    command line), not of another Ray on the machine."""
    pids = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        if "RangeActor" not in " ".join(proc.info["cmdline"] or []):
            continue
        try:
            parent = " ".join(psutil.Process(proc.info["ppid"]).cmdline())
        except psutil.Error:
            continue
        if any(temp_dir in parent for temp_dir in temp_dirs):
            pids.append(proc.pid)
    return pids


def _kill_an_actor(head_node) -> None:
    pids = _cluster_actor_pids(head_node[2])
    assert pids, "no RangeActor process of the cluster found"
    os.kill(pids[0], signal.SIGKILL)


# The actor test first: the node-loss test leaves the cluster with one node.
@pytest.mark.parametrize("fault", ["actor_sigkilled", "worker_node_stopped"])
def test_a_fault_mid_run_under_ray_job_submit_gives_the_exact_output(head_node, tmp_path, s3, s3_bucket, fault):
    """Once parts are being written to S3: SIGKILL one RangeActor process, or stop the
    second node (its whole process tree). The dead actor's ranges are redone (by a
    replacement, or by the actor on the head node); the output is exact, nothing is left."""
    url, env, _, stop_worker_node = head_node
    source = tmp_path / "orders.csv"
    sys.path.insert(0, str(ROOT))
    try:
        from examples.generate_orders import generate_orders_csv
        from examples.orders_model import Order
    finally:
        sys.path.remove(str(ROOT))
    rows = ROWS // 4  # ~1 ms a record: a few seconds of work per actor
    generate_orders_csv(source, rows, seed=3)
    s3_source = put(s3, s3_bucket, "in/orders.csv", source.read_bytes())
    sink, errors = f"s3://{s3_bucket}/out.jsonl", f"s3://{s3_bucket}/errors.jsonl"
    wd = _working_dir(tmp_path / "wd")
    (wd / "node_loss_job.py").write_text(_NODE_LOSS_JOB, encoding="utf-8")
    job_id = f"flowschema-node-loss-{uuid.uuid4().hex[:8]}"
    ray = ray_cli()
    submit_env = {**env, "RAY_AUTH_MODE": "token"}
    runtime_env = json.dumps({"env_vars": {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}})
    done = subprocess.run(
        [ray, "job", "submit", "--no-wait", "--address", url, "--submission-id", job_id, "--working-dir", str(wd),
         "--runtime-env-json", runtime_env, "--", "python", "node_loss_job.py", s3_source, sink, errors,
         json.dumps(s3.storage_options())],
        env=submit_env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    deadline, checked = time.monotonic() + 180, time.monotonic()
    while sum(key.startswith(".out.jsonl.") and key.endswith(".part") for key in keys(s3, s3_bucket)) < 2:  # ranges being written
        assert time.monotonic() < deadline, "the job wrote no parts within 180 s"
        if time.monotonic() - checked > 5:  # a job that died early: say why now, not after the deadline
            checked = time.monotonic()
            status = subprocess.run([ray, "job", "status", "--address", url, job_id], env=submit_env, capture_output=True, text=True, timeout=60)
            if "failed" in (status.stdout + status.stderr).lower():
                logs = subprocess.run([ray, "job", "logs", "--address", url, job_id], env=submit_env, capture_output=True, text=True, timeout=60)
                pytest.fail(f"the job failed before writing parts:\n{logs.stdout[-4000:]}")
        time.sleep(0.2)
    if fault == "actor_sigkilled":
        _kill_an_actor(head_node)
    else:
        stop_worker_node()
    deadline = time.monotonic() + 240
    while True:
        status = subprocess.run([ray, "job", "status", "--address", url, job_id], env=submit_env, capture_output=True, text=True, timeout=60)
        text = (status.stdout + status.stderr).lower()
        if "succeeded" in text or "failed" in text or "stopped" in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(1)
    logs = subprocess.run([ray, "job", "logs", "--address", url, job_id], env=submit_env, capture_output=True, text=True, timeout=60)
    assert "succeeded" in text, logs.stdout[-4000:] + logs.stderr[-2000:]
    report = json.loads(logs.stdout[logs.stdout.index("{\n"):logs.stdout.rindex("\n}") + 2])
    assert report["worker_restarts"] >= 1 and report["bytes_through_driver"] == 0
    assert report["rows_read"] == rows == report["rows_valid"] + report["rows_invalid"]
    inline_sink, inline_errors = tmp_path / "inline.jsonl", tmp_path / "inline.errors.jsonl"
    fs.Pipeline(fs.CSVSource(source), Order, fs.JSONLSink(inline_sink), fs.JSONLSink(inline_errors), executor="inline").run()
    assert get(s3, s3_bucket, "out.jsonl") == inline_sink.read_bytes()
    assert _dlq(get(s3, s3_bucket, "errors.jsonl")) == _dlq(inline_errors.read_bytes())
    assert len(_dlq(inline_errors.read_bytes())) == report["rows_invalid"]
    assert keys(s3, s3_bucket) == ["errors.jsonl", "in/orders.csv", "out.jsonl"] and pending_uploads(s3, s3_bucket) == []
