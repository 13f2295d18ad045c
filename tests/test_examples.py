"""Every example in examples/ runs as a user would run it, and prints the right figures.

Each example is a real subprocess (``python examples/NAME.py`` from the repository root,
the command its docstring and docs/examples.md give), with a generous timeout. The
figures asserted are those of the data the example makes itself (see the comments in
each example); outputs the example writes are read back where that is cheap. The Ray
job example is run by tests/ray/test_e2e_job_submit.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tests.http_server import FaultyServer

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
OUT = ROOT / "build" / "examples"
TIMEOUT = 240  # seconds; the examples take 3-12 s each on a quiet machine
PG_ENV = "FLOWSCHEMA_EXAMPLE_PG_URL"
# Modules in examples/ that are helpers of the examples, not examples.
HELPERS = {"__init__.py", "generate_orders.py", "orders_model.py", "show.py"}


def run_example(name: str, *args: str, cwd: pathlib.Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run ``python examples/NAME ARGS`` from ``cwd``; return its stdout once it exited 0."""
    script = f"examples/{name}" if cwd == ROOT else str(EXAMPLES / name)
    done = subprocess.run([sys.executable, script, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"{name} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def jsonl(path: pathlib.Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def test_every_example_is_run_by_a_test() -> None:
    """A new example without a test fails here (the test may live in any tests/ file)."""
    test_text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))
    untested = [p.name for p in sorted(EXAMPLES.glob("*.py")) if p.name not in HELPERS and p.name not in test_text]
    assert untested == []


def test_quickstart() -> None:
    # The README's quickstart writes orders.csv and clean/ where it runs: run it in a
    # scratch directory rather than leave those in the repository root.
    scratch = OUT / "quickstart"
    shutil.rmtree(scratch, ignore_errors=True)  # no output of an earlier run can pass for this one's
    scratch.mkdir(parents=True)
    out = run_example("quickstart.py", cwd=scratch)
    assert "read 4 = valid 1 + invalid 3 (parse 1, validate 2) + filtered 0" in out  # rows 2, 3, 4 of its CSV are bad
    assert [d["record"] for d in jsonl(scratch / "clean" / "orders.errors.jsonl")] == [2, 3, 4]
    assert [r["order_id"] for r in jsonl(scratch / "clean" / "orders.jsonl")] == [1]


def test_demo() -> None:
    out = run_example("demo.py")
    # 200,000 generated rows, 2% bad on purpose (generate_orders: round(rows * 0.02)).
    assert "OK: read 200,000 = valid 196,000 + invalid 4,000 + filtered 0" in out
    assert "4,000 / 4,000" in out  # bad on purpose / in the DLQ
    assert len(jsonl(ROOT / "build" / "demo" / "orders.errors.jsonl")) == 4000


def test_excel_error_cells() -> None:
    out = run_example("excel_error_cells.py")
    # Data rows 5-13 of the sheet, row 9 empty (not a record): 8 read. Rows 6 (under the
    # merged region), 7 (#DIV/0! in E7) and 10 (date as text) invalid; 13 (totals) filtered.
    assert "read 8 rows: 4 valid, 3 invalid, 1 filtered" in out
    assert 'invalid by stage: {"parse": 1, "validate": 2}' in out
    assert "sheet row 6: stage=validate field=region type=missing" in out
    assert "sheet row 7: stage=parse field=- type=parse_error: cell E7 holds #DIV/0!" in out
    assert "sheet row 10: stage=validate field=sold_on" in out
    clean = jsonl(OUT / "excel_error_cells" / "sales.clean.jsonl")
    assert [(r["rep"], r["sold_on"]) for r in clean] == [("Ada", "2024-03-01"), ("Dee", "2024-03-05"), ("Fay", "2024-03-07"), ("Gus", "2024-03-08")]
    dlq = jsonl(OUT / "excel_error_cells" / "sales.errors.jsonl")
    assert [d["line"] for d in dlq] == [6, 7, 10]


