"""MariaDB → PostgreSQL under fire: rows the model refuses, rows the target refuses
(CHECK, UNIQUE), the source connection killed mid-read, the sink connection killed
mid-write several times, the driver SIGKILLed once and resumed. The target table must
equal the expected set (no row lost, none doubled) and the DLQ hold exactly the bad rows.

Every fault is triggered by progress (rows committed, as the run's own checkpoint row in
the target says), never by a timer. ``FLOWSCHEMA_MIGRATION_ROWS`` sets the size (the
issue's 200k takes longer than a default test should; see docs/sql.md for the figure).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import read_jsonl
from tests.integration.test_sql_resume import kill_other_connections

sa = pytest.importorskip("sqlalchemy")

REPO = Path(__file__).resolve().parents[2]
N = int(os.environ.get("FLOWSCHEMA_MIGRATION_ROWS", "60000"))
# Faults, at shares of the rows committed: kill the source's connection, the sink's, the driver.
SOURCE_KILLS = (0.10, 0.30, 0.50, 0.65)
SINK_KILLS = (0.20, 0.45, 0.80, 0.90)
DRIVER_KILL = 0.55


def _legacy_row(i: int) -> tuple[int, str, str, Decimal]:
    """Row ``i`` of the legacy table (the same formula as the SQL that fills it)."""
    email = f"c{i}@example.com"
    if i % 1009 == 0:
        email = f"broken-{i}"  # no "@": the model refuses it
    elif i % 2003 == 0:
        email = f"c{i - 1}@example.com"  # the row before's: the target's UNIQUE refuses it
    balance = Decimal("-1.00") if i % 3001 == 0 else Decimal(i) / 100  # the target's CHECK refuses < 0
    return i, f"name {i}", email, balance.quantize(Decimal("0.01"))


def _expected() -> tuple[set[int], set[int], set[int]]:
    """(ids that land, ids the model refuses, ids the target refuses), in source order."""
    landed: set[int] = set()
    emails: set[str] = set()
    invalid: set[int] = set()
    refused: set[int] = set()
    for i in range(1, N + 1):
        _, _, email, balance = _legacy_row(i)
        if "@" not in email:
            invalid.add(i)
        elif balance < 0 or email in emails:
            refused.add(i)
        else:
            landed.add(i)
            emails.add(email)
    return landed, invalid, refused


def _fill_source(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE legacy_customers (id INT PRIMARY KEY, name VARCHAR(60) NOT NULL, email VARCHAR(100) NOT NULL, "
                             "balance DECIMAL(12, 2) NOT NULL)")
        conn.exec_driver_sql(
            "INSERT INTO legacy_customers SELECT seq, CONCAT('name ', seq), "
            "CASE WHEN seq %% 1009 = 0 THEN CONCAT('broken-', seq) WHEN seq %% 2003 = 0 THEN CONCAT('c', seq - 1, '@example.com') "
            "ELSE CONCAT('c', seq, '@example.com') END, "
            f"CASE WHEN seq %% 3001 = 0 THEN -1.00 ELSE seq / 100 END FROM seq_1_to_{N}")
        got = conn.exec_driver_sql("SELECT id, name, email, balance FROM legacy_customers WHERE id IN (1, 1009, 2003, 3001, 30000)").all()
    engine.dispose()
    assert [tuple(r) for r in got] == [_legacy_row(i) for i in (1, 1009, 2003, 3001, 30000) if i <= N]


def _target(url: str) -> Any:
    from flowschema_core.sql_engine import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # no key on id: a row written twice would show
        conn.exec_driver_sql("CREATE TABLE customers (id BIGINT NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, "
                             "balance NUMERIC(12, 2) NOT NULL CHECK (balance >= 0))")
    return engine


def _committed_rows(target: Any) -> int:
    """Rows read by the run so far, as its checkpoint row in the target says (0 before it exists)."""
    with target.connect() as conn:
        try:
            text = conn.exec_driver_sql("SELECT state FROM flowschema_checkpoint").scalar()
        except sa.exc.ProgrammingError:
            return 0
    return int(json.loads(text)["report"]["rows_read"]) if text else 0


def _start(source_url: str, target_url: str, out: Path, checkpoint: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("FLOWSCHEMA_FAULT", None)
    return subprocess.Popen([sys.executable, "-m", "tests.faults.run_sql_migration", source_url, target_url, str(out), str(checkpoint)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_mariadb_to_postgres_migration_survives_killed_connections_and_a_killed_driver(
        mariadb_db_url: str, postgres_db_url: str, tmp_path: Path) -> None:
    _fill_source(mariadb_db_url)
    target = _target(postgres_db_url)
    source_admin = sa.create_engine(mariadb_db_url, isolation_level="AUTOCOMMIT")
    out, checkpoint = tmp_path / "out", tmp_path / "ckpt"
    out.mkdir()
    tally = {"rows": N, "signals_sent": 0, "source_connections_killed": 0, "sink_connections_killed": 0, "driver_runs": 0}
    faults = sorted([(share, "source") for share in SOURCE_KILLS] + [(share, "sink") for share in SINK_KILLS] + [(DRIVER_KILL, "driver")])
    pending = list(faults)
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        while True:
            proc = _start(mariadb_db_url, postgres_db_url, out, checkpoint)
            tally["driver_runs"] += 1
            deadline = time.monotonic() + 900
            while proc.poll() is None and pending and time.monotonic() < deadline:
                share, what = pending[0]
                if _committed_rows(target) < share * N:
                    time.sleep(0.02)
                    continue
                if what == "driver":
                    proc.send_signal(signal.SIGKILL)
                    tally["signals_sent"] += 1
                else:  # a fault counts once it killed a connection (none may be open between two pages)
                    killed = kill_other_connections(source_admin if what == "source" else target)
                    tally[f"{what}_connections_killed"] += killed
                    if not killed:
                        time.sleep(0.005)
                        continue
                pending.pop(0)
            stdout, stderr = proc.communicate(timeout=900)
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL, stderr.decode()[-3000:]
            assert tally["driver_runs"] < 3, "the resumed run was killed too"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    tally["seconds"] = round(time.monotonic() - started, 1)
    assert not pending, f"faults not triggered (the run finished first): {pending}"
    report = json.loads(stdout.decode().split("REPORT ", 1)[1])

    landed, invalid, refused = _expected()
    with target.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, name, email, balance FROM customers").all()
    ids = [r[0] for r in rows]
    dlq = read_jsonl(out / "errors.jsonl")
    by_stage: dict[str, list[int]] = {}
    for d in dlq:
        assert d["record"] == int(d["raw"]["id"])  # record numbers survive the resume
        by_stage.setdefault(d["stage"], []).append(d["record"])
    tally["records_lost"] = len(landed - set(ids))
    tally["records_duplicated"] = len(ids) - len(set(ids))
    tally["source_reconnects_after_resume"] = report["source_reconnects"]
    tally["sink_retries_after_resume"] = report["sink_retries"]
    print(f"\nMariaDB -> PostgreSQL migration: {tally}")

    assert tally["signals_sent"] == 1 and tally["driver_runs"] == 2
    assert tally["source_connections_killed"] >= len(SOURCE_KILLS) and tally["sink_connections_killed"] >= len(SINK_KILLS)
    assert report["resumed_from_record"] > 0 and report["rows_read"] == N
    assert report["rows_read"] == report["rows_valid"] + report["rows_invalid"] + report["rows_filtered"]
    assert (tally["records_lost"], tally["records_duplicated"]) == (0, 0)
    assert set(ids) == landed and len(ids) == len(landed)
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == {i: _legacy_row(i)[1:] for i in landed}
    assert sorted(by_stage.get("validate", [])) == sorted(invalid)
    assert sorted(by_stage.get("sink", [])) == sorted(refused)
    assert set(by_stage) == {"validate", "sink"} and len(dlq) == len(invalid) + len(refused)
    assert report["invalid_by_stage"] == {"validate": len(invalid), "sink": len(refused)}
    source_admin.dispose()
    target.dispose()
