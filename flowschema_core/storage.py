"""Where the bytes live: local paths, and object-store / web URLs read and written with fsspec.

::

    location ──local path (or file://)──► open() / AtomicFile (temp name, os.replace on commit)
        │
        └─ s3:// gs:// az:// https:// … ──► filesystem(url, storage_options): an fsspec filesystem
               open_input(url)   a seekable binary file: ranged GETs through a block cache
               size(url)         bytes, from one HEAD
               open_output(url)  a StagedOutput: write() … commit() | abort()
                   s3://    a multipart upload to the final key, completed on commit()
                            (MultipartUpload: parts from any process, completed by one)
                   others   a staging object beside the final one, moved into place on commit()

Nothing appears under an output's final name before ``commit()``; ``abort()`` (a failed or
stopped run) leaves nothing there. On S3 the output is a multipart upload because S3 shows
no object until ``CompleteMultipartUpload``: the commit is one request whatever the size,
no byte is copied twice, and the parts are what distributed writers can upload on their
own. A killed run cannot abort its upload: S3 keeps the invisible parts until a bucket
lifecycle rule (``AbortIncompleteMultipartUpload``) removes them.

Each backend is an optional extra, imported on first use: ``flowschema[s3]`` (s3fs),
``flowschema[gcs]`` (gcsfs), ``flowschema[azure]`` (adlfs), ``flowschema[remote]`` (fsspec
itself, and aiohttp for https files). A missing one raises
:class:`~flowschema_core.errors.MissingDependencyError` naming the ``pip install``; any
failure of the store (no such bucket or key, refused credentials, a lost connection)
becomes a :class:`~flowschema_core.errors.SourceError` or
:class:`~flowschema_core.errors.SinkError` naming the redacted URL, never a bare botocore
traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import posixpath
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .errors import ConfigError, FlowSchemaError, MissingDependencyError, SinkError, SourceError
from .redact import redact_text, redact_url

log = logging.getLogger(__name__)

#: URL schemes read through fsspec → (the extra that installs them, the package it needs).
SCHEMES: dict[str, tuple[str, str]] = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
    "az": ("azure", "adlfs"),
    "abfs": ("azure", "adlfs"),
    "abfss": ("azure", "adlfs"),
    "http": ("remote", "aiohttp"),
    "https": ("remote", "aiohttp"),
    "memory": ("remote", "fsspec"),  # fsspec's in-process store: handy in notebooks and tests
}
#: An ``http(s)://`` URL is a *file* (not the HTTP API source) when its path ends in one of
#: these, optionally followed by a compression suffix (``.csv.gz``); the query is ignored.
HTTP_FILE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
_COMPRESSION_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd")

#: Bytes fetched per ranged read of a remote input (fsspec's read-ahead block): the
#: sources read 1 MiB at a time, so 4 MiB keeps requests few without holding much.
READ_BLOCK = 4 << 20
#: The first part size of an S3 multipart upload (S3's minimum is 5 MiB, the last part
#: excepted). It grows by this much every 1,000 parts so 10,000 parts reach 440 GB.
PART_BYTES = 8 << 20


def scheme(location: str) -> str:
    """The URL scheme of ``location`` in lower case, or "" for a plain path."""
    head, sep, _ = location.partition("://")
    return head.lower() if sep else ""


def is_remote(location: str) -> bool:
    """True when ``location`` is a URL read and written through fsspec (not a local path)."""
    return scheme(location) in SCHEMES


def is_file_url(location: str) -> bool:
    """True when ``location`` is a URL naming a *file* whose extension says its format:
    an object-store or ``file://`` URL, or an ``http(s)://`` URL whose path ends in a data
    extension (:data:`HTTP_FILE_EXTENSIONS`). Other http(s) URLs are APIs (HTTPSource)."""
    kind = scheme(location)
    if kind in ("http", "https"):
        path = url_path(location).lower()
        for suffix in _COMPRESSION_SUFFIXES:
            path = path.removesuffix(suffix)
        return path.endswith(HTTP_FILE_EXTENSIONS)
    return kind == "file" or kind in SCHEMES


def url_path(location: str) -> str:
    """The path part of a URL (no query, no fragment), for telling its extension."""
    return urlsplit(location).path if "://" in location else location


def local_path(location: str | os.PathLike[str]) -> str:
    """``location`` as sources and sinks keep it: a ``file://`` URL becomes its local path
    (it is then an ordinary file, checkpoints and all); anything else is returned as is."""
    location = os.fspath(location)
    if scheme(location) == "file":
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{location}: a file:// URL names a file on this machine (file:///path), not on host {parts.netloc!r}")
        return unquote(parts.path)
    return location


def display(location: str) -> str:
    """How a location is shown (run report, DLQ ``source``, messages): URLs redacted."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    if "@" not in parts.netloc and not parts.query:
        return location  # nothing secret in it (and redact_url would re-quote an s3 path's "=")
    return redact_url(location)


