"""Compressed inputs (``orders.csv.gz``, ``.bz2``, ``.xz``, ``.zst``), read as streams.

The compression is recognised by its magic bytes (whatever the file is called), so the
sources read the decompressed stream as if it were the file: chunks are cut on the
decompressed bytes and the byte budget counts decompressed bytes. Nothing is unpacked to
disk and memory does not grow with the file.
"""

from __future__ import annotations

from typing import IO, Any

from ..errors import MissingDependencyError

#: File-name suffixes that name a compression, not a format (``orders.csv.gz`` is CSV).
SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd")

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def detect(head: bytes) -> str | None:
    """The compression whose magic bytes start ``head``, or None."""
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def open_decompressed(raw: IO[bytes], kind: str) -> IO[bytes]:
    """A binary stream of the decompressed bytes of ``raw`` (positioned at its start)."""
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "bz2":
        import bz2

        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    try:
        import zstandard
    except ImportError as exc:
        raise MissingDependencyError("reading a zstd-compressed file", "zstd", "zstandard") from exc
    reader: Any = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    return reader  # type: ignore[no-any-return]
