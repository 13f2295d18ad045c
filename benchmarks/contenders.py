"""The contenders of ``make bench``: what a user would write instead of FlowSchema, and
FlowSchema itself, each run in its own fresh interpreter (``python contenders.py NAME ...``).

Every contender reads the same orders CSV, validates every row against
``examples.orders_model.Order``, writes valid rows to ``OUT/NAME.jsonl`` (or
``NAME.parquet``) and refused rows with their reasons to ``OUT/NAME.errors.jsonl``, then
reports its counts and times to the harness (:func:`harness.report_result`):

=================  =========================================================================
``single``         one process: ``csv.DictReader`` → ``model_validate`` → ``model_dump_json``
``single-parquet`` the same loop, valid rows to Parquet (pyarrow, the model's Arrow schema)
``pool``           ``multiprocessing.Pool(workers)``: the driver reads row dicts, ships
                   pickled chunks of 5,000 through ``imap``; workers validate and dump
``flowschema``     ``Pipeline(CSVSource, Order, JSONLSink, errors=JSONLSink,
                   executor=MultiprocessingExecutor(workers))``
``flowschema-parquet``  the same, valid rows to a ``ParquetSink``
``flowschema-progress`` ``flowschema`` drawing the live progress line (into /dev/null)
``flowschema-ray`` the same with ``RayExecutor(num_actors=workers)``: actors' start-up is
                   inside the timed run, ``ray.init`` is not
``pandas``         ``pandas.read_csv(dtype=str, on_bad_lines="skip")`` + validate each record
``ray-data``       ``ray.data.read_csv`` (pyarrow skips ragged rows) + ``map_batches``
                   validating, batches written by the driver; ``ray.init`` not timed
=================  =========================================================================

FlowSchema's runs also report the driver's own CPU over ``Pipeline.run`` (all its threads,
workers excluded) and the workers' CPU from their start-up finished to their shutdown
(read from ``/proc`` through psutil), so the bench can print µs per record for both.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402

POOL_CHUNK = 5000
PARQUET_BATCH = 10_000
_MISSING = "\x00missing"  # DictReader's restval: marks a row with too few fields
_WRONG_FIELDS = [{"type": "parse_error", "msg": "wrong number of fields"}]


# -- the one-process loop, shared by the Pool's workers ---------------------------------
def _error_line(line: int, errors: Any, raw: Any) -> str:
    return json.dumps({"line": line, "errors": errors, "raw": raw}, ensure_ascii=False, default=str) + "\n"


def _checked(line: int, row: dict[str, Any]) -> tuple[Any, str | None]:
    """(the validated ``Order``, None) or (None, its DLQ line)."""
    from pydantic import ValidationError

    from examples.orders_model import Order

    if None in row or _MISSING in row.values():  # too many / too few fields
        return None, _error_line(line, _WRONG_FIELDS, row)
    try:
        return Order.model_validate({k: v or None for k, v in row.items()}), None
    except ValidationError as exc:
        return None, _error_line(line, exc.errors(include_url=False, include_context=False), row)


def _numbered_rows(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, restval=_MISSING)
        for row in reader:
            yield reader.line_num, row


def run_single(path: str, out: str) -> dict[str, Any]:
    valid = invalid = 0
    with open(out + ".jsonl", "w", encoding="utf-8") as sink, open(out + ".errors.jsonl", "w", encoding="utf-8") as dlq:
        for line, row in _numbered_rows(path):
            order, error = _checked(line, row)
            if error is None:
                sink.write(order.model_dump_json() + "\n")
                valid += 1
            else:
                dlq.write(error)
                invalid += 1
    return {"valid": valid, "invalid": invalid}


def run_single_parquet(path: str, out: str) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from examples.orders_model import Order
    from flowschema_core.arrow_schema import arrow_schema

    schema = arrow_schema(Order)  # what a careful user writes by hand: a fixed schema
    valid = invalid = 0
    batch: list[dict[str, Any]] = []
    with pq.ParquetWriter(out + ".parquet", schema, compression="zstd") as sink, open(out + ".errors.jsonl", "w", encoding="utf-8") as dlq:
        for line, row in _numbered_rows(path):
            order, error = _checked(line, row)
            if error is None:
                batch.append(order.model_dump())
                valid += 1
                if len(batch) == PARQUET_BATCH:
                    sink.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            else:
                dlq.write(error)
                invalid += 1
        if batch:
            sink.write_table(pa.Table.from_pylist(batch, schema=schema))
    return {"valid": valid, "invalid": invalid}


# -- multiprocessing.Pool ---------------------------------------------------------------
def _validate_chunk(rows: list[tuple[int, dict[str, Any]]]) -> tuple[list[str], list[str]]:
    good: list[str] = []
    bad: list[str] = []
    for line, row in rows:
        order, error = _checked(line, row)
        if error is None:
            good.append(order.model_dump_json() + "\n")
        else:
            bad.append(error)
    return good, bad


def _pool_chunks(path: str) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    chunk: list[tuple[int, dict[str, Any]]] = []
    for item in _numbered_rows(path):
        chunk.append(item)
        if len(chunk) == POOL_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_pool(path: str, out: str, workers: int) -> dict[str, Any]:
    import multiprocessing

    valid = invalid = 0
    with multiprocessing.Pool(workers) as pool, open(out + ".jsonl", "w", encoding="utf-8") as sink, \
            open(out + ".errors.jsonl", "w", encoding="utf-8") as dlq:
        for good, bad in pool.imap(_validate_chunk, _pool_chunks(path)):
            sink.writelines(good)
            dlq.writelines(bad)
            valid, invalid = valid + len(good), invalid + len(bad)
    return {"valid": valid, "invalid": invalid}


# -- FlowSchema -------------------------------------------------------------------------
def _measured_process_executor(workers: int, cpu: dict[str, float]) -> Any:
    """A ``MultiprocessingExecutor`` that notes its workers' CPU once they are ready and
    again before they stop: their per-record work, without interpreter start-up."""
    import psutil

    import flowschema_core as fs

    def cpu_of(pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            with __import__("contextlib").suppress(psutil.NoSuchProcess):
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
        return total

    class Measured(fs.MultiprocessingExecutor):
        def start(self, spec: Any) -> None:
            super().start(spec)
            self._bench_pids = self.worker_pids()
            cpu["workers_ready"] = cpu_of(self._bench_pids)

        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            if "workers_done" not in cpu:
                cpu["workers_done"] = cpu_of(self._bench_pids)
            super().shutdown(wait, cancel_futures=cancel_futures)

    return Measured(workers=workers)


def run_flowschema(path: str, out: str, workers: int, budget: str, *, chunk_bytes: str = "1MiB", parquet: bool = False,
                   ray: bool = False, progress: bool = False) -> dict[str, Any]:
    import flowschema_core as fs
    from examples.orders_model import Order

    line = None
    if progress:  # the live progress line, drawn as on a terminal, into /dev/null
        from rich.console import Console

        from flowschema_core.progress import LiveLine

        line = LiveLine(Console(file=open(os.devnull, "w"), force_terminal=True, width=160))  # open as long as the child lives

    cpu: dict[str, float] = {}
    executor: Any
    if ray:
        from flowschema_ray import RayExecutor

        executor = RayExecutor(num_actors=workers)
    else:
        executor = _measured_process_executor(workers, cpu)
    sink = fs.ParquetSink(out + ".parquet") if parquet else fs.JSONLSink(out + ".jsonl")
    driver_cpu = time.process_time()
    report = fs.Pipeline(fs.CSVSource(path), Order, sink, errors=fs.JSONLSink(out + ".errors.jsonl"),
                         executor=executor, max_bytes_in_flight=budget, chunk_bytes=chunk_bytes, progress=line).run()
    driver_cpu = time.process_time() - driver_cpu
    assert report.balanced, report.summary()
    result: dict[str, Any] = {
        "valid": report.rows_valid, "invalid": report.rows_invalid, "chunks": report.chunks,
        "peak_bytes_in_flight": report.peak_bytes_in_flight, "max_bytes_in_flight": report.max_bytes_in_flight,
        "reader_blocked_s": report.blocked_s, "driver_cpu_s": driver_cpu,
    }
    if "workers_done" in cpu:
        result["worker_cpu_s"] = cpu["workers_done"] - cpu["workers_ready"]
    return result


# -- pandas and Ray Data ----------------------------------------------------------------
def run_pandas(path: str, out: str) -> dict[str, Any]:
    import pandas as pd
    from pydantic import ValidationError

    from examples.orders_model import Order

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")  # what a user writes
    valid = invalid = 0
    with open(out + ".jsonl", "w", encoding="utf-8") as sink, open(out + ".errors.jsonl", "w", encoding="utf-8") as dlq:
        for index, record in enumerate(frame.to_dict("records")):
            try:
                sink.write(Order.model_validate({k: v or None for k, v in record.items()}).model_dump_json() + "\n")
                valid += 1
            except ValidationError as exc:
                dlq.write(_error_line(index + 2, exc.errors(include_url=False, include_context=False), record))
                invalid += 1
    return {"valid": valid, "invalid": invalid}


def _ray_data_validate(batch: dict[str, Any]) -> dict[str, Any]:
    """``map_batches`` function: each row's JSON line, valid or refused (numpy batch of strings)."""
    import numpy as np
    from pydantic import ValidationError

    from examples.orders_model import Order

    columns = list(batch)
    good, bad = [], []
    for values in zip(*(batch[c] for c in columns)):
        row = dict(zip(columns, values))
        try:
            good.append(Order.model_validate({k: v or None for k, v in row.items()}).model_dump_json())
        except ValidationError as exc:
            bad.append(json.dumps({"errors": exc.errors(include_url=False, include_context=False), "raw": row}, default=str))
    return {"line": np.array(good + bad, dtype=object), "ok": np.array([True] * len(good) + [False] * len(bad))}


