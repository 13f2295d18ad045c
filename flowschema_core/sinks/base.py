"""The sink interface, and the atomic-file helper the file sinks share.

Sinks are written from the driver, in source order. Workers deliver valid rows already
in the sink's ``output_form`` (``"jsonl"`` bytes, ``"csv"`` bytes or ``"python"`` value
lists in model field order), so the driver only copies them. ``write_records`` takes
plain dicts: that is how DLQ records arrive, so any sink can serve as the DLQ.

File outputs appear under their final name only on ``commit()`` (temp file, fsync,
rename); ``abort()`` removes the temp file, so an interrupted run leaves nothing
half-written under the final name.
"""

from __future__ import annotations

import abc
import os
import uuid
from collections.abc import Sequence
from typing import IO, Any

from pydantic import BaseModel

from ..errors import SinkError


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


class AtomicFile:
    """A file written under a temporary name and renamed into place on commit."""

    def __init__(self, path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> None:
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create the directory for {self.path}: {exc.strerror}") from exc
        self.tmp_path = os.path.join(directory, f".{os.path.basename(self.path)}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.file: IO[Any] = open(self.tmp_path, mode, **kwargs)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror}") from exc

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
