"""A throwaway MariaDB server for the test session, on loopback, in a temp directory.

::

    mariadb-install-db --datadir TMP/data (as the ``mysql`` user when we run as root)
      └─ mariadbd: listen 127.0.0.1:<free port> only, unix socket in the temp dir,
         no config file read (--no-defaults), InnoDB without a flush per commit (speed)
         wait until a client can connect; create the ``flowschema`` user (password, TCP)
    ... tests ...
    mariadbd stopped (SIGTERM, then SIGKILL), temp directory removed (also on failure)

Used by the ``mariadb_url`` fixture in ``tests/conftest.py``. Without server binaries
the fixture skips, unless ``FLOWSCHEMA_CI=1`` where a missing server is a failure
(``.ci/install-system-deps.sh`` installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time

from tests.pg_server import free_port

USER, PASSWORD = "flowschema", "s3cret-pw"


def find_server() -> tuple[str, str] | None:
    """``(mariadbd, mariadb-install-db)`` paths, or None when the server is not installed."""
    server = shutil.which("mariadbd") or next((p for p in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld") if os.path.exists(p)), None)
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return (server, install) if server and install else None


class MariaDBServer:
    """Start with :meth:`start` (returns the URL of the ``flowschema`` database), stop with :meth:`stop`."""

    def __init__(self, server: str, install: str) -> None:
        self.server, self.install = server, install
        self.tmp = tempfile.mkdtemp(prefix="flowschema-mariadb-")
        self.data = os.path.join(self.tmp, "data")
        self.socket = os.path.join(self.tmp, "mariadb.sock")
        self.log = os.path.join(self.tmp, "server.log")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: list[str] = []
        if os.geteuid() == 0:  # mariadbd refuses to run as root without --user
            try:
                pw = pwd.getpwnam("mysql")
            except KeyError as exc:
                raise RuntimeError("running as root and there is no 'mysql' user to run mariadbd as") from exc
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            self._user = ["--user=mysql"]

    def _log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def start(self) -> str:
        done = subprocess.run([self.install, "--no-defaults", f"--datadir={self.data}", *self._user, "--skip-test-db",
                               "--auth-root-authentication-method=socket"],
                              capture_output=True, text=True, timeout=120, cwd=self.tmp)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        self.proc = subprocess.Popen(
            [self.server, "--no-defaults", f"--datadir={self.data}", *self._user, "--bind-address=127.0.0.1", f"--port={self.port}",
             f"--socket={self.socket}", f"--pid-file={os.path.join(self.tmp, 'mariadb.pid')}", f"--log-error={self.log}",
             "--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0", "--max-connections=100"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.tmp,
        )
        self._wait_ready()
        self.sql(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO '{USER}'@'127.0.0.1' WITH GRANT OPTION; "
                 "CREATE DATABASE flowschema")
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}:\n{self._log_tail()}")
            if os.path.exists(self.socket) and self._client("SELECT 1").returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"mariadbd did not accept connections within 120 s:\n{self._log_tail()}")

    def _client(self, statements: str) -> subprocess.CompletedProcess[str]:
        client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
        return subprocess.run([client, "--no-defaults", f"--socket={self.socket}", "-u", "root", "-e", statements],
                              capture_output=True, text=True, timeout=60)

    def sql(self, statements: str) -> None:
        """Run statements as root over the unix socket."""
        done = self._client(statements)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb client failed: {done.stderr}")

    @property
    def url(self) -> str:
        return f"mysql+pymysql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/flowschema"

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=30)
        finally:
            self.proc = None
            shutil.rmtree(self.tmp, ignore_errors=True)
