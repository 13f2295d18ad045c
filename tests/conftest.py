"""Session-wide fixtures shared by every test directory."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

from tests.mariadb_server import MariaDBServer, find_server
from tests.pg_server import PostgresServer, find_bin_dir
from tests.s3_server import MotoServer, S3Endpoint, moto_available


def _unavailable(reason: str, server: str = "PostgreSQL", fix: str = "run .ci/install-system-deps.sh") -> None:
    if os.environ.get("FLOWSCHEMA_CI") == "1":
        pytest.fail(f"{reason} (FLOWSCHEMA_CI=1: CI must test against a real {server}; {fix})")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL server started on loopback for this session (stopped at the end)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable('psycopg is not installed: pip install "flowschema[postgres]"')
    bin_dir = find_bin_dir()
    if bin_dir is None:
        _unavailable("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    server = PostgresServer(bin_dir)  # type: ignore[arg-type]
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """URL of a fresh, empty database on the session's server, dropped after the test."""
    with _fresh_database(postgres_url.replace("postgresql://", "postgresql+psycopg://"), postgres_url, '"{}"', " WITH (FORCE)") as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL (``mysql+pymysql://``, with a password) of a real MariaDB server started on
    loopback for this session (stopped at the end)."""
    try:
        import pymysql  # noqa: F401
    except ImportError:
        _unavailable('PyMySQL is not installed: pip install "flowschema[mysql]"', "MariaDB")
    found = find_server()
    if found is None:
        _unavailable("MariaDB server binaries (mariadbd, mariadb-install-db) not found (apt-get install mariadb-server)", "MariaDB")
    server = MariaDBServer(*found)  # type: ignore[misc]
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def mariadb_db_url(mariadb_url: str) -> Iterator[str]:
    """URL of a fresh, empty database on the session's MariaDB server, dropped after the test."""
    with _fresh_database(mariadb_url, mariadb_url, "`{}`") as url:
        yield url


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """A real S3 API (moto in server mode) on loopback for this session, enforcing credentials."""
    if not moto_available():
        _unavailable('moto is not installed: pip install "moto[server]"', "S3 API (moto)", "pip install -e '.[dev]'")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        _unavailable('s3fs is not installed: pip install "flowschema[s3]"', "S3 API (moto)", "pip install -e '.[dev]'")
    server = MotoServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3: S3Endpoint) -> str:
    """A fresh, empty bucket on the session's S3 server (its name)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


@contextlib.contextmanager
def _fresh_database(admin_url: str, server_url: str, quoted: str, drop_options: str = "") -> Iterator[str]:
    """A new database on a session's server (``quoted``: how its name is quoted there),
    dropped afterwards; yields ``server_url`` pointing at it."""
    import sqlalchemy as sa

    name = quoted.format(f"t_{uuid.uuid4().hex[:12]}")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name.strip('"`')
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{drop_options}")
        admin.dispose()
