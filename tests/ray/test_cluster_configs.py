"""cluster_configs/ parse, have the keys their tools require, and point at real files."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="pyyaml comes with ray: pip install 'flowschema[ray]'")

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "cluster_configs"


def _load(name):
    with open(CONFIGS / name, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _check_runtime_env(env):
    assert env["working_dir"]
    assert isinstance(env["pip"], list) and any(p.startswith("pydantic") for p in env["pip"])
    assert all(isinstance(v, str) for v in env["env_vars"].values())


def test_runtime_env_for_job_submit():
    env = _load("runtime_env.yaml")
    _check_runtime_env(env)
    assert env["working_dir"] == "."
    assert {".venv/", ".git/", "build/"} <= set(env["excludes"])


def test_aws_cluster_yaml_for_ray_up():
    cluster = _load("aws-cluster.yaml")
    for key in ("cluster_name", "max_workers", "provider", "auth", "available_node_types", "head_node_type",
                "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in cluster, key
    assert cluster["provider"]["type"] == "aws" and cluster["provider"]["region"]
    types = cluster["available_node_types"]
    assert cluster["head_node_type"] in types
    for node_type in types.values():
        assert node_type["node_config"]["InstanceType"] and "resources" in node_type
    workers = [t for name, t in types.items() if name != cluster["head_node_type"]]
    assert workers and sum(t["max_workers"] for t in workers) <= cluster["max_workers"] * len(workers)
    assert any("--head" in c for c in cluster["head_start_ray_commands"])


def test_kuberay_rayjob_manifest():
    job = _load("kuberay-rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["metadata"]["name"]
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "python" and (ROOT / argv[1]).is_file() and argv[1] == "examples/ray_job.py"
    for flag in ("--source", "--sink", "--errors"):
        assert flag in argv
    _check_runtime_env(yaml.safe_load(spec["runtimeEnvYAML"]))
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"].startswith("rayproject/ray:")
    assert cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] == head["image"]
    assert cluster["workerGroupSpecs"][0]["replicas"] >= 1


def test_example_script_documents_the_submit_command():
    script = ROOT / "examples" / "ray_job.py"
    assert "ray job submit" in script.read_text(encoding="utf-8")
