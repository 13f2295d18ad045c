"""The sink interface, and the atomic-file helper the file sinks share.

Sinks are written from the driver, in source order. Workers deliver valid rows already
in the sink's ``output_form`` (``"jsonl"`` bytes, ``"csv"`` bytes or ``"python"`` value
lists in model field order), so the driver only copies them. ``write_records`` takes
plain dicts: that is how DLQ records arrive, so any sink can serve as the DLQ.

File outputs appear under their final name only on ``commit()`` (temp file, fsync,
rename); ``abort()`` removes the temp file, so an interrupted run leaves nothing
half-written under the final name. A run that was SIGKILLed cannot abort: its temp file
is named after its host and process id (``.NAME.HOST-PID-XXXXXXXX.tmp``), and the next
run of the same sink on the same host removes the temp files whose process is gone (:func:`remove_stale_temps`), and only
those: a run of the same sink still going in another process keeps its own.
"""

from __future__ import annotations

import abc
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import IO, Any

from pydantic import BaseModel

from .. import storage
from ..errors import ConfigError, SinkError

log = logging.getLogger("flowschema")


def _host() -> str:
    """This machine's name, as a file name part: a PID means something only on its host."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host"


def remove_path(path: str) -> None:
    """Remove a file or a directory tree if it is there (a temporary output)."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def temp_path(path: str | os.PathLike[str]) -> str:
    """A fresh temporary name beside ``path`` that says which host and process own it."""
    path = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def remove_stale_temps(path: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files (or directories) of ``path`` left by runs of this host
    whose process is gone (killed before they could clean up); return what was removed.
    Another host's (a shared volume) are left alone: its PIDs cannot be checked here."""
    import psutil

    path = os.path.abspath(os.fspath(path))
    directory, base = os.path.split(path)
    pattern = re.compile(rf"\.{re.escape(base)}\.{re.escape(_host())}-(\d+)-[0-9a-f]{{8}}\.tmp")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or int(match.group(1)) == os.getpid() or psutil.pid_exists(int(match.group(1))):
            continue
        stale = os.path.join(directory, name)
        try:
            shutil.rmtree(stale) if os.path.isdir(stale) else os.unlink(stale)
            removed.append(stale)
        except OSError:
            pass  # another run removed it first, or we may not: leave it
    if removed:
        log.warning("removed %d temporary file(s) of %s left by a run that was killed: %s", len(removed), path, ", ".join(removed))
    return removed


class Sink(abc.ABC):
    """Base class of every sink."""

    #: The form workers deliver valid rows in: "jsonl", "csv" or "python".
    output_form: str = "python"
    name: str = ""

    @abc.abstractmethod
    def open(self, fields: list[str], model: type[BaseModel] | None = None) -> None:
        """Prepare to receive rows with these fields (model is None for the DLQ)."""

    @abc.abstractmethod
    def write(self, data: Any) -> Sequence[tuple[int, str]] | None:
        """Write one chunk of valid rows, in ``output_form``.

        Return the rows the destination refused, as ``(position in data, reason)``
        pairs (a constraint violation, say); the driver sends them to the DLQ with stage
        ``sink``. The other rows of the chunk must still be written.
        """

    @abc.abstractmethod
    def write_records(self, records: list[dict[str, Any]]) -> None:
        """Write plain dict records (DLQ records)."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make everything written durable and visible under the final name."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard what was written since ``open``."""

    #: Permission bits the output may have at most (set before ``open``), so that a DLQ
    #: of a 0600 input, which holds its raw records, is 0600 too. None: the umask decides.
    mode_limit: int | None = None

    # -- checkpointing (optional) ----------------------------------------------------
    def open_resumable(self, fields: list[str], model: type[BaseModel] | None, key: str, state: dict[str, Any] | None) -> None:
        """Like ``open`` for a checkpointed run: write under a stable temporary name
        derived from ``key`` and, when ``state`` (from :meth:`checkpoint`) is given, go
        back to exactly that state, dropping anything written after it."""
        raise ConfigError(f"{type(self).__name__} does not support checkpoints; use a file sink or drop checkpoint=")

    def suspend(self) -> None:
        """Stop writing but keep the partial output, for a later resume (a checkpointed
        run that failed or was interrupted). Sinks that write as they go need nothing."""

    def finish_commit(self, key: str) -> None:
        """Complete a ``commit`` that a crash interrupted (after a checkpoint said the
        output was complete). Idempotent; sinks that write as they go need nothing."""

    def checkpoint(self) -> dict[str, Any]:
        """Make everything written so far durable; return what :meth:`open_resumable`
        needs to come back to this point (JSON-safe)."""
        raise ConfigError(f"{type(self).__name__} does not support checkpoints")

    #: A sink that commits each chunk in a transaction of its own (SQL) sets this: in a
    #: checkpointed run the driver then calls :meth:`commit_chunk` after every chunk, and
    #: the run's state travels in that transaction with the chunk's rows (exactly once).
    commits_chunks: bool = False

    def commit_chunk(self, state: dict[str, Any]) -> None:
        """Commit the chunk written since the last call together with ``state`` (the run's
        checkpoint state after that chunk), in one transaction."""

    def committed_state(self, key: str) -> dict[str, Any] | None:
        """The run state last committed by :meth:`commit_chunk` under ``key`` (before
        ``open_resumable``), or None."""
        return None


class RowSink(Sink):
    """A sink that takes valid rows as value lists in field order (``"python"`` form),
    such as Parquet and SQL; DLQ records reach it through the same ``write``."""

    output_form = "python"
    _fields: list[str]

    def write_records(self, records: list[dict[str, Any]]) -> None:
        refused = self.write([[r.get(f) for f in self._fields] for r in records])
        if refused:
            raise SinkError(f"{self.name}: could not write {len(refused)} DLQ records: {refused[0][1]}")


class AtomicFile:
    """A binary file written under a temporary name and renamed into place on commit.

    With ``key`` the temporary name is stable (``.NAME.KEY.part``) so a checkpointed run
    can reopen it after a crash; ``resume_length`` truncates it back to the length a
    checkpoint recorded, dropping whatever was written after that checkpoint.
    """

    def __init__(self, path: str | os.PathLike[str], *, key: str | None = None, resume_length: int | None = None,
                 mode_limit: int | None = None) -> None:
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create the directory for {self.path}: {exc.strerror}") from exc
        if key:
            self.tmp_path = os.path.join(directory, f".{os.path.basename(self.path)}.{key}.part")
        else:
            remove_stale_temps(self.path)
            self.tmp_path = temp_path(self.path)
        try:
            if resume_length is None:
                self.file: IO[bytes] = open(self.tmp_path, "wb")
            else:
                self.file = open(self.tmp_path, "r+b")
                self.file.truncate(resume_length)
                self.file.seek(resume_length)
            if mode_limit is not None:
                # Group and others get no more than the input gives them; the owner keeps
                # read-write, or a checkpoint of a read-only input could not resume.
                os.fchmod(self.file.fileno(), os.fstat(self.file.fileno()).st_mode & ((mode_limit & 0o077) | 0o700))
        except FileNotFoundError as exc:
            raise SinkError(f"cannot resume {self.path}: its partial output {self.tmp_path} is gone") from exc
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror}") from exc

    @staticmethod
    def finish(path: str | os.PathLike[str], key: str) -> None:
        """Rename a checkpointed partial file into place if a crash left it behind."""
        path = os.fspath(path)
        tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{key}.part")
        if os.path.exists(tmp):
            os.replace(tmp, path)
            _fsync_directory(os.path.dirname(os.path.abspath(path)))
        elif not os.path.exists(path):
            raise SinkError(f"cannot finish {path}: neither it nor its partial output {tmp} exists")

    # The file-like side (a storage.StagedOutput, so pyarrow can write into it too).
    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()

    def flush(self) -> None:
        self.file.flush()

    @property
    def closed(self) -> bool:
        return self.file.closed

    def close(self) -> None:
        """Close without renaming or deleting (the partial file stays for a resume)."""
        try:
            self.file.close()
        except OSError:
            pass

    def sync(self) -> int:
        """Flush and fsync; return the durable length."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            return self.file.tell()
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp_path, self.path)
        except OSError as exc:
            self.abort()
            raise SinkError(f"cannot commit {self.path}: {exc.strerror or exc}") from exc

    def abort(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass


class FileSink(Sink):
    """A sink writing one file through :class:`AtomicFile`: temp name until the run
    commits, and checkpoints as the file's durable length. Subclasses encode rows and call
    :meth:`_write_bytes`; ``_header`` (if any) is written once at the start.

    ``path`` may also be a URL (``s3://bucket/out.jsonl``, ``gs://…``, ``az://…``,
    ``file:///…``) written through fsspec with ``storage_options``: it appears only on
    commit as well (see :mod:`flowschema_core.storage`); checkpoints need a local path."""

    def __init__(self, path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | str | None = None) -> None:
        self.path = storage.local_path(path)
        self.name = storage.display(self.path)
        self.storage_options = storage.options(storage_options)
        self._file: storage.StagedOutput | None = None

    def _header(self, fields: list[str]) -> bytes:
        return b""

    def open(self, fields: list[str], model: type[BaseModel] | None = None) -> None:
        self._file = storage.open_output(self.path, self.storage_options, mode_limit=self.mode_limit)
        self._write_bytes(self._header(fields))

    def open_resumable(self, fields: list[str], model: type[BaseModel] | None, key: str, state: dict[str, Any] | None) -> None:
        refuse_remote_checkpoint(self.path)
        header = self._header(fields)  # always built: it may also set up the encoder
        self._file = AtomicFile(self.path, key=key, resume_length=state["length"] if state else None, mode_limit=self.mode_limit)
        if state is None:
            self._write_bytes(header)

    def _write_bytes(self, data: bytes) -> None:
        if self._file is None:
            raise SinkError(f"{self.path}: write before open()")
        try:
            self._file.write(data)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def checkpoint(self) -> dict[str, Any]:
        if not isinstance(self._file, AtomicFile):
            raise SinkError(f"{self.path}: checkpoint before open_resumable()")
        return {"length": self._file.sync()}

    def suspend(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def finish_commit(self, key: str) -> None:
        refuse_remote_checkpoint(self.path)
        self.suspend()  # close our handle on the partial file before it is renamed
        AtomicFile.finish(self.path, key)

    def commit(self) -> None:
        if self._file is not None:
            self._file.commit()
            self._file = None

    def abort(self) -> None:
        if self._file is not None:
            self._file.abort()
            self._file = None


def refuse_remote_checkpoint(path: str) -> None:
    """A checkpointed run resumes a partial local file; an object store has none to resume."""
    if storage.is_remote(path):
        raise ConfigError(f"{storage.display(path)}: checkpoint= needs a local sink (it resumes a partial file); "
                          "write to a local path and upload it afterwards, run without checkpoint=, or run on "
                          "RayExecutor(distributed=True), which checkpoints s3:// outputs by their committed ranges")


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (it lives in the directory entry)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
