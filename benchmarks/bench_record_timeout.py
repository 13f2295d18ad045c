"""What ``record_timeout`` costs the workers: CPU per record with and without the beacon,
the same chunks, interleaved, best of 5. ``python benchmarks/bench_record_timeout.py``
(generates a 200k-row orders CSV with 3% bad rows in build/bench once)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from examples.orders_model import Order  # noqa: E402
from flowschema_core.sources.csv import CSVSource  # noqa: E402
from flowschema_core.watchdog import Beacon, Watch  # noqa: E402
from flowschema_core.worker import ChunkProcessor, WorkerSpec  # noqa: E402

ROWS = 200_000


def main() -> None:
    path = os.path.join(ROOT, "build", "bench", "orders-200k.csv")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "examples", "generate_orders.py"), "--rows", str(ROWS), "--bad-fraction", "0.03", path],
                       check=True)
    blobs = [blob for blob, _ in CSVSource(path).chunks(1 << 20)]
    plain = ChunkProcessor(WorkerSpec(Order))
    watched = ChunkProcessor(WorkerSpec(Order, record_timeout=30))
    watch = Watch()
    watched.beacon = Beacon(os.dup(watch.fd))
    times: dict[str, list[float]] = {"without": [], "with the beacon": []}
    for _ in range(5):
        for name, processor in (("without", plain), ("with the beacon", watched)):
            started = time.process_time()
            for blob in blobs:
                processor.process(blob)
            times[name].append(time.process_time() - started)
    for name, spent in times.items():
        print(f"{name:>16}: {min(spent) / ROWS * 1e6:.2f} µs of worker CPU per record (best of 5)")
    print(f"ratio: {min(times['with the beacon']) / min(times['without']):.3f}")
    watch.close()


if __name__ == "__main__":
    main()
