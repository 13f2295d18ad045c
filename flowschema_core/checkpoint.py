"""Checkpoints: where a crashed run picks up again, exactly.

The driver writes results in source order, so "the first K chunks are in the sinks" is
a complete description of progress. At each checkpoint the driver

1. makes every sink durable and asks it for its state (a file sink: its length), then
2. atomically and durably replaces ``DIR/state.json`` (write temp, fsync, rename, fsync
   the directory) with K, the counts so far, and those sink states.

A resumed run skips the first K chunks of the source (chunking is deterministic for the
same input and config, which the fingerprint pins down) -- or, for a source that can
seek (an SQL source with a key), starts reading after the position saved with K
(``source_position``: the last key) -- reopens every sink at its
recorded state (a file sink truncates away what was written after the checkpoint) and
carries on. Finishing is two-phase: the state says ``finalizing`` before the sinks
rename their files into place and ``done`` after, so a crash in between completes on
the next run instead of losing or doubling output.

A sink that commits as it writes (SQL) cannot be truncated back to K. Such a sink
(``commits_chunks``) gets the same state after *every* chunk and commits it in the
chunk's own transaction (a row of its ``flowschema_checkpoint`` table), after the DLQ
records of that chunk were made durable. So the database always holds exactly the rows
of the chunks its state row counts; a resume takes that state when it is ahead of
``state.json`` (:func:`newest_state`) and goes on from there: exactly once, no upsert
key needed.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from . import storage
from .errors import CheckpointError

if TYPE_CHECKING:
    from .pipeline import Pipeline

STATE_FILE = "state.json"
FORMAT = 1


class CheckpointStore:
    """Reads and durably writes ``state.json`` in a checkpoint directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        self.path = os.path.join(self.directory, STATE_FILE)
        #: Stable per checkpoint: names the sinks' partial files so a resume finds them.
        self.key = hashlib.sha256(self.directory.encode()).hexdigest()[:10]

    def load(self) -> dict[str, Any] | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {self.path} is unreadable ({exc}); delete {self.directory} to start over") from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {self.path} has an unknown format; delete {self.directory} to start over")
        return state

    def save(self, state: dict[str, Any]) -> None:
        os.makedirs(self.directory, exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({**state, "format": FORMAT}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself must survive a power cut
        finally:
            os.close(fd)


#: RunReport fields a checkpoint carries over to the resumed run (a checkpoint written
#: before one was added resumes with that one at its default).
PROGRESS_FIELDS = ("rows_read", "rows_valid", "rows_invalid", "rows_filtered", "invalid_by_stage", "chunks", "bytes_read",
                   "result_bytes", "result_splits")


def fingerprint(pipeline: Pipeline) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: input, model, outputs, chunking, hooks."""
    source = dict(pipeline.source.fingerprint())
    path = getattr(pipeline.source, "path", None)
    if isinstance(path, str) and storage.is_remote(path):  # a changed object must not resume either
        source.update(storage.identity(path, getattr(pipeline.source, "storage_options", None)))
    elif isinstance(path, str):
        source.update(file_identity(path))
    current = {
        "source": source,
        "model": model_digest(pipeline.model),
        "sink": [type(pipeline.sink).__name__, pipeline.sink.name, pipeline.sink.output_form],
        "errors": [type(pipeline.errors).__name__, pipeline.errors.name],
        "chunk_bytes": pipeline.chunk_bytes,
        "hooks": [h.name for h in pipeline.hooks],
    }
    return json.loads(json.dumps(current, default=str))  # as it will read back


def load_state(store: CheckpointStore, current: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state, if any, once checked to belong to the run whose fingerprint is ``current``."""
    state = store.load()
    if state is not None:
        check_fingerprint(state["fingerprint"], current, store.directory)
    return state


def make_state(fingerprint: dict[str, Any], *, phase: str, run_id: str, chunks_done: int, sinks: list[Any], report: dict[str, Any],
               source_position: Any = None) -> dict[str, Any]:
    """A run's position: ``phase`` is running, finalizing or done."""
    return {"phase": phase, "run_id": run_id, "fingerprint": fingerprint, "chunks_done": chunks_done, "sinks": sinks, "report": report,
            "source_position": source_position, "format": FORMAT}


def save_state(store: CheckpointStore, fingerprint: dict[str, Any], *, phase: str, run_id: str, chunks_done: int,
               sinks: list[Any], report: dict[str, Any], source_position: Any = None) -> None:
    """Durably record a run's position (see :func:`make_state`)."""
    store.save(make_state(fingerprint, phase=phase, run_id=run_id, chunks_done=chunks_done, sinks=sinks, report=report,
                          source_position=source_position))


def newest_state(saved: dict[str, Any] | None, committed: dict[str, Any] | None) -> dict[str, Any] | None:
    """``state.json``'s state, or the one a sink committed with its last chunk when that
    one is of the same run and further on (the run died between two ``state.json`` saves)."""
    if saved is None or committed is None or saved["phase"] != "running":
        return saved
    if committed.get("run_id") != saved["run_id"] or committed.get("fingerprint") != saved["fingerprint"]:
        return saved  # left by another run under the same key: open_resumable resets it
    return committed if committed["chunks_done"] > saved["chunks_done"] else saved


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], directory: str) -> None:
    """Refuse to resume a checkpoint written for another source, model or config."""
    differing = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differing:
        hint = (" (whether an Excel workbook is read by the fast reader depends on max_bytes_in_flight and the workers: "
                "resume with the same ones, or pass reader='fast' or reader='openpyxl')") if "worker_context" in differing else ""
        raise CheckpointError(
            f"checkpoint {directory} belongs to a different run (differs in: {', '.join(differing)}){hint}; "
            f"resuming would mix outputs. Use the same source, model and options, or delete {directory} to start over"
        )


def model_digest(model: type) -> str:
    """A digest of the model's schema: a changed model must not resume an old run."""
    try:
        text = json.dumps(model.model_json_schema(), sort_keys=True)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - schemas of exotic types: fall back to field reprs
        text = repr(sorted((k, repr(v)) for k, v in model.model_fields.items()))  # type: ignore[attr-defined]
    return hashlib.sha256(f"{model.__qualname__}:{text}".encode()).hexdigest()[:16]


def file_identity(path: str) -> dict[str, Any]:
    """Size and modification time of a local input (a changed file must not resume)."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def fault_point(name: str) -> None:
    """Die here when ``FLOWSCHEMA_FAULT`` names this point (fault-injection tests only).

    ``FLOWSCHEMA_FAULT=checkpoint-commit:3`` SIGKILLs the driver during its 3rd
    checkpoint, after the sinks are durable and before the state is replaced.
    """
    spec = os.environ.get("FLOWSCHEMA_FAULT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == int(count or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_FAULT_COUNTS: dict[str, int] = {}
