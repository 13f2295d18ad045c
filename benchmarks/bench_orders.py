"""FlowSchema against the two things a user would write instead, on one messy orders CSV.

::

    python benchmarks/bench_orders.py [--rows 1000000] [--budget 64MB] [--workers 2]
                                      [--repeat 1] [--skip-baselines] [--progress] [--json out.json]

Side by side, in one run, on the same file, model and output work (valid rows to a JSON
Lines file, invalid rows with their reasons to a second one):

(a) one process: ``csv.DictReader`` → ``Order.model_validate`` → ``model_dump_json``;
(b) ``multiprocessing.Pool(workers)``: the driver reads row dicts with ``DictReader`` and
    ships chunks of 5,000 (pickle) through ``imap``; workers validate and dump; the driver
    writes, in order;
(c) FlowSchema: ``Pipeline(CSVSource, Order, JSONLSink, errors=JSONLSink,
    executor=MultiprocessingExecutor(workers), max_bytes_in_flight=budget)``;
(d) with ``--progress``: (c) again, drawing the live progress line (rich, as on a
    terminal, into /dev/null) at every sample; rounds alternate the order, so (c) and (d)
    are interleaved and their difference is the progress line's cost.

Each measurement runs in a fresh interpreter; a separate sampler process polls that
interpreter's whole process tree every 50 ms and reports its peak RSS. Then a
memory-flatness check runs FlowSchema on ``--rows`` and on twice as many rows (both
larger than the budget): with a byte budget the peak RSS should not grow with the input.

The CSV files are generated once into ``build/bench/`` and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402

BENCH_DIR = os.path.join(ROOT, "build", "bench")
POOL_CHUNK = 5000
_MISSING = "\x00missing"  # DictReader's restval: marks a row with too few fields


# -- data ------------------------------------------------------------------------------
def ensure_csv(rows: int, seed: int = 0) -> tuple[str, dict[str, int]]:
    """Generate (once) the ``rows``-row CSV; return its path and bad-row counts."""
    from examples.generate_orders import generate_orders_csv

    os.makedirs(BENCH_DIR, exist_ok=True)
    path = os.path.join(BENCH_DIR, f"orders_{rows}.csv")
    meta_path = path + ".meta.json"
    if os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("rows") == rows and meta.get("seed") == seed and meta.get("size") == os.path.getsize(path):
            return path, meta["bad"]
    print(f"generating {rows:,} rows into {path} ...", flush=True)
    started = time.perf_counter()
    bad = generate_orders_csv(path, rows, seed=seed)
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    with open(meta_path, "w") as f:
        json.dump({"rows": rows, "seed": seed, "size": os.path.getsize(path), "bad": bad}, f)
    return path, bad


# -- the three contenders (each runs in its own fresh interpreter) ----------------------
def _error_line(line: int, errors: Any, raw: Any) -> str:
    return json.dumps({"line": line, "errors": errors, "raw": raw}, ensure_ascii=False, default=str) + "\n"


def _validate_rows(rows: list[tuple[int, dict[str, Any]]]) -> tuple[list[str], list[str]]:
    """Validate ``(line, row dict)`` pairs; return (valid JSON lines, DLQ lines)."""
    from pydantic import ValidationError

    from examples.orders_model import Order

    out: list[str] = []
    err: list[str] = []
    for line, row in rows:
        if None in row or _MISSING in row.values():  # too many / too few fields
            err.append(_error_line(line, [{"type": "parse_error", "msg": "wrong number of fields"}], row))
            continue
        try:
            out.append(Order.model_validate({k: v or None for k, v in row.items()}).model_dump_json() + "\n")
        except ValidationError as exc:
            err.append(_error_line(line, exc.errors(include_url=False, include_context=False), row))
    return out, err


def _numbered(reader: Any) -> Any:
    for row in reader:
        yield reader.line_num, row


def run_single(path: str, out_dir: str) -> dict[str, Any]:
    import csv

    from pydantic import ValidationError

    from examples.orders_model import Order

    valid = invalid = 0
    with open(path, newline="", encoding="utf-8") as f, \
            open(os.path.join(out_dir, "a.jsonl"), "w", encoding="utf-8") as out, \
            open(os.path.join(out_dir, "a.errors.jsonl"), "w", encoding="utf-8") as dlq:
        reader = csv.DictReader(f, restval=_MISSING)
        for row in reader:
            if None in row or _MISSING in row.values():  # too many / too few fields
                dlq.write(_error_line(reader.line_num, [{"type": "parse_error", "msg": "wrong number of fields"}], row))
                invalid += 1
                continue
            try:
                out.write(Order.model_validate({k: v or None for k, v in row.items()}).model_dump_json() + "\n")
                valid += 1
            except ValidationError as exc:
                dlq.write(_error_line(reader.line_num, exc.errors(include_url=False, include_context=False), row))
                invalid += 1
    return {"valid": valid, "invalid": invalid}


def _pool_chunks(path: str) -> Any:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, restval=_MISSING)
        chunk: list[tuple[int, dict[str, Any]]] = []
        for item in _numbered(reader):
            chunk.append(item)
            if len(chunk) == POOL_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def run_pool(path: str, out_dir: str, workers: int) -> dict[str, Any]:
    import multiprocessing

    valid = invalid = 0
    with multiprocessing.Pool(workers) as pool, \
            open(os.path.join(out_dir, "b.jsonl"), "w", encoding="utf-8") as out, \
            open(os.path.join(out_dir, "b.errors.jsonl"), "w", encoding="utf-8") as dlq:
        for good, bad in pool.imap(_validate_rows, _pool_chunks(path)):
            out.writelines(good)
            dlq.writelines(bad)
            valid, invalid = valid + len(good), invalid + len(bad)
    return {"valid": valid, "invalid": invalid}


def run_flowschema(path: str, out_dir: str, workers: int, budget: str, progress: bool = False) -> dict[str, Any]:
    import flowschema_core as fs
    from examples.orders_model import Order

    line = None
    if progress:
        from rich.console import Console

        from flowschema_core.progress import LiveLine

        line = LiveLine(Console(file=open(os.devnull, "w"), force_terminal=True, width=160))  # open as long as the child lives
    report = fs.Pipeline(
        fs.CSVSource(path), Order, fs.JSONLSink(os.path.join(out_dir, "c.jsonl")),
        errors=fs.JSONLSink(os.path.join(out_dir, "c.errors.jsonl")),
        executor=fs.MultiprocessingExecutor(workers=workers), max_bytes_in_flight=budget, progress=line,
    ).run()
    assert report.balanced, report.summary()
    return {
        "valid": report.rows_valid, "invalid": report.rows_invalid, "chunks": report.chunks,
        "peak_bytes_in_flight": report.peak_bytes_in_flight, "max_bytes_in_flight": report.max_bytes_in_flight,
        "reader_blocked_s": report.blocked_s, "report_peak_rss": report.peak_rss_bytes,
    }


def _child_main(kind: str, path: str, out_dir: str, workers: int, budget: str) -> None:
    with harness.timed({}) as result:
        if kind == "single":
            result.update(run_single(path, out_dir))
        elif kind == "pool":
            result.update(run_pool(path, out_dir, workers))
        else:
            result.update(run_flowschema(path, out_dir, workers, budget, progress=kind == "progress"))
    harness.report_result(result)


def measure(kind: str, path: str, rows: int, workers: int, budget: str) -> dict[str, Any]:
    """Run one contender in a fresh interpreter, its tree's RSS sampled from outside."""
    out_dir = os.path.join(BENCH_DIR, "out")
    os.makedirs(out_dir, exist_ok=True)
    result = harness.run_child([sys.executable, os.path.abspath(__file__), "--_child", kind, path, out_dir, str(workers), budget])
    result["rows"] = rows
    result["rows_per_s"] = rows / result["wall_s"]
    return result