def test_custom_hook() -> None:
    out = run_example("custom_hook.py")
    # 10 payments: 3 (both separators: the hook raises), 5 ("abc") and 9 (currency XXX)
    # invalid; 4 and 8 are test payments, dropped after validation.
    assert "read 10 payments: 5 valid, 3 invalid, 2 filtered" in out
    assert 'invalid by stage: {"transform": 1, "validate": 2}' in out
    assert "record 3: stage=transform field=- type=hook_error: before_validate hook NormaliseNumbers: ValueError: amount '1,299.00'" in out
    clean = jsonl(OUT / "custom_hook" / "payments.clean.jsonl")
    # The normaliser's work, as written: trimmed names, decimal commas read, currencies upper-cased.
    assert [(r["id"], r["customer"], r["amount"], r["currency"]) for r in clean] == [
        (1, "Ada Lovelace", "12.5", "EUR"), (2, "Bob", "7.00", "USD"), (6, "Eve", "-4.5", "EUR"),
        (7, "Fay", "99.99", "GBP"), (10, "Hal", "20", "USD"),
    ]
    assert [(d["record"], d["stage"]) for d in jsonl(OUT / "custom_hook" / "payments.errors.jsonl")] == [(3, "transform"), (5, "validate"), (9, "validate")]


def test_http_to_parquet_with_its_own_api() -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = run_example("http_to_parquet.py")
    # 27 orders, 10 a page: pages 1-3 and the empty page 4 that ends the pagination;
    # page 2 answers 503 once. Orders 5, 12, 20 fail validation, 18 is not an object.
    assert "fetched 4 pages (1 retried)" in out
    assert "read 27 records: 23 valid, 4 invalid, 0 filtered" in out
    assert 'invalid by stage: {"parse": 1, "validate": 3}' in out
    assert "record 18: stage=parse field=- type=parse_error: page 2 record 8 is a string, not an object" in out
    table = pq.read_table(OUT / "http_to_parquet" / "orders.parquet")
    assert sorted(table.column("id").to_pylist()) == sorted(set(range(1, 28)) - {5, 12, 18, 20})
    assert str(table.schema.field("amount").type) == "decimal128(10, 2)"
    assert str(table.schema.field("placed_at").type) == "timestamp[us, tz=UTC]"
    assert [(d["record"], d["stage"]) for d in jsonl(OUT / "http_to_parquet" / "orders.errors.jsonl")] == [
        (5, "validate"), (12, "validate"), (18, "parse"), (20, "validate"),
    ]


def test_http_to_parquet_reads_the_url_it_is_given() -> None:
    pytest.importorskip("pyarrow.parquet")
    server = FaultyServer(n_records=25, page_size=10).start()  # {"id", "name"} records: none is an Order
    try:
        out = run_example("http_to_parquet.py", f"{server.url}/page")
    finally:
        server.stop()
    assert f"reading {server.url}/page" in out
    assert "fetched 4 pages (0 retried)" in out
    assert "read 25 records: 0 valid, 25 invalid, 0 filtered" in out
    assert [r for r in server.requests if r.startswith("/page")][:1] == ["/page?page=1&per_page=10"]


def _check_migration(out: str, dlq_messages: tuple[str, str]) -> int:
    """The figures every migration prints; returns the record the resume started from."""
    assert re.search(r"attempt 1: interrupted=True \(SIGINT\); checkpoint at record [\d,]+", out), out
    resumed = int(re.search(r"attempt 2: resumed from record ([\d,]+); interrupted=False", out)[1].replace(",", ""))  # type: ignore[index]
    # 3,000 customers: ids 50 and 1500 fail validation, 2000 (duplicate e-mail) and 2500
    # (negative balance) are refused by the target's constraints.
    assert "read 3,000 records: 2,996 valid, 4 invalid, 0 filtered" in out
    assert 'invalid by stage: {"sink": 2, "validate": 2}' in out
    assert "2,996 rows, 2,996 distinct ids" in out
    assert "attempt 3: the checkpoint says done, nothing re-read: 3,000 read, 2,996 valid" in out
    dlq = jsonl(OUT / "sqlite_to_postgres" / "customers.errors.jsonl")
    assert [(d["raw"]["id"], d["stage"]) for d in dlq] == [(50, "validate"), (1500, "validate"), (2000, "sink"), (2500, "sink")]
    assert dlq_messages[0] in dlq[2]["errors"][0]["msg"] and dlq_messages[1] in dlq[3]["errors"][0]["msg"]
    assert len({d["run_id"] for d in dlq}) == 1  # the resumed run kept the first attempt's run id
    return resumed


