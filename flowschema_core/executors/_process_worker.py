"""The worker process of :class:`MultiprocessingExecutor` (``python -m`` this module).

It is started as a fresh interpreter, not by ``multiprocessing``'s spawn, so the user's
``__main__`` script is never re-imported (a script without an ``if __name__ ==
"__main__":`` guard works) and a model defined in that script arrives by value through
cloudpickle.

With ``record_timeout`` a third file descriptor is the worker's beacon page (see
:mod:`flowschema_core.watchdog`). Protocol on two pipes (``multiprocessing.connection`` framing): the driver sends a
msgpack boot message (``sys.path``) and the cloudpickled ``WorkerSpec``; the worker
answers ``K`` (ready) or ``F<message>`` (cannot start). Then, per chunk blob, it answers
``R<result blob>``, ``E<msgpack error>`` or ``C<message>`` (the chunk ran the worker
out of its memory limit), strictly in the order the chunks came.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection


def main(argv: list[str]) -> int:
    # Ctrl-C and SIGTERM are the driver's to handle (a terminal or `systemctl stop` sends
    # them to the whole process group): it stops the run, then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inbox = Connection(int(argv[1]), writable=False)
    outbox = Connection(int(argv[2]), readable=False)
    beacon_fd = int(argv[3]) if len(argv) > 3 else None
    for fd in map(int, argv[1:]):
        # Not to a hook's subprocess: one that outlived this worker would hold the result
        # pipe open, and the driver would never see the worker's death (EOF).
        os.set_inheritable(fd, False)
    try:
        import cloudpickle

        from flowschema_core import codec
        from flowschema_core.worker import ChunkProcessor

        boot = codec.unpack(inbox.recv_bytes())
        sys.path[:0] = [p for p in boot["sys_path"] if p not in sys.path]
        spec = cloudpickle.loads(inbox.recv_bytes())
        processor = ChunkProcessor(spec)
        if beacon_fd is not None:
            from flowschema_core.watchdog import Beacon

            processor.beacon = Beacon(beacon_fd)  # the driver watches it (record_timeout)
        if boot.get("memory_limit"):
            import resource

            # Past this address-space size allocations raise MemoryError instead of the
            # kernel's OOM killer taking down a random process of the machine.
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (boot["memory_limit"], hard))
    except EOFError:
        return 0
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which raises
        outbox.send_bytes(b"F" + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"))
        return 1
    try:
        outbox.send_bytes(b"K")
    except OSError:
        return 0  # the driver is gone
    while True:
        try:
            blob = inbox.recv_bytes()
        except (EOFError, OSError):
            return 0  # the driver closed the pipe or died: nothing left to do
        try:
            reply = b"R" + processor.process(blob)
        except MemoryError:
            reply = b""  # drop whatever the failed chunk held before building the reply
            reply = b"C" + f"the chunk exhausted the worker's memory limit of {boot['memory_limit']:,} bytes".encode()
        except Exception as exc:  # noqa: BLE001 - travels back with its traceback
            reply = b"E" + codec.pack({"type": type(exc).__name__, "msg": str(exc), "tb": traceback.format_exc()})
        try:
            outbox.send_bytes(reply)
        except OSError:
            return 0  # the driver is gone (stopped or killed): nobody to answer, nothing to say


if __name__ == "__main__":
    sys.exit(main(sys.argv))