# -- report ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        _child_main(argv[1], argv[2], argv[3], int(argv[4]), argv[5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--budget", default="64MB", help="FlowSchema max_bytes_in_flight")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (a, b, c); the best of each is reported")
    parser.add_argument("--skip-baselines", action="store_true", help="FlowSchema and the flatness check only")
    parser.add_argument("--skip-flatness", action="store_true")
    parser.add_argument("--progress", action="store_true", help="also (d): FlowSchema drawing the live progress line, interleaved with (c)")
    parser.add_argument("--json", metavar="OUT", help="also save the results as JSON")
    args = parser.parse_args(argv)

    from flowschema_core.units import parse_size

    budget_bytes = parse_size(args.budget, name="--budget")
    path, bad = ensure_csv(args.rows)
    expected_invalid = sum(bad.values())
    print(f"{args.rows:,} rows ({os.path.getsize(path) / 1e6:.0f} MB), {expected_invalid:,} bad on purpose; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, workers={args.workers}, budget={args.budget}", flush=True)

    kinds = ["flowschema"] if args.skip_baselines else ["single", "pool", "flowschema"]
    if args.progress:
        kinds.append("progress")
    labels = {"single": "(a) one process: DictReader+model_validate", "pool": f"(b) multiprocessing.Pool({args.workers}), pickled dicts",
              "flowschema": f"(c) FlowSchema MultiprocessingExecutor({args.workers})",
              "progress": "(d) (c) with the live progress line"}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for round_ in range(args.repeat):
        order = kinds if round_ % 2 == 0 else kinds[::-1]  # alternate to spread machine noise
        for kind in order:
            print(f"  round {round_ + 1}: {labels[kind]} ...", end=" ", flush=True)
            r = measure(kind, path, args.rows, args.workers, args.budget)
            print(f"{r['rows_per_s']:,.0f} rows/s, peak tree RSS {harness.mib(r['peak_rss'])}", flush=True)
            if r["invalid"] != expected_invalid or r["valid"] != args.rows - expected_invalid:
                raise SystemExit(f"{kind}: {r['valid']} valid / {r['invalid']} invalid, expected {args.rows - expected_invalid} / {expected_invalid}")
            runs[kind].append(r)
    best = {k: max(v, key=lambda r: r["rows_per_s"]) for k, v in runs.items()}

    print()
    header = f"{'contender':<48} {'rows/s':>10} {'wall s':>8} {'CPU s':>7} {'peak tree RSS':>14}"
    print(header)
    print("-" * len(header))
    for kind in kinds:
        r = best[kind]
        print(f"{labels[kind]:<48} {r['rows_per_s']:>10,.0f} {r['wall_s']:>8.2f} {r['cpu_s']:>7.1f} {harness.mib(r['peak_rss']):>14}")
    fsr = best["flowschema"]
    ratios = {}
    if not args.skip_baselines:
        ratios = {"vs_single": fsr["rows_per_s"] / best["single"]["rows_per_s"], "vs_pool": fsr["rows_per_s"] / best["pool"]["rows_per_s"]}
        print(f"\nFlowSchema / (a) one process: {ratios['vs_single']:.2f}x    FlowSchema / (b) Pool: {ratios['vs_pool']:.2f}x")
    if args.progress:
        ratios["progress_vs_none"] = best["progress"]["rows_per_s"] / fsr["rows_per_s"]
        rates = {k: ", ".join(f"{r['rows_per_s']:,.0f}" for r in runs[k]) for k in ("flowschema", "progress")}
        print(f"with / without the progress line (best of each): {ratios['progress_vs_none']:.3f}x; "
              f"rows/s per round without: {rates['flowschema']}; with: {rates['progress']}")
    print(f"FlowSchema peak bytes in flight: {harness.mib(fsr['peak_bytes_in_flight'])} of a {harness.mib(budget_bytes)} budget "
          f"({fsr['chunks']} chunks, reader blocked {fsr['reader_blocked_s']:.2f} s)")

    flatness: dict[str, Any] = {}
    if not args.skip_flatness:
        # Both inputs are larger than the budget (1M rows is ~105 MB of CSV), so with
        # backpressure the peak RSS should not grow from one to the other.
        large_rows = 2 * args.rows
        large_path, _ = ensure_csv(large_rows)
        print(f"\nmemory flatness (FlowSchema, budget {args.budget}):", flush=True)
        large = measure("flowschema", large_path, large_rows, args.workers, args.budget)
        flatness = {"small_rows": args.rows, "small_peak_rss": fsr["peak_rss"], "large_rows": large_rows,
                    "large_peak_rss": large["peak_rss"], "ratio": large["peak_rss"] / fsr["peak_rss"]}
        print(f"  {args.rows:>10,} rows: peak tree RSS {harness.mib(fsr['peak_rss'])}")
        print(f"  {large_rows:>10,} rows: peak tree RSS {harness.mib(large['peak_rss'])}, {large['rows_per_s']:,.0f} rows/s")
        print(f"  ratio {flatness['ratio']:.2f} (1.00 = flat)")

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "budget": args.budget, "budget_bytes": budget_bytes, "workers": args.workers,
                       "cpus": os.cpu_count(), "runs": runs, "best": best, "ratios": ratios, "flatness": flatness}, f, indent=2)
        print(f"\nresults saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
