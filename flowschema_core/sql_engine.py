"""Engines for the SQL source and sink: URL normalisation, driver choice, safe display.

``postgresql://`` and ``postgres://`` URLs use psycopg 3 (``postgresql+psycopg://``),
``mysql://`` and ``mariadb://`` URLs use PyMySQL (``mysql+pymysql://``,
``mariadb+pymysql://``); any other SQLAlchemy URL is passed through. SQLite connections get the transaction
recipe from SQLAlchemy's documentation (the sqlite3 module's own transaction handling
breaks SAVEPOINT, which the sink needs to isolate a refused row). SQLAlchemy is imported
inside the functions, so importing FlowSchema never needs it.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError, MissingDependencyError
from .redact import redact_url


def import_sqlalchemy() -> Any:
    """Return the ``sqlalchemy`` module, or raise MissingDependencyError naming the extra."""
    try:
        import sqlalchemy
    except ImportError as exc:
        raise MissingDependencyError("SQL support", "sql", "sqlalchemy") from exc
    return sqlalchemy


def normalise_url(url: str) -> str:
    """``postgresql://`` / ``postgres://`` → ``postgresql+psycopg://``, ``mysql://`` →
    ``mysql+pymysql://``, ``mariadb://`` → ``mariadb+pymysql://``; others unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"not a database URL: {url!r} (expected e.g. sqlite:///file.db or postgresql://user@host/db)")
    if scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if scheme.lower() in ("mysql", "mariadb"):
        return f"{scheme.lower()}+pymysql://{rest}"
    return url


#: Database families (URL schemes before any "+driver") → the extra that brings their driver.
DRIVER_EXTRAS = {"postgresql": "postgres", "postgres": "postgres", "mysql": "mysql", "mariadb": "mysql"}


def is_mysql(dialect_name: str) -> bool:
    """MySQL and MariaDB share their SQL (SQLAlchemy names MariaDB's dialect "mariadb")."""
    return dialect_name in ("mysql", "mariadb")


def create_engine(url: str, **options: Any) -> Any:
    """A SQLAlchemy engine for ``url`` (see the module docstring)."""
    sa = import_sqlalchemy()
    url = normalise_url(url)
    options.setdefault("pool_pre_ping", True)
    try:
        engine = sa.create_engine(url, **options)
    except ImportError as exc:  # the driver (psycopg, ...) is missing
        extra = DRIVER_EXTRAS.get(url.split("://", 1)[0].split("+", 1)[0].lower(), "sql")
        raise MissingDependencyError(f"the database URL {redact_url(url)}", extra, getattr(exc, "name", None)) from exc
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigError(f"bad database URL {redact_url(url)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        _sqlite_transactions(engine)
    return engine


def _sqlite_transactions(engine: Any) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def is_disconnect(exc: BaseException) -> bool:
    """True for errors worth a retry on a fresh connection: a lost or refused connection
    (SQLAlchemy marks those ``connection_invalidated``) and other ``OperationalError``\\ s
    (server restarting, database locked) — but not those no retry can mend, which drivers
    also raise as ``OperationalError``: SQLite's syntax errors and missing tables, a
    refused login, a database that does not exist. Retrying those took 16 s to end in a
    message about a lost connection. (A password being rotated is refused at once too:
    rerun, or resume from a checkpoint.)"""
    sa = import_sqlalchemy()
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError) and not is_check_violation(exc) and not _permanent(exc)


#: SQLSTATEs (PostgreSQL) and MySQL / MariaDB error codes of a refused login or a missing database.
_PERMANENT_SQLSTATES = frozenset({"28000", "28P01", "3D000"})
_MYSQL_PERMANENT = frozenset({1044, 1045, 1049})
#: libpq reports a refused connection without a SQLSTATE, only the server's FATAL message;
#: these say the server answered and will answer the same again ("the database system is
#: starting up" or "too many clients" are worth the retry, and are not here).
_PG_PERMANENT_CONNECT = ("does not exist", "password authentication failed", "no pg_hba.conf entry")


def _permanent(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    if type(orig).__module__ == "sqlite3":  # SQLite's OperationalError is mostly the statement's fault
        text = str(orig).lower()
        return not any(word in text for word in ("locked", "busy", "disk i/o"))
    if getattr(orig, "sqlstate", None) in _PERMANENT_SQLSTATES:
        return True
    if type(orig).__module__.startswith("psycopg") and "FATAL:" in str(orig):
        return any(text in str(orig) for text in _PG_PERMANENT_CONNECT)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in _MYSQL_PERMANENT


#: MySQL / MariaDB error codes of a CHECK constraint a row fails, which PyMySQL raises as
#: OperationalError (it maps only the codes it knows to IntegrityError).
_MYSQL_CHECK_FAILED = frozenset({3819, 4025})


def is_check_violation(exc: BaseException) -> bool:
    """A row failed a CHECK constraint on MySQL / MariaDB (the row's fault, not the connection's)."""
    args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", None), "args", ()))
    return bool(args) and args[0] in _MYSQL_CHECK_FAILED
