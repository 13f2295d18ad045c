"""A real headless Chromium for the tests: render a page to a PNG, dump its DOM, collect its
console messages.

::

    chromium --headless --no-sandbox --disable-gpu --user-data-dir=<temp dir of its own>
             --enable-logging=stderr --v=0  (console messages go to stderr as ":CONSOLE:" lines)
             --screenshot=PATH | --dump-dom   file:///page.html
      └─ its own session (process group): killed as a whole in a finally, temp dir removed

Debian's ``chromium`` package (``.ci/install-system-deps.sh`` installs it). Without it the
tests skip, unless ``FLOWSCHEMA_CI=1``, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Generous: a cold Chromium start on a loaded 2-core machine takes seconds.
TIMEOUT_S = 180


def require_chromium() -> str:
    """The Chromium binary, or skip (fail under FLOWSCHEMA_CI=1)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    reason = "Chromium is not installed (apt-get install chromium, or run .ci/install-system-deps.sh)"
    if os.environ.get("FLOWSCHEMA_CI") == "1":
        pytest.fail(f"{reason} (FLOWSCHEMA_CI=1: CI must test the HTML report in a real browser)")
    pytest.skip(reason)


@dataclass
class Rendered:
    stdout: str
    console: list[str]  # the page's console messages (errors, warnings, logs)


def run_chromium(binary: str, page: Path, *args: str, window: tuple[int, int] = (1100, 1400)) -> Rendered:
    """Open ``page`` in a fresh headless Chromium with ``args`` (``--dump-dom``,
    ``--screenshot=PATH``); wait for it to exit; return its stdout and console lines."""
    profile = tempfile.mkdtemp(prefix="flowschema-chromium-")
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
        "--disable-extensions", "--disable-background-networking", "--hide-scrollbars", "--mute-audio",
        f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
        "--enable-logging=stderr", "--v=0", *args, page.resolve().as_uri(),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                               start_new_session=True, cwd=profile)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        if process.returncode != 0:
            raise AssertionError(f"chromium exited with {process.returncode}:\n{stderr[-3000:]}")
        return Rendered(stdout, [line for line in stderr.splitlines() if ":CONSOLE" in line])
    finally:
        # Chromium leaves helper processes (zygote, GPU, renderer) in its group: end them all.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
