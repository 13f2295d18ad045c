"""A throwaway PostgreSQL server for the test session, on loopback, in a temp directory.

::

    initdb (as the ``postgres`` user when we run as root: initdb refuses root)
      └─ pg_ctl start: listen 127.0.0.1:<free port> only, unix socket in the temp dir,
         trust authentication (nothing but this machine can reach it), fsync off (speed)
    ... tests ...
    pg_ctl stop -m immediate, temp directory removed (also when the session fails)

Used by the ``postgres_url`` fixture in ``tests/conftest.py``. Without server binaries
the fixture skips, unless ``FLOWSCHEMA_CI=1`` where a missing server is a failure
(``.ci/install-system-deps.sh`` installs it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

BIN_GLOB = "/usr/lib/postgresql/*/bin"


def find_bin_dir() -> str | None:
    """The newest PostgreSQL server binaries directory, or None."""
    found = [d for d in glob.glob(BIN_GLOB) if os.path.exists(os.path.join(d, "initdb"))]
    if not found:
        path = shutil.which("initdb")
        return os.path.dirname(path) if path else None
    return max(found, key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """Start with :meth:`start` (returns the URL), stop with :meth:`stop`."""

    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = bin_dir
        self.tmp = tempfile.mkdtemp(prefix="flowschema-pg-")
        self.data = os.path.join(self.tmp, "data")
        self.log = os.path.join(self.tmp, "server.log")
        self.port = free_port()
        self.started = False
        self._user: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root and there is no 'postgres' user to run initdb as") from exc
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [*self._user, os.path.join(self.bin_dir, args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.tmp)
        if done.returncode != 0:
            log = ""
            if os.path.exists(self.log):
                with open(self.log, errors="replace") as f:
                    log = f.read()[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")

    def start(self) -> str:
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.tmp} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB -c max_connections=50")
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        self.started = True
        return self.url

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            if self.started:
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", timeout=60)
                self.started = False
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
