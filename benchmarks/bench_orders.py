"""``make bench``: FlowSchema against what a user would write instead, on messy orders CSVs.

::

    python benchmarks/bench_orders.py [--rows 300000] [--bad 2 30] [--workers 2] [--budget 64MB] [--chunk-bytes 1MiB]
                                      [--repeat 1] [--slow-contenders] [--no-ray] [--no-parquet]
                                      [--skip-baselines] [--skip-scaling] [--skip-flatness]
                                      [--flatness-rows 700000] [--progress] [--only NAME ...] [--out build/bench]

For each bad-row rate (``--bad``, percent), on the same generated CSV, every contender of
:mod:`benchmarks.contenders` runs in a fresh interpreter while a separate sampler process
polls its whole process tree's RSS: the one-process loop, ``multiprocessing.Pool``,
FlowSchema with the process executor and with ``RayExecutor``; the one-process loop and
FlowSchema also write Parquet (unless ``--no-parquet``); with ``--slow-contenders`` pandas and
Ray Data join. Each contender's valid rows are compared with the one-process loop's
verdicts ("wrong rows": rows passed that should not, good rows refused, rows lost).

Then, unless skipped: FlowSchema at 1 worker (scaling: with the driver's and the workers'
µs per record, the predicted rows/s for 4-64 workers and where it flattens), and at
``--flatness-rows`` and twice as many, both larger than the budget (is the peak RSS flat
in the input size?).

Writes ``OUT/bench.md`` (the tables), ``OUT/bench.svg`` (rows/s and peak RSS per
contender) and ``OUT/bench.json``; inputs are generated once into build/bench and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402
from benchmarks.chart import bar_chart_svg  # noqa: E402

CONTENDERS = os.path.join(ROOT, "benchmarks", "contenders.py")
LABELS = {
    "single": "one process: `DictReader` + `model_validate` + `model_dump_json`",
    "single-parquet": "one process, valid rows to Parquet",
    "pool": "`multiprocessing.Pool({w})`, pickled row dicts",
    "flowschema": "FlowSchema, process executor, {w} workers",
    "flowschema-parquet": "FlowSchema, process executor, {w} workers, to Parquet",
    "flowschema-progress": "FlowSchema, process executor, {w} workers, live progress line",
    "flowschema-ray": "FlowSchema, `RayExecutor`, {w} actors (start-up in, `ray.init` out)",
    "pandas": "pandas `read_csv` + validate",
    "ray-data": "Ray Data `read_csv` + `map_batches` (`ray.init` out)",
}
PREDICT_WORKERS = (1, 2, 4, 8, 16, 32, 64)


def measure(name: str, path: str, rows: int, workers: int, budget: str, out_dir: str, chunk_bytes: str = "1MiB") -> dict[str, Any]:
    """One contender in a fresh interpreter; its result with rows/s and its valid rows' order ids."""
    out = os.path.join(out_dir, name)
    for stale in (out + ".jsonl", out + ".parquet", out + ".errors.jsonl"):
        if os.path.exists(stale):
            os.remove(stale)
    result = harness.run_child([sys.executable, CONTENDERS, name, path, out, str(workers), budget, chunk_bytes])
    result.update(name=name, rows=rows, workers=workers, rows_per_s=rows / result["wall_s"])
    result["ids"] = valid_ids(out)
    return result


def valid_ids(out: str) -> set[int]:
    """The order ids a contender let through (order_id is unique per generated row)."""
    if os.path.exists(out + ".parquet"):
        import pyarrow.parquet as pq

        return set(pq.read_table(out + ".parquet", columns=["order_id"]).column("order_id").to_pylist())
    with open(out + ".jsonl", "rb") as f:
        return {int(m) for m in re.findall(rb'"order_id":\s*(\d+)', f.read())}


