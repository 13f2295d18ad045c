"""The wire format of chunks and results: msgpack, then LZ4, behind a 4-byte header.

::

    blob = b"FS" + version + flags  [+ allowance]  |  lz4.block(msgpack_payload)
           flags bit 0: compressed; bit 1: an 8-byte little-endian result allowance follows

The ledger counts ``len(msgpack_payload)``, the uncompressed size, because that is what a
worker holds in memory once it has decoded the chunk. The allowance is the most result
payload bytes the driver reserved for the chunk (:func:`with_allowance`): the reader puts
it in front of a blob the source already encoded, so the driver never re-encodes a chunk
to say it. Data never travels as pickle, so a
worker cannot be made to run code by the bytes it reads.

Values beyond msgpack's own types travel as extension types and come back exactly:
datetime (naive or aware), date, time, timedelta, Decimal, UUID and integers outside
64 bits.
Strings keep lone surrogates (``surrogatepass``), so odd Unicode never breaks a chunk.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import struct
import uuid
from typing import Any

import lz4.block
import msgpack

from .errors import CodecError

MAGIC = b"FS"
# 2: the result allowance (flags bit 1). A worker of version 1 would read those 8 bytes as
# the payload; a version mismatch is refused with a clear message instead.
VERSION = 2
_COMPRESSED = 1
_ALLOWANCE = 2
_HEADER = 4
_ALLOWANCE_FIELD = struct.Struct("<Q")
# Below this size LZ4 saves too little to pay for itself.
_MIN_COMPRESS = 512

_EXT_DATETIME = 1
_EXT_DATE = 2
_EXT_TIME = 3
_EXT_DECIMAL = 4
_EXT_UUID = 5
_EXT_BIGINT = 6
_EXT_TIMEDELTA = 7


def _default(obj: Any) -> Any:
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, obj.isoformat().encode())
    if isinstance(obj, dt.date):
        return msgpack.ExtType(_EXT_DATE, obj.isoformat().encode())
    if isinstance(obj, dt.timedelta):
        return msgpack.ExtType(_EXT_TIMEDELTA, f"{obj.days},{obj.seconds},{obj.microseconds}".encode())
    if isinstance(obj, dt.time):
        return msgpack.ExtType(_EXT_TIME, obj.isoformat().encode())
    if isinstance(obj, decimal.Decimal):
        return msgpack.ExtType(_EXT_DECIMAL, str(obj).encode())
    if isinstance(obj, uuid.UUID):
        return msgpack.ExtType(_EXT_UUID, obj.bytes)
    if isinstance(obj, int):  # only reached for ints msgpack cannot hold natively
        return msgpack.ExtType(_EXT_BIGINT, str(obj).encode())
    if isinstance(obj, enum.Enum):  # sinks store an enum member as its value
        return obj.value
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot encode a value of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_DATETIME:
        return dt.datetime.fromisoformat(data.decode())
    if code == _EXT_DATE:
        return dt.date.fromisoformat(data.decode())
    if code == _EXT_TIME:
        return dt.time.fromisoformat(data.decode())
    if code == _EXT_DECIMAL:
        return decimal.Decimal(data.decode())
    if code == _EXT_UUID:
        return uuid.UUID(bytes=data)
    if code == _EXT_TIMEDELTA:
        days, seconds, micros = (int(x) for x in data.decode().split(","))
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if code == _EXT_BIGINT:
        return int(data.decode())
    return msgpack.ExtType(code, data)


def pack(obj: Any) -> bytes:
    """Return the msgpack payload of ``obj`` (what the ledger counts)."""
    try:
        return msgpack.packb(
            obj, default=_default, use_bin_type=True, unicode_errors="surrogatepass",
            datetime=False,
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode chunk: {exc}") from exc


def unpack(payload: bytes) -> Any:
    """Inverse of :func:`pack`."""
    try:
        return msgpack.unpackb(
            payload, ext_hook=_ext_hook, raw=False, strict_map_key=False,
            unicode_errors="surrogatepass", use_list=True,
        )
    # Corrupt bytes surface as many types: a bad Decimal is an ArithmeticError, a list
    # used as a map key a TypeError. All mean the same thing here.
    except (ValueError, TypeError, ArithmeticError, msgpack.UnpackException) as exc:
        raise CodecError(f"cannot decode chunk: {type(exc).__name__}: {exc}") from exc


def frame(payload: bytes) -> bytes:
    """Wrap a msgpack payload for the wire: header, then LZ4 (when it is worth it)."""
    if len(payload) < _MIN_COMPRESS:
        return MAGIC + bytes((VERSION, 0)) + payload
    return MAGIC + bytes((VERSION, _COMPRESSED)) + lz4.block.compress(payload, store_size=True)


def with_allowance(blob: bytes, allowance: int | None) -> bytes:
    """The framed ``blob`` again, telling its worker that its result payload may be at
    most ``allowance`` bytes (None: no limit). One copy of the compressed bytes, no
    re-encoding."""
    start = _body_start(blob)
    flags = blob[3] & ~_ALLOWANCE
    if allowance is None:
        return b"".join((blob[:3], bytes((flags,)), memoryview(blob)[start:]))
    return b"".join((blob[:3], bytes((flags | _ALLOWANCE,)), _ALLOWANCE_FIELD.pack(allowance), memoryview(blob)[start:]))


def allowance_of(blob: bytes) -> int | None:
    """The result allowance :func:`with_allowance` put in ``blob`` (None: none)."""
    _body_start(blob)  # checks the header
    if blob[3] & _ALLOWANCE:
        return int(_ALLOWANCE_FIELD.unpack_from(blob, _HEADER)[0])
    return None


def _body_start(blob: bytes) -> int:
    """Where the (compressed) payload of a framed blob starts; checks the header."""
    if len(blob) < _HEADER or blob[:2] != MAGIC:
        raise CodecError("not a FlowSchema chunk (bad magic bytes)")
    if blob[2] != VERSION:
        raise CodecError(
            f"chunk has wire format version {blob[2]}, this FlowSchema speaks {VERSION}; "
            "install the same FlowSchema version on the driver and the workers"
        )
    if blob[3] & _ALLOWANCE:
        if len(blob) < _HEADER + _ALLOWANCE_FIELD.size:
            raise CodecError("corrupt chunk: its header announces a result allowance it does not hold")
        return _HEADER + _ALLOWANCE_FIELD.size
    return _HEADER


def unframe(blob: bytes) -> bytes:
    """Inverse of :func:`frame` (and of :func:`with_allowance`): return the msgpack payload."""
    body = memoryview(blob)[_body_start(blob):]
    if blob[3] & _COMPRESSED:
        try:
            return lz4.block.decompress(body)
        # A corrupt size prefix raises ValueError (too short) or MemoryError (too large).
        except (lz4.block.LZ4BlockError, ValueError, MemoryError) as exc:
            raise CodecError(f"corrupt chunk: {type(exc).__name__}: {exc}") from exc
    return bytes(body)


def encode(obj: Any) -> tuple[bytes, int]:
    """Return ``(blob, n)``: the wire blob and the msgpack payload length the ledger counts."""
    payload = pack(obj)
    return frame(payload), len(payload)


def decode(blob: bytes) -> Any:
    """Inverse of :func:`encode`."""
    return unpack(unframe(blob))
