"""No model yet: infer one from the file, then run the file through it.

::

    python examples/infer_a_file.py          # from the repository root

1. Generates ``build/examples/infer_a_file/orders.csv``: 5,000 orders, 2% bad on purpose
   (``examples/generate_orders.py``, fixed seed).
2. ``fs.infer_model_source`` (what ``flowschema infer orders.csv -o orders_model.py``
   runs) samples it and writes ``orders_model.py``: one typed, commented field per
   column. The bad values do not turn a column into ``str``: they are counted in its
   comment.
3. Imports that module and runs the same file through its model in worker processes.
   The inferred model checks types only, so the records it refuses are those whose
   values have the wrong type (a malformed date, a price that is not a number) and the
   ragged rows; a bad e-mail or a negative quantity is still a valid ``str`` / ``int``
   (constraints are yours to add). The example prints both counts and checks them.

Everything is written under ``build/examples/infer_a_file/``, cleared first.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import flowschema_core as fs  # noqa: E402
from examples.generate_orders import generate_orders_csv  # noqa: E402

OUT_DIR = os.path.join(ROOT, "build", "examples", "infer_a_file")
CSV_PATH = os.path.join(OUT_DIR, "orders.csv")
MODEL_PATH = os.path.join(OUT_DIR, "orders_model.py")
ROWS = 5_000
SEED = 11
#: The kinds of bad rows (generate_orders.BAD_KINDS) a type-only model refuses: a date
#: that is no date, a price that is no number, and rows with the wrong number of cells.
WRONG_TYPE_OR_SHAPE = ("bad_date", "bad_price", "ragged_short", "ragged_long")


def main() -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    os.makedirs(OUT_DIR)
    bad = generate_orders_csv(CSV_PATH, ROWS, seed=SEED)
    print(f"generated {os.path.relpath(CSV_PATH, ROOT)}: {ROWS:,} orders, {sum(bad.values())} bad on purpose: "
          + ", ".join(f"{kind} {n}" for kind, n in bad.items()))

    source = fs.infer_model_source(os.path.relpath(CSV_PATH), class_name="Order")  # relative: as the docstring names it
    with open(MODEL_PATH, "w", encoding="utf-8") as f:
        f.write(source)
    print(f"\ninferred {os.path.relpath(MODEL_PATH, ROOT)}:\n")
    print(source)

    sys.path.insert(0, OUT_DIR)  # the workers get the driver's sys.path: they import it too
    Order = importlib.import_module("orders_model").Order
    report = fs.Pipeline(
        fs.CSVSource(CSV_PATH),
        Order,
        fs.JSONLSink(os.path.join(OUT_DIR, "orders.clean.jsonl")),
        errors=fs.JSONLSink(os.path.join(OUT_DIR, "orders.errors.jsonl")),
        executor=fs.MultiprocessingExecutor(workers=2),
    ).run()
    stages = ", ".join(f"{stage} {n}" for stage, n in sorted(report.invalid_by_stage.items()) if n)
    print(f"run with the inferred model: read {report.rows_read:,} = valid {report.rows_valid:,} + invalid {report.rows_invalid:,}"
          f" ({stages}) + filtered {report.rows_filtered:,}")
    expected = sum(bad[kind] for kind in WRONG_TYPE_OR_SHAPE)
    print(f"bad on purpose with a wrong type or shape ({', '.join(WRONG_TYPE_OR_SHAPE)}): {expected}; in the DLQ: {report.rows_invalid}")
    assert report.rows_read == report.rows_valid + report.rows_invalid + report.rows_filtered == ROWS
    assert report.rows_invalid == expected, (report.rows_invalid, expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
