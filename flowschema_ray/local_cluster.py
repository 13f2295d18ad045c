"""A throwaway Ray cluster of several nodes on this machine, on loopback: to try
distributed mode and ``ray job submit`` before a real cluster, and for the tests and
benchmarks that need a cluster rather than one ``ray.init``.

::

    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        ray.init(address=cluster.address)          # or: ray job submit --address cluster.dashboard_url
        ...
        cluster.stop_node(1)                       # a worker node lost mid-run

Each node runs under ``ray start --block`` in a process group of its own with its own
``--temp-dir`` and free ports on 127.0.0.1. Stopping a node ends that process tree and any
process whose command line names its temp dir — never another Ray on the machine, which
``ray stop --force`` would take down too. ``env`` is what a subprocess needs to talk to the
cluster (the ``ray`` CLI on PATH, ``RAY_AUTH_MODE=token``: the head node writes an
authentication token the CLI and drivers must send).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType

from flowschema_core.errors import WorkerPoolError


class LocalCluster:
    """``nodes`` Ray nodes (a head and ``nodes - 1`` workers) of ``cpus_per_node`` CPUs each."""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, object_store_bytes: int = 100 << 20, start_timeout: float = 150.0) -> None:
        self.nodes, self.cpus_per_node, self.object_store_bytes = nodes, cpus_per_node, object_store_bytes
        self.start_timeout = start_timeout
        self.ray = ray_cli()
        self.env = {**os.environ, "PATH": f"{os.path.dirname(self.ray)}{os.pathsep}{os.environ.get('PATH', '')}",
                    "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
        self.env.pop("RAY_ADDRESS", None)  # the CLI must not join some other cluster
        self._procs: list[tuple[subprocess.Popen[bytes], str]] = []
        self.address = self.dashboard_url = ""

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        gcs, dashboard, client, *head_ports = _free_ports(9)
        self.address, self.dashboard_url = f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}"
        self._start_node(["--head", "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                          "--include-dashboard", "true", "--ray-client-server-port", str(client)], head_ports)
        self._wait(self._dashboard_up, "the head node's dashboard did not come up")
        for _ in range(self.nodes - 1):
            self._start_node(["--address", self.address], _free_ports(6))
        self._wait(lambda: self._alive_nodes() >= self.nodes, f"the cluster did not reach {self.nodes} nodes")

    @property
    def temp_dirs(self) -> list[str]:
        """Each node's ``--temp-dir`` (its logs are there), the head's first."""
        return [temp_dir for _, temp_dir in self._procs]

    def stop_node(self, index: int) -> None:
        """Stop node ``index`` (0 is the head) and every process it started: a node lost."""
        proc, temp_dir = self._procs[index]
        _stop_tree(proc, temp_dir)

    def stop(self) -> None:
        for proc, temp_dir in reversed(self._procs):
            _stop_tree(proc, temp_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)
        self._procs = []

    # ------------------------------------------------------------------------------
    def _start_node(self, role: list[str], ports: list[int]) -> None:
        metrics, node_manager, object_manager, agent, agent_grpc, runtime_env = ports
        temp_dir = tempfile.mkdtemp(prefix="fsray", dir="/tmp")  # Ray's unix socket paths must stay short
        with open(os.path.join(temp_dir, "ray-start.log"), "wb") as log:
            proc = subprocess.Popen(
                [self.ray, "start", "--block", *role, "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus_per_node),
                 "--object-store-memory", str(self.object_store_bytes), "--metrics-export-port", str(metrics),
                 "--node-manager-port", str(node_manager), "--object-manager-port", str(object_manager),
                 "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
                 "--runtime-env-agent-port", str(runtime_env), "--disable-usage-stats", "--temp-dir", temp_dir],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._procs.append((proc, temp_dir))

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not ready():  # type: ignore[operator]
            for proc, temp_dir in self._procs:
                if proc.poll() is not None:
                    with open(os.path.join(temp_dir, "ray-start.log"), errors="replace") as f:
                        raise WorkerPoolError(f"ray start exited with {proc.returncode}:\n{f.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise WorkerPoolError(f"{what} within {self.start_timeout:.0f} s")
            time.sleep(1)

    def _dashboard_up(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=2)
        except urllib.error.HTTPError:
            return True  # answering (401 without a token): it is up
        except OSError:
            return False
        return True

    def _alive_nodes(self) -> int:
        done = subprocess.run([self.ray, "status", "--address", self.address], env=self.env, capture_output=True, text=True, timeout=60)
        return done.stdout.count("node_")


def ray_cli() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "ray")  # this interpreter's venv first
    found = beside if os.path.exists(beside) else shutil.which("ray")
    if found is None:
        from flowschema_core.errors import MissingDependencyError

        raise MissingDependencyError("a local Ray cluster (the ray CLI)", "ray")
    return found


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop_tree(proc: subprocess.Popen[bytes], temp_dir: str) -> None:
    """End a node: its process group, its process tree, then anything still naming its temp dir."""
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stray = [p for p in psutil.process_iter(["cmdline"]) if temp_dir in " ".join(p.info["cmdline"] or [])]
    for p in tree + stray:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(tree + stray, timeout=10)
