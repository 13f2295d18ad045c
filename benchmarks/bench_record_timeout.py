"""Worker CPU per record with and without the record_timeout beacon, same chunks, interleaved:
``python benchmarks/bench_record_timeout.py`` (generates a 200k-row orders CSV in build/bench)."""
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from examples.orders_model import Order
from flowschema_core.sources.csv import CSVSource
from flowschema_core.watchdog import Beacon, Watch
from flowschema_core.worker import ChunkProcessor, WorkerSpec

path = "build/bench/orders-200k.csv"
os.makedirs("build/bench", exist_ok=True)
if not os.path.exists(path):
    subprocess.run([sys.executable, "examples/generate_orders.py", "--rows", "200000", "--bad-fraction", "0.03", path], check=True)
blobs = [b for b, _ in CSVSource(path).chunks(1 << 20)]
plain = ChunkProcessor(WorkerSpec(Order))
watched = ChunkProcessor(WorkerSpec(Order, record_timeout=30))
watch = Watch(); watched.beacon = Beacon(os.dup(watch.fd))
times = {"plain": [], "beacon": []}
for _ in range(5):
    for name, p in (("plain", plain), ("beacon", watched)):
        t = time.process_time()
        for b in blobs:
            p.process(b)
        times[name].append(time.process_time() - t)
n = 200000
for name, ts in times.items():
    print(f"{name}: {min(ts) / n * 1e6:.2f} us/record (best of 5)")
print(f"beacon / plain: {min(times['beacon']) / min(times['plain']):.3f}")