def run_ray_data(path: str, out: str) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import ray

    from examples.generate_orders import FIELDS

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - started
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its progress log, every few seconds
    ds = ray.data.read_csv(
        path,
        parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"),
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(FIELDS, pa.string()), strings_can_be_null=False),
    )
    valid = invalid = 0
    with open(out + ".jsonl", "w", encoding="utf-8") as sink, open(out + ".errors.jsonl", "w", encoding="utf-8") as dlq:
        for batch in ds.map_batches(_ray_data_validate, batch_format="numpy").iter_batches(batch_format="numpy"):
            for line, ok in zip(batch["line"], batch["ok"]):
                (sink if ok else dlq).write(line + "\n")
                valid, invalid = valid + bool(ok), invalid + (not ok)
    return {"valid": valid, "invalid": invalid, "untimed_s": init_s}


# -- the child's entry point ------------------------------------------------------------
NAMES = ("single", "single-parquet", "pool", "flowschema", "flowschema-parquet", "flowschema-progress", "flowschema-ray", "pandas", "ray-data")


def output_path(out: str) -> str:
    """Where a contender wrote its valid rows (``OUT.jsonl`` or ``OUT.parquet``)."""
    return out + ".parquet" if os.path.exists(out + ".parquet") else out + ".jsonl"


def child_main(name: str, path: str, out: str, workers: int, budget: str, chunk_bytes: str) -> None:
    if name == "flowschema-ray":  # Ray's own start-up is not FlowSchema's: outside the timed run
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        untimed_s = time.perf_counter() - started
    with harness.timed({}) as result:
        if name == "single":
            result.update(run_single(path, out))
        elif name == "single-parquet":
            result.update(run_single_parquet(path, out))
        elif name == "pool":
            result.update(run_pool(path, out, workers))
        elif name == "pandas":
            result.update(run_pandas(path, out))
        elif name == "ray-data":
            result.update(run_ray_data(path, out))
        else:
            result.update(run_flowschema(path, out, workers, budget, chunk_bytes=chunk_bytes, parquet=name == "flowschema-parquet",
                                         ray=name == "flowschema-ray", progress=name == "flowschema-progress"))
    if name == "ray-data":  # its clock starts after ray.init too
        result["wall_s"] -= result["untimed_s"]
    elif name == "flowschema-ray":
        result["untimed_s"] = untimed_s
    harness.report_result(result)


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
