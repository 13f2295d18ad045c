"""A model whose validation waits at a gate: it holds a run in progress for as long as a
test needs to look at it (importable by worker processes)."""

from __future__ import annotations

import os
import time

from pydantic import field_validator

from tests.integration.pipeline_models import Item


class GatedItem(Item):
    """``Item`` that, for records with ``id > GATE_AFTER`` (env), waits until the file
    ``GATE_FILE`` (env) exists (at most 120 s): the records before it are written, the
    run then stands still until the test opens the gate."""

    @field_validator("id")
    @classmethod
    def _wait_at_gate(cls, value: int) -> int:
        gate, after = os.environ.get("GATE_FILE"), int(os.environ.get("GATE_AFTER", "0"))
        if gate and value > after:
            deadline = time.monotonic() + 120
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.01)
        return value