def test_sqlite_to_postgres_against_a_real_server(postgres_db_url: str) -> None:
    sa = pytest.importorskip("sqlalchemy")
    out = run_example("sqlite_to_postgres.py", env={**os.environ, PG_ENV: postgres_db_url})
    assert "target: PostgreSQL at postgresql://postgres@127.0.0.1:" in out
    resumed = _check_migration(out, ("duplicate key value violates unique constraint", "violates check constraint"))
    assert 0 < resumed < 3000
    engine = sa.create_engine(postgres_db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM flowschema_example_customers").one() == (2996, 2996)
            missing = conn.exec_driver_sql("SELECT id FROM flowschema_example_customers WHERE id IN (50, 1500, 2000, 2500)").all()
            assert missing == []
    finally:
        engine.dispose()


def test_sqlite_to_postgres_falls_back_to_sqlite_without_a_url() -> None:
    out = run_example("sqlite_to_postgres.py", env=env_without(PG_ENV))
    assert f"{PG_ENV} is not set, so this run migrates SQLite -> SQLite" in out
    assert f"For PostgreSQL: {PG_ENV}=postgresql://" in out
    _check_migration(out, ("UNIQUE constraint failed", "CHECK constraint failed"))


def test_messy_csv_loop() -> None:
    out = run_example("messy_csv_loop.py")
    # 40 orders: 4, 11, 23, 30 have a decimal comma, 7, 15, 28 a DD.MM.YYYY date, 37 both
    # (the model's fault); 19 is ragged, 26 has currency BTC, 34 a negative amount (the data's).
    assert "1. first run, strict model: read 40 = valid 29 + invalid 11 (parse 1, validate 10) + filtered 0" in out
    assert "11 records, 12 errors in 5 groups" in out  # record 37 has two errors
    assert "validate decimal_parsing amount: 5 records (first 4, last 37)" in out
    assert "validate date_from_datetime_parsing ordered_on: 4 records (first 7, last 37)" in out
    assert "parse parse_error (record): 1 records (first 19, last 19)" in out
    assert "4. replay the DLQ with FixedOrder: read 11 = valid 8 + invalid 3 (parse 1, validate 2) + filtered 0" in out
    assert "recovered 8: order_id 4, 7, 11, 15, 23, 28, 30, 37" in out
    assert "record 19 (line 20): stage=parse field=- type=parse_error: expected 5 fields, found 3" in out
    assert "record 26 (line 27): stage=validate field=currency type=literal_error" in out
    assert "record 34 (line 35): stage=validate field=amount type=greater_than_equal" in out
    assert "5. in all: 40 records = 37 valid (29 + 8 recovered) + 3 in build/examples/messy_csv_loop/orders.still-bad.jsonl" in out
    out_dir = OUT / "messy_csv_loop"
    assert len(jsonl(out_dir / "orders.clean.jsonl")) == 29
    assert [d["record"] for d in jsonl(out_dir / "orders.errors.jsonl")] == [4, 7, 11, 15, 19, 23, 26, 28, 30, 34, 37]
    recovered = jsonl(out_dir / "orders.recovered.jsonl")
    # The fix read the formats right, not just past the validator.
    assert {r["order_id"]: (r["ordered_on"], r["amount"]) for r in recovered if r["order_id"] in (4, 7, 37)} == {
        4: ("2024-03-05", "5.00"), 7: ("2024-03-08", "8.75"), 37: ("2024-03-10", "46.25"),
    }
    assert [(d["source"].endswith("orders.csv"), d["record"], d["stage"]) for d in jsonl(out_dir / "orders.still-bad.jsonl")] == [
        (True, 19, "parse"), (True, 26, "validate"), (True, 34, "validate"),
    ]


def test_infer_a_file(tmp_path: pathlib.Path) -> None:
    from examples.generate_orders import generate_orders_csv
    from examples.infer_a_file import ROWS, SEED

    out = run_example("infer_a_file.py")
    # The same file, generated again: how many rows of each bad kind it holds.
    bad = generate_orders_csv(tmp_path / "orders.csv", ROWS, seed=SEED)
    assert f"{ROWS:,} orders, {sum(bad.values())} bad on purpose" in out
    # A type-only model refuses malformed dates and prices (validate) and ragged rows
    # (parse); bad e-mails, negative quantities and unknown currencies are still str / int.
    parse, validate = bad["ragged_short"] + bad["ragged_long"], bad["bad_date"] + bad["bad_price"]
    assert parse > 0 and validate > 0
    valid = ROWS - parse - validate
    assert (f"read {ROWS:,} = valid {valid:,} + invalid {parse + validate:,} (parse {parse}, validate {validate}) + filtered 0") in out
    module = (OUT / "infer_a_file" / "orders_model.py").read_text(encoding="utf-8")
    assert module in out  # the model is printed as written
    for line in ("    order_date: dt.date  #", "    unit_price: Decimal  #", "    ship_date: dt.date | None = None  #", "    quantity: int  #"):
        assert line in module
    assert len(jsonl(OUT / "infer_a_file" / "orders.clean.jsonl")) == valid
