"""Progress of a run: the live line in a real pseudo-terminal, plain lines in a pipe,
nothing with --quiet, and the snapshots a callback receives."""

from __future__ import annotations

import dataclasses
import fcntl
import gzip
import io
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import pyte
import pytest

import flowschema_core as fs
from flowschema_core.progress import PlainLines, ProgressSnapshot
from tests.integration.pipeline_models import Item, write_items_csv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GATED = "tests.integration.progress_models:GatedItem"


class Terminal:
    """The CLI run in a pseudo-terminal (its controlling terminal, 200 columns wide), its
    output collected by a thread."""

    def __init__(self, args: list[str], cwd, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the CLI
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
                os.chdir(cwd)
                os.execve(sys.executable, [sys.executable, "-m", "flowschema_core", *args], env)
            finally:
                os._exit(127)
        self.output = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.status: int | None = None

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child's side is closed
                return
            if not data:
                return
            with self._lock:
                self.output += data

    def screen(self) -> pyte.Screen:
        """What a terminal shows now (a VT100 emulator fed the output so far)."""
        screen = pyte.Screen(200, 40)
        pyte.ByteStream(screen).feed(self.output)
        return screen

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen().display if line.strip()]

    @property
    def text(self) -> str:
        with self._lock:
            return self.output.decode("utf-8", "replace")

    def wait_for(self, predicate, what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.text):
                return
            if self._exited():
                raise AssertionError(f"the CLI exited ({self.status}) before {what}; output: {self.text[-2000:]!r}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; output so far: {self.text[-2000:]!r}")

    def _exited(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if not pid:
                return False
            self.status = os.waitstatus_to_exitcode(status)
            self._reader.join(timeout=10)
            os.close(self.fd)
        return True

    def wait(self, timeout: float = 90.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._exited():
                assert self.status is not None
                return self.status
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"the CLI did not exit; output: {self.text[-2000:]!r}")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLUMNS", "LINES")}
    return {**env, "PYTHONPATH": REPO, "TERM": "xterm-256color", **extra}


def _run_args(tmp_path, *more: str) -> list[str]:
    return ["run", str(tmp_path / "items.csv"), "--model", GATED, "--sink", str(tmp_path / "out.jsonl"), "--errors", str(tmp_path / "dlq.jsonl"),
            "--workers", "2", "--chunk-bytes", "4KiB", "--max-bytes-in-flight", "64KiB", *more]


def test_the_live_line_shows_every_field_while_the_run_goes_on(tmp_path):
    write_items_csv(tmp_path / "items.csv", 2_000, bad_every=100)
    gate = tmp_path / "gate"
    term = Terminal(_run_args(tmp_path), tmp_path, _env(GATE_FILE=str(gate), GATE_AFTER="1000"))
    try:
        # Records up to 1000 pass; then the run stands at the gate, with some rows done.
        term.wait_for(lambda t: "ETA" in t, "a live line with an ETA")
        assert not (tmp_path / "out.jsonl").exists()  # still running: nothing under the final name
        screen = term.screen()
        assert screen.cursor.hidden  # rich hid the cursor: a live display, redrawn in place
        (line,) = [s.rstrip() for s in screen.display if s.strip()]  # one line, however many redraws
        assert re.fullmatch(r"read [1-9][\d,]*  valid [\d,]+  invalid [\d,]+  [\d,]+ rows/s  in flight ━{16} [\d.]+ \w+/64\.0 KiB  "
                            r"blocked [\d.]+s  restarts 0  \d+% ETA \d+:\d\d", line), line
    finally:
        gate.touch()
    assert term.wait() == 0, term.text
    assert not term.screen().cursor.hidden  # the cursor is back
    lines = term.lines()
    assert re.fullmatch(r"read 2,000  valid 1,961  invalid 39  [\d,]+ rows/s  in flight ━{16} 0 B/64\.0 KiB  blocked [\d.]+s  restarts 0  100%",
                        lines[0]), lines
    assert lines[1].startswith("run ") and lines[1].split()[2] == "done:", lines  # the summary, on a line of its own
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 1_961


def test_ctrl_c_leaves_the_terminal_clean(tmp_path):
    write_items_csv(tmp_path / "items.csv", 2_000)
    gate = tmp_path / "gate"  # never opened: the run waits until Ctrl-C
    term = Terminal(_run_args(tmp_path), tmp_path, _env(GATE_FILE=str(gate), GATE_AFTER="500"))
    try:
        term.wait_for(lambda t: "ETA" in t, "a live line with an ETA")
        os.write(term.fd, b"\x03")  # Ctrl-C, typed: the terminal sends SIGINT to the foreground group
        status = term.wait()
    finally:
        gate.touch()
    assert status == 130, term.text
    assert "Traceback" not in term.text
    assert not term.screen().cursor.hidden  # the cursor is shown again
    # The warning went above the live line, the line's last state stays on its own line,
    # and the summary starts below it: nothing written over anything.
    lines = term.lines()
    assert lines[0] == "flowschema: SIGINT: stopping the run", lines
    assert re.fullmatch(r"read [\d,]+  valid [\d,]+  invalid 0  [\d,]+ rows/s  in flight ━{16} [\d.]+ \w+/64\.0 KiB  blocked [\d.]+s  "
                        r"restarts 0  \d+%", lines[1]), lines
    assert re.match(r"run \w+ INTERRUPTED", lines[2]), lines
    assert not (tmp_path / "out.jsonl").exists()


def _cli(tmp_path, *more: str) -> subprocess.CompletedProcess[str]:
    args = [str(tmp_path / "items.csv"), "--model", "tests.integration.pipeline_models:Item", "--sink", str(tmp_path / "out.jsonl"),
            "--errors", str(tmp_path / "dlq.jsonl"), "--executor", "inline", *more]
    return subprocess.run([sys.executable, "-m", "flowschema_core", "run", *args], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=120)


def test_stderr_to_a_pipe_gets_plain_lines_without_escape_codes(tmp_path):
    write_items_csv(tmp_path / "items.csv", 1_000, bad_every=100)
    done = _cli(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr and "\x1b" not in done.stdout
    lines = done.stderr.splitlines()
    assert re.fullmatch(r"flowschema: read 1,000 \(valid 981, invalid 19\), [\d,]+ rows/s, in flight 0 B of 244\.1 MiB, "
                        r"blocked [\d.]+ s, restarts 0, 100%", lines[-1]), done.stderr
    assert "read 1,000" in done.stdout  # the summary, as before


def test_plain_lines_come_every_so_often_while_the_run_goes_on(tmp_path, monkeypatch):
    write_items_csv(tmp_path / "items.csv", 300)
    gate = tmp_path / "gate"
    monkeypatch.setenv("GATE_FILE", str(gate))
    monkeypatch.setenv("GATE_AFTER", "100")
    from tests.integration.progress_models import GatedItem

    log = io.StringIO()
    lines = PlainLines(every=0.05, stream=log)
    pipeline = fs.Pipeline(fs.CSVSource(tmp_path / "items.csv"), GatedItem, fs.JSONLSink(tmp_path / "out.jsonl"), executor="inline",
                           chunk_bytes="1KiB", sample_interval=0.01, progress=lines)
    opener = threading.Thread(target=lambda: _wait_then(lambda: log.getvalue().count("\n") >= 3, gate.touch))
    opener.start()
    report = pipeline.run()
    opener.join()
    written = log.getvalue().splitlines()
    assert len(written) >= 4 and all(line.startswith("flowschema: read ") for line in written), written
    assert written[-1].startswith("flowschema: read 300 (valid 300, invalid 0), ") and report.rows_valid == 300


def _wait_then(condition, action, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    action()


def test_quiet_prints_nothing(tmp_path):
    write_items_csv(tmp_path / "items.csv", 1_000, bad_every=100)
    done = _cli(tmp_path, "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 981


@pytest.mark.parametrize("compress", [False, True])
def test_the_callback_gets_snapshots_whose_last_matches_the_report(tmp_path, compress):
    src = tmp_path / "items.csv"
    write_items_csv(src, 20_000, bad_every=100)
    if compress:
        src.with_suffix(".csv.gz").write_bytes(gzip.compress(src.read_bytes()))
        src = src.with_suffix(".csv.gz")
    snaps: list[ProgressSnapshot] = []
    report = fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "out.jsonl"), fs.JSONLSink(tmp_path / "dlq.jsonl"),
                         executor="process", chunk_bytes="16KiB", max_bytes_in_flight="64KiB", sample_interval=0.01,
                         progress=snaps.append).run()
    last = snaps[-1]
    assert [s.final for s in snaps].count(True) == 1 and last.final
    assert (last.rows_read, last.rows_valid, last.rows_invalid, last.rows_filtered) == \
        (report.rows_read, report.rows_valid, report.rows_invalid, report.rows_filtered) == (20_000, 19_601, 399, 0)
    assert last.worker_restarts == report.worker_restarts == 0
    assert last.blocked_s == pytest.approx(report.blocked_s)
    assert last.bytes_in_flight == 0 and last.max_bytes_in_flight == 64 * 1024
    # The input's size is known (compressed bytes for a .gz), so the fraction reaches 1.
    assert last.input_bytes_read == last.input_bytes_total == os.path.getsize(src)
    assert last.fraction_done == 1.0
    reads = [s.rows_read for s in snaps]
    assert reads == sorted(reads)
    with pytest.raises(dataclasses.FrozenInstanceError):
        last.rows_read = 0  # type: ignore[misc]


def test_a_source_of_unknown_size_has_no_eta(tmp_path):
    snaps: list[ProgressSnapshot] = []
    rows = [{"id": i, "name": f"n{i}", "price": "1.5"} for i in range(1, 101)]

    class Rows(fs.RecordSource):
        name = "rows"

        def records(self):
            yield from ((None, r) for r in rows)

    report = fs.Pipeline(Rows(), Item, fs.JSONLSink(tmp_path / "out.jsonl"), executor="inline", progress=snaps.append).run()
    assert report.rows_valid == 100 == snaps[-1].rows_valid
    assert snaps[-1].input_bytes_total is None and snaps[-1].fraction_done is None and snaps[-1].eta_s is None


def test_a_failing_callback_is_dropped_and_the_run_finishes(tmp_path, caplog):
    write_items_csv(tmp_path / "items.csv", 100)
    calls = []

    def broken(snap: ProgressSnapshot) -> None:
        calls.append(snap)
        raise RuntimeError("display gone")

    report = fs.Pipeline(fs.CSVSource(tmp_path / "items.csv"), Item, fs.JSONLSink(tmp_path / "out.jsonl"), executor="inline",
                         progress=broken).run()
    assert report.rows_valid == 100 and report.balanced
    assert len(calls) == 1
    assert "the progress callback raised RuntimeError: display gone" in caplog.text


def test_progress_must_be_a_bool_or_a_callable(tmp_path):
    write_items_csv(tmp_path / "items.csv", 1)
    with pytest.raises(fs.ConfigError, match="progress must be True, False or a callable"):
        fs.Pipeline(fs.CSVSource(tmp_path / "items.csv"), Item, fs.JSONLSink(tmp_path / "out.jsonl"), progress="yes")  # type: ignore[arg-type]