def wrong_rows(result: dict[str, Any], reference: set[int]) -> dict[str, int]:
    """Against the one-process loop's verdicts: passed that should not, good refused, lost."""
    ids = result["ids"]
    return {"passed": len(ids - reference), "refused": len(reference - ids), "lost": result["rows"] - result["valid"] - result["invalid"]}


def wrong_text(w: dict[str, int]) -> str:
    parts = [f"{w['passed']:,} passed that should not" if w["passed"] else "",
             f"{w['refused']:,} good rows refused" if w["refused"] else "",
             f"{w['lost']:,} rows lost (in neither output)" if w["lost"] else ""]
    return ", ".join(p for p in parts if p) or "0"


def per_record(result: dict[str, Any]) -> tuple[float, float | None]:
    """FlowSchema's driver and worker CPU µs per record."""
    worker = result.get("worker_cpu_s")
    return result["driver_cpu_s"] / result["rows"] * 1e6, None if worker is None else worker / result["rows"] * 1e6


def predicted_rows_per_s(workers: int, driver_us: float, worker_us: float) -> float:
    """``workers`` workers on their own cores and the driver on one more: the workers give
    ``workers / W`` records a µs, the driver at most ``1 / D``."""
    return min(workers / worker_us, 1 / driver_us) * 1e6