def options(value: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """``storage_options`` as a dict; the CLI passes it as JSON text
    (``--source-option 'storage_options={"anon": true}'``)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"storage_options must be a JSON object, e.g. '{{\"anon\": true}}': {exc}") from exc
    if not isinstance(value, Mapping):
        raise ConfigError(f"storage_options must be a mapping of fsspec options, not {type(value).__name__}")
    return dict(value)


def filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem serving ``url`` and the path on it (imports the backend)."""
    kind = scheme(url)
    if kind not in SCHEMES:
        raise ConfigError(f"{display(url)}: not a storage URL FlowSchema reads with fsspec; known schemes: {', '.join(sorted(SCHEMES))}")
    extra, package = SCHEMES[kind]
    for needed, needed_extra in (("fsspec", "remote"), (package, extra)):
        if importlib.util.find_spec(needed) is None:
            raise MissingDependencyError(f"reading and writing {kind}:// URLs", needed_extra, needed)
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(url, **(storage_options or {}))  # type: ignore[no-any-return]
    except ImportError as exc:
        raise MissingDependencyError(f"reading and writing {kind}:// URLs", extra, getattr(exc, "name", None) or package) from exc
    except (TypeError, ValueError) as exc:  # an option the backend does not take
        raise ConfigError(f"{display(url)}: storage_options not accepted by the {kind}:// filesystem: {redact_text(str(exc))}") from exc


@contextlib.contextmanager
def translated(url: str, doing: str, error: type[FlowSchemaError]) -> Iterator[None]:
    """Turn whatever the store raised while ``doing`` (e.g. "cannot read") into ``error``
    naming the redacted URL and what to check; FlowSchema's own errors pass through."""
    try:
        yield
    except FlowSchemaError:
        raise
    except FileNotFoundError as exc:
        raise error(f"{doing} {display(url)}: not found ({_short(exc)}); check the bucket (container) and the key") from exc
    except PermissionError as exc:
        raise error(f"{doing} {display(url)}: access denied ({_short(exc)}); check the credentials (storage_options, or the "
                    "provider's environment variables such as AWS_ACCESS_KEY_ID) and the permissions on the bucket") from exc
    except Exception as exc:
        hint = "; no credentials were found: pass storage_options or set the provider's environment variables" if "Credentials" in type(exc).__name__ else ""
        raise error(f"{doing} {display(url)}: {type(exc).__name__}: {_short(exc)}{hint}") from exc


def _short(exc: BaseException) -> str:
    lines = redact_text(str(exc)).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


# -- reading ----------------------------------------------------------------------------


def size(url: str, storage_options: Mapping[str, Any] | None = None) -> int:
    """The size in bytes of the object at ``url``."""
    fs, path = filesystem(url, storage_options)
    with translated(url, "cannot read", SourceError):
        return int(fs.size(path))


#: What an object's metadata may say of its version, by store (S3, GCS, Azure, fsspec's own):
#: of its content first (the same bytes uploaded again are the same version), else the time
#: it was written.
_CONTENT_KEYS = ("ETag", "etag", "VersionId", "version_id", "generation", "md5Hash")
_TIME_KEYS = ("LastModified", "last_modified", "mtime", "created")


def identity(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Size and whatever version the store gives the object at ``url`` (an ETag, a
    generation, a modification time): what tells a changed object from the one a
    checkpoint was made of. A store that gives none refuses checkpoints of it."""
    fs, path = filesystem(url, storage_options)
    with translated(url, "cannot read", SourceError):
        fs.invalidate_cache(path)  # what the store holds now, not a listing of earlier
        info = fs.info(path)
        if info.get("type") == "directory":  # a prefix (a Parquet dataset): all its objects but hidden ones
            base = path.rstrip("/")
            found = {name: entry for name, entry in fs.find(base, detail=True).items() if not hidden(posixpath.relpath(name, base))}
            tree = [[name, int(found[name].get("size") or 0), _version(url, found[name])] for name in sorted(found)]
            digest = hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()
            return {"size": sum(size for _, size, _ in tree), "objects": len(tree), "digest": digest}
    return {"size": int(info.get("size") or 0), **_version(url, info)}


def hidden(relative: str) -> bool:
    """Whether a path relative to a dataset's root ("/" or the OS separator) is under a name
    starting with "." or "_" (a run's staging, ``_SUCCESS``, ``_metadata``): what a
    dataset's readers skip, and what a run may write beside its input while reading it."""
    return any(part.startswith((".", "_")) for part in relative.replace(os.sep, "/").split("/"))


def _version(url: str, info: Mapping[str, Any]) -> dict[str, str]:
    """An object's version as the store gives it: its content's when it can, else its write time."""
    version = {key: str(info[key]) for key in _CONTENT_KEYS if info.get(key) is not None}
    version = version or {key: str(info[key]) for key in _TIME_KEYS if info.get(key) is not None}
    if not version:
        raise ConfigError(f"{display(url)}: the store tells no version (ETag, generation or modification time) of this object, so a "
                          "checkpoint could not tell whether it changed before a resume; run without checkpoint=, or copy it locally")
    return version


def open_input(url: str, storage_options: Mapping[str, Any] | None = None, *, progress: Any = None) -> io.BufferedReader:
    """Open the object at ``url`` for binary reading: seekable, read in ranged requests of
    :data:`READ_BLOCK` bytes. Errors, on opening or on any later read, are SourceErrors.
    With ``progress`` (a ReadProgress) its total becomes the object's size and ``done``
    follows the bytes read."""
    fs, path = filesystem(url, storage_options)
    with translated(url, "cannot open", SourceError):
        f = fs.open(path, "rb", block_size=READ_BLOCK, cache_type="readahead")
    raw = _RemoteInput(f, url, progress)
    if progress is not None:
        progress.done = 0
        progress.total = getattr(f, "size", None)
    return io.BufferedReader(raw, buffer_size=1 << 20)


class _RemoteInput(io.RawIOBase):
    """An fsspec file as a raw stream whose errors are SourceErrors (a connection lost in
    the middle of a read is the store's failure, not a bug), counting bytes for progress."""

    def __init__(self, f: Any, url: str, progress: Any) -> None:
        super().__init__()
        self._f, self._url, self._progress = f, url, progress

    @property
    def name(self) -> str:
        return display(self._url)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with translated(self._url, "cannot read", SourceError):
            data = self._f.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._progress is not None:
            self._progress.done += n
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        with translated(self._url, "cannot read", SourceError):
            position = int(self._f.seek(offset, whence))
        if self._progress is not None:
            self._progress.done = position
        return position

    def tell(self) -> int:
        return int(self._f.tell())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._f.close()
        super().close()


# -- writing ----------------------------------------------------------------------------


class StagedOutput(Protocol):
    """An output written under a staging name, visible under its final name only once
    :meth:`commit` returns; :meth:`abort` discards it. File-like enough for pyarrow."""

    @property
    def closed(self) -> bool: ...

    def write(self, data: bytes) -> int: ...

    def tell(self) -> int: ...

    def flush(self) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


def open_output(location: str, storage_options: Mapping[str, Any] | None = None, *, mode_limit: int | None = None) -> StagedOutput:
    """A :class:`StagedOutput` for ``location``: a local path (a temp file renamed on
    commit, as the file sinks always did), an ``s3://`` URL (a multipart upload completed
    on commit) or another fsspec URL (a staging object moved into place on commit)."""
    location = local_path(location)
    if not is_remote(location):
        from .sinks.base import AtomicFile  # here: the sinks import this module

        return AtomicFile(location, mode_limit=mode_limit)
    kind = scheme(location)
    if kind in ("http", "https"):
        raise ConfigError(f"{display(location)}: FlowSchema cannot write to an http(s) URL; write to a file or an object store (s3://, gs://, az://)")
    if kind in ("s3", "s3a"):
        filesystem(location, storage_options)  # the extra is installed and the options are accepted: say so now, not at commit
        return MultipartOutput(location, storage_options)
    fs, path = filesystem(location, storage_options)
    return MovedOutput(fs, path, location)


@dataclass(frozen=True)
class MultipartUpload:
    """One S3 multipart upload, named by its URL and upload id: small and picklable, so
    parts can be uploaded from other processes (Ray actors) and completed by one.

    ``begin`` → ``upload_part`` (any process, any order; every part but the last at least
    5 MiB, numbers 1..10,000) → ``complete`` (the object appears, parts in number order)
    or ``abort`` (the parts are deleted). Errors are SinkErrors naming the URL.
    """

    url: str
    upload_id: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # credentials: never shown

    @classmethod
    def begin(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> MultipartUpload:
        """Start an upload to ``url`` (nothing is visible under it until :meth:`complete`)."""
        created = _s3_call(url, storage_options, "cannot write", "create_multipart_upload")
        return cls(url, created["UploadId"], dict(storage_options or {}))

    def upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        """Upload part ``number``; return what :meth:`complete` needs of it."""
        done = _s3_call(self.url, self.storage_options, "cannot write", "upload_part", UploadId=self.upload_id, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": done["ETag"]}

    def copy_part(self, number: int, source_url: str) -> dict[str, Any]:
        """Make part ``number`` a server-side copy of the object at ``source_url`` (same
        store, same credentials; no byte passes through this process): ``UploadPartCopy``."""
        fs, path = filesystem(source_url, self.storage_options)
        bucket, key, _ = fs.split_path(path)
        done = _s3_call(self.url, self.storage_options, "cannot write", "upload_part_copy", UploadId=self.upload_id, PartNumber=number,
                        CopySource={"Bucket": bucket, "Key": key})
        return {"PartNumber": number, "ETag": done["CopyPartResult"]["ETag"]}

    def complete(self, parts: Sequence[Mapping[str, Any]]) -> None:
        """Make the object appear, made of ``parts`` (from :meth:`upload_part`) in number order."""
        ordered = sorted(parts, key=lambda part: int(part["PartNumber"]))
        _s3_call(self.url, self.storage_options, "cannot commit", "complete_multipart_upload", UploadId=self.upload_id,
                 MultipartUpload={"Parts": [dict(part) for part in ordered]})

    def abort(self) -> None:
        """Delete the parts (best effort: an unreachable store keeps them invisible until a
        lifecycle rule removes them; the failure being handled is what the user must see, so
        this one is logged, not raised)."""
        try:
            _s3_call(self.url, self.storage_options, "cannot abort", "abort_multipart_upload", UploadId=self.upload_id)
        except Exception as exc:  # noqa: BLE001 - see above
            log.warning("%s (upload %s); S3 keeps its parts, invisible, until an AbortMultipartUpload or a lifecycle rule "
                        "removes them", exc if isinstance(exc, FlowSchemaError) else _short(exc), self.upload_id)


def _s3_call(url: str, storage_options: Mapping[str, Any] | None, doing: str, method: str, **kwargs: Any) -> Any:
    """One S3 API call on ``url``'s bucket and key, through s3fs's client."""
    fs, path = filesystem(url, storage_options)
    bucket, key, _ = fs.split_path(path)
    if not key:
        raise ConfigError(f"{display(url)}: give an object key after the bucket (s3://bucket/path/name.ext)")
    with translated(url, doing, SinkError):
        result = fs.call_s3(method, Bucket=bucket, Key=key, **kwargs)
    if method in ("complete_multipart_upload", "put_object"):
        fs.invalidate_cache(path)  # a later listing or size() must see the new object
    return result


class MultipartOutput:
    """An S3 object written as a :class:`MultipartUpload`, completed on :meth:`commit`.

    Bytes gather in one part buffer (:data:`PART_BYTES`, growing every 1,000 parts); each
    full part is uploaded as it fills, so memory stays one part whatever the size. Before
    ``CompleteMultipartUpload`` S3 shows nothing under the key (an object already there
    stays as it was); an output smaller than one part is sent by one ``PutObject`` at
    commit instead. :meth:`abort` sends ``AbortMultipartUpload``.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url, self._options = url, dict(storage_options or {})
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload: MultipartUpload | None = None
        self._written = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        if self.closed:
            raise SinkError(f"{display(self.url)}: write after commit or abort")
        self._buffer += data
        self._written += len(data)
        while len(self._buffer) >= self._part_size():
            size = self._part_size()
            self._upload_part(bytes(self._buffer[:size]))
            del self._buffer[:size]
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        """Nothing to do: a part goes up when it is full, the rest on commit."""

    def _part_size(self) -> int:
        return PART_BYTES * (1 + len(self._parts) // 1000)

    def _upload_part(self, body: bytes) -> None:
        if self._upload is None:
            self._upload = MultipartUpload.begin(self.url, self._options)
        self._parts.append(self._upload.upload_part(len(self._parts) + 1, body))

    def commit(self) -> None:
        if self.closed:
            return
        try:
            if self._upload is None:
                _s3_call(self.url, self._options, "cannot write", "put_object", Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._upload_part(bytes(self._buffer))
                self._upload.complete(self._parts)
                self._upload = None
        except BaseException:
            self.abort()
            raise
        self.closed = True
        self._buffer = bytearray()

    def abort(self) -> None:
        self.closed = True
        self._buffer = bytearray()
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.abort()

    def close(self) -> None:
        """Closing without :meth:`commit` discards: there is no partial upload to resume."""
        self.abort()


class MovedOutput:
    """An object written under a staging name beside its final one (``.NAME.XXXXXXXX.tmp``)
    and moved into place on :meth:`commit` (gs://, az://, memory:// …: fsspec's ``mv``, a
    server-side copy and delete on object stores); :meth:`abort` deletes the staging object."""

    def __init__(self, fs: Any, path: str, url: str) -> None:
        self._fs, self._path, self.url = fs, path, url
        self.staging = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
        with translated(url, "cannot write", SinkError):
            self._file = fs.open(self.staging, "wb")
        self.closed = False

    def write(self, data: bytes) -> int:
        with translated(self.url, "cannot write", SinkError):
            return int(self._file.write(data))

    def tell(self) -> int:
        return int(self._file.tell())

    def flush(self) -> None:
        """Nothing to do: the staging object is sent as it fills and on commit."""

    def commit(self) -> None:
        if self.closed:
            return
        try:
            with translated(self.url, "cannot commit", SinkError):
                self._file.close()
                self._fs.mv(self.staging, self._path)
        except BaseException:
            self.abort()
            raise
        self.closed = True

    def abort(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(Exception):
            self._fs.rm(self.staging)

    def close(self) -> None:
        """Closing without :meth:`commit` discards the staging object."""
        self.abort()