def machine(when: str = "now") -> str:
    model = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    mem = ""
    if os.path.exists("/proc/meminfo"):
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.0f} GB RAM, "
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model or platform.machine()}), {mem}Python {platform.python_version()}, load average {load} {when}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--bad", type=float, nargs="+", default=[2.0, 30.0], help="bad-row rates in percent, one input each")
    parser.add_argument("--budget", default="64MB", help="FlowSchema max_bytes_in_flight")
    parser.add_argument("--chunk-bytes", default="1MiB", help="FlowSchema chunk_bytes")
    parser.add_argument("--workers", type=int, default=2, help="workers of the Pool and of FlowSchema, Ray actors")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each contender's fastest round is reported")
    parser.add_argument("--slow-contenders", action="store_true", help="also pandas read_csv and Ray Data (slow, GBs of RSS)")
    parser.add_argument("--no-ray", action="store_true", help="leave out RayExecutor")
    parser.add_argument("--no-parquet", action="store_true", help="leave out CSV → Parquet (the one-process loop and FlowSchema)")
    parser.add_argument("--skip-baselines", action="store_true", help="FlowSchema only (no one-process loop: no ratios, no wrong rows)")
    parser.add_argument("--skip-scaling", action="store_true", help="no 1-worker run, no predicted curve")
    parser.add_argument("--skip-flatness", action="store_true", help="no run at twice the rows")
    parser.add_argument("--flatness-rows", type=int, default=700_000, help="the flatness check runs at this many rows and twice as many")
    parser.add_argument("--progress", action="store_true", help="also FlowSchema drawing the live progress line, interleaved")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these contenders (names as in benchmarks/contenders.py)")
    parser.add_argument("--out", default=harness.BENCH_DIR, help="where bench.md, bench.svg and bench.json go")
    args = parser.parse_args(argv)

    names = ["flowschema"] if args.skip_baselines else ["single", "pool", "flowschema"]
    if not args.no_parquet:
        names[1:1] = [] if args.skip_baselines else ["single-parquet"]
        names.append("flowschema-parquet")
    if args.progress:
        names.append("flowschema-progress")
    if not args.no_ray:
        names.append("flowschema-ray")
    if args.slow_contenders:
        names += ["pandas", "ray-data"]
    if args.only:
        names = [n for n in LABELS if n in args.only]
    runs_dir = os.path.join(args.out, "out")
    os.makedirs(runs_dir, exist_ok=True)
    w = args.workers
    print(f"{args.rows:,} rows at {', '.join(f'{b:g}%' for b in args.bad)} bad; budget {args.budget}, chunk_bytes {args.chunk_bytes}, "
          f"workers {w}; {machine()}", flush=True)

    md: list[str] = []
    sections: list[tuple[str, list[tuple[str, float, float]]]] = []
    saved: dict[str, Any] = {"rows": args.rows, "budget": args.budget, "workers": w, "rates": {}}
    fs_first: dict[str, Any] | None = None
    for bad in args.bad:
        path, kinds = harness.orders_csv(args.rows, bad / 100)
        print(f"\n{bad:g}% bad rows: {path} ({os.path.getsize(path) / 1e6:.0f} MB, {sum(kinds.values()):,} bad on purpose)", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for round_ in range(args.repeat):
            for name in names if round_ % 2 == 0 else names[::-1]:  # alternate to spread machine noise
                r = measure(name, path, args.rows, w, args.budget, runs_dir, args.chunk_bytes)
                print(f"  {name:<20} {r['rows_per_s']:>9,.0f} rows/s  peak tree RSS {harness.mib(r['peak_rss']):>9}", flush=True)
                runs[name].append(r)
        best = {n: max(rs, key=lambda r: r["rows_per_s"]) for n, rs in runs.items()}
        reference = best["single"]["ids"] if "single" in best else None
        base = {"jsonl": best.get("single"), "parquet": best.get("single-parquet")}
        rows_md, bars = [], []
        for name in names:
            r = best[name]
            vs = base["parquet" if name.endswith("parquet") else "jsonl"]
            ratio = f"{r['rows_per_s'] / vs['rows_per_s']:.2f}x" if vs else "-"
            wrong = wrong_text(wrong_rows(r, reference)) if reference is not None else "-"
            r["wrong"] = wrong
            label = LABELS[name].format(w=w)
            # CPU of the contender's own process and its reaped children (Ray's processes are not theirs)
            cpu_us = "-" if name in ("flowschema-ray", "ray-data") else f"{r['cpu_s'] / r['rows'] * 1e6:.1f}"
            rows_md.append([label, f"{r['rows_per_s']:,.0f}", ratio, harness.mib(r["peak_rss"]), wrong, f"{r['wall_s']:.2f}", cpu_us])
            bars.append((re.sub(r"`", "", label), r["rows_per_s"], r["peak_rss"] / 2**20))
        md += [f"### {bad:g}% bad rows ({args.rows:,} rows, {os.path.getsize(path) / 1e6:.0f} MB)", "",
               harness.table(["contender", "rows/s", "x one process", "peak tree RSS", "wrong rows", "wall s", "CPU µs/record"], rows_md), ""]
        sections.append((f"{bad:g}% bad rows", bars))

        saved["rates"][f"{bad:g}"] = {"runs": {n: [{k: v for k, v in r.items() if k != "ids"} for r in rs] for n, rs in runs.items()}}
        fs = best.get("flowschema")
        if fs is None:
            continue
        driver_us, worker_us = per_record(fs)
        notes = [f"FlowSchema driver CPU {driver_us:.2f} µs/record, workers {worker_us:.2f} µs/record "
                 f"(one driver feeds about {worker_us / driver_us:.1f} workers)" if worker_us else ""]
        if base["jsonl"]:
            notes.append(f"process executor / one process: {fs['rows_per_s'] / base['jsonl']['rows_per_s']:.2f}x")
        if base["parquet"] and "flowschema-parquet" in best:
            notes.append(f"to Parquet, process executor / one process: {best['flowschema-parquet']['rows_per_s'] / base['parquet']['rows_per_s']:.2f}x")
        if "flowschema-ray" in best:
            notes.append(f"RayExecutor / process executor: {best['flowschema-ray']['rows_per_s'] / fs['rows_per_s']:.2f}x")
        if "flowschema-progress" in best:
            notes.append(f"with / without the progress line: {best['flowschema-progress']['rows_per_s'] / fs['rows_per_s']:.3f}x")
        notes.append(f"FlowSchema peak bytes in flight {harness.mib(fs['peak_bytes_in_flight'])} of {harness.mib(fs['max_bytes_in_flight'])}, "
                     f"{fs['chunks']} chunks, reader blocked {fs['reader_blocked_s']:.2f} s")
        for note in filter(None, notes):
            print("  " + note)
        md += [f"* {note}" for note in notes if note] + [""]
        saved["rates"][f"{bad:g}"].update(driver_us=driver_us, worker_us=worker_us)
        fs_first = fs_first or fs

    if fs_first is None:  # --only without FlowSchema: nothing more to measure
        args.skip_scaling = args.skip_flatness = True
    if not args.skip_scaling:
        path, _ = harness.orders_csv(args.rows, args.bad[0] / 100)
        print(f"\nscaling ({args.bad[0]:g}% bad rows): FlowSchema at 1 worker ...", flush=True)
        one = measure("flowschema", path, args.rows, 1, args.budget, runs_dir, args.chunk_bytes)
        driver_us, worker_us = per_record(fs_first)
        assert worker_us is not None
        table = []
        for n in PREDICT_WORKERS:
            measured = {1: one["rows_per_s"], w: fs_first["rows_per_s"]}.get(n)
            table.append([n, f"{predicted_rows_per_s(n, driver_us, worker_us):,.0f}", f"{measured:,.0f}" if measured else ""])
        flat = worker_us / driver_us
        md += [f"### Scaling ({args.bad[0]:g}% bad rows): driver {driver_us:.2f} µs/record, workers {worker_us:.2f} µs/record", "",
               harness.table(["workers", "predicted rows/s (a core each, driver on its own)", f"measured here ({os.cpu_count()} cores)"], table), "",
               f"* flattens at about {flat:.1f} workers (worker µs ÷ driver µs), at {1e6 / driver_us:,.0f} rows/s", ""]
        print(harness.table(["workers", "predicted rows/s", "measured"], table))
        print(f"  flattens at about {flat:.1f} workers, {1e6 / driver_us:,.0f} rows/s")
        saved["scaling"] = {"one_worker": {k: v for k, v in one.items() if k != "ids"}, "driver_us": driver_us, "worker_us": worker_us}

    if not args.skip_flatness:
        # Both inputs larger than the budget (700k rows is 73 MB of CSV): with backpressure
        # the peak RSS should not grow from one to the other.
        sizes = (args.flatness_rows, 2 * args.flatness_rows)
        peaks = []
        for n in sizes:
            flat_path, _ = harness.orders_csv(n, args.bad[0] / 100)
            print(f"\nmemory flatness: FlowSchema at {n:,} rows ...", flush=True)
            r = measure("flowschema", flat_path, n, w, args.budget, runs_dir, args.chunk_bytes)
            print(f"  {r['rows_per_s']:,.0f} rows/s, peak tree RSS {harness.mib(r['peak_rss'])}", flush=True)
            peaks.append(r["peak_rss"])
        ratio = peaks[1] / peaks[0]
        line = (f"peak tree RSS {harness.mib(peaks[0])} ({peaks[0] / 1e6:.0f} MB) at {sizes[0]:,} rows, {harness.mib(peaks[1])} "
                f"({peaks[1] / 1e6:.0f} MB) at {sizes[1]:,} rows (ratio {ratio:.2f}; 1.00 = flat), budget {args.budget}")
        print("  " + line)
        md += ["### Memory flatness (FlowSchema, process executor, inputs larger than the budget)", "", f"* {line}", ""]
        saved["flatness"] = {"rows": sizes, "peak_rss": peaks, "ratio": ratio}

    md.insert(0, f"Machine: {machine('at the end')}.\n")
    saved["machine"] = machine("at the end")
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(args.out, "bench.svg"), "w") as f:
        f.write(bar_chart_svg(f"{args.rows:,}-row orders CSV → JSONL (or Parquet) + DLQ, budget {args.budget}", sections))
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(saved, f, indent=2)
    print(f"\nwrote {args.out}/bench.md, bench.svg, bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
