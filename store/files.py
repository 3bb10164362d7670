"""File access under a runs root that is a local folder or an fsspec URL (``s3://bucket/prefix``).

Local paths go straight to ``os`` (writes are atomic: a temporary file, fsync, rename). URLs
go through fsspec; an object store's PUT is atomic by itself. Storage options come from
``$TDW_STORAGE_OPTIONS`` (a JSON object, e.g. ``{"endpoint_url": "http://127.0.0.1:9000"}``)
on top of the filesystem's own configuration (for S3: the usual ``AWS_*`` variables).
Listings are never cached, so a run written by another process is seen at once.
"""

from __future__ import annotations

import json
import os
import shutil
import re

ENV_OPTIONS = "TDW_STORAGE_OPTIONS"


class StorageError(ValueError):
    """Storage options that cannot be used (e.g. ``$TDW_STORAGE_OPTIONS`` is not JSON)."""


def is_url(path: str) -> bool:
    """True for fsspec URLs such as ``s3://bucket/prefix`` (``file://`` counts as local)."""
    return "://" in str(path) and not str(path).startswith("file://")


def local(path: str) -> str:
    """A local path without a ``file://`` prefix."""
    return path[len("file://"):] if str(path).startswith("file://") else path


# Per protocol: s3fs reads a whole object in one GET instead of a HEAD (its size) and then the
# GET; it splits only objects over 50 MB, which the workbench never writes.
_DEFAULTS = {"s3": {"max_concurrency": 1}, "s3a": {"max_concurrency": 1}}


def storage_options(path: str | None = None) -> dict:
    """Options for the filesystem of ``path``: listings uncached and the protocol's defaults,
    then ``$TDW_STORAGE_OPTIONS``."""
    text = os.environ.get(ENV_OPTIONS, "").strip()
    try:
        extra = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise StorageError(f"${ENV_OPTIONS} is not a JSON object ({exc.msg})") from None
    if not isinstance(extra, dict):
        raise StorageError(f"${ENV_OPTIONS} must be a JSON object, got {type(extra).__name__}")
    protocol = str(path).partition("://")[0] if path and "://" in str(path) else ""
    return {"use_listings_cache": False, **_DEFAULTS.get(protocol, {}), **extra}


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def check_url(url: str) -> str:
    """A runs-root URL that can work: a protocol fsspec knows, and for S3 a valid bucket name
    (``s3://bucket[/prefix]``). Raises :class:`StorageError` saying what is wrong."""
    from fsspec.registry import known_implementations

    protocol, _, rest = url.partition("://")
    if protocol not in known_implementations:
        raise StorageError(f"runs root {url}: unknown storage protocol {protocol!r} (e.g. s3://bucket/prefix)")
    bucket = rest.split("/", 1)[0]
    if protocol in ("s3", "s3a", "gs", "gcs") and not _BUCKET.match(bucket):
        raise StorageError(f"runs root {url}: {bucket!r} is not a valid bucket name (want {protocol}://bucket/prefix)")
    return url


def filesystem(path: str):
    """``(fs, path without protocol)`` for a URL (fsspec caches the instance per options)."""
    from fsspec.core import url_to_fs

    return url_to_fs(check_url(path), **storage_options(path))


def exists(path: str) -> bool:
    if not is_url(path):
        return os.path.exists(local(path))
    fs, p = filesystem(path)
    return fs.exists(p)


def isfile(path: str) -> bool:
    if not is_url(path):
        return os.path.isfile(local(path))
    fs, p = filesystem(path)
    return fs.isfile(p)


def isdir(path: str) -> bool:
    """A folder (on an object store: a prefix with at least one object under it)."""
    if not is_url(path):
        return os.path.isdir(local(path))
    fs, p = filesystem(path)
    return fs.isdir(p)


def listdir(path: str) -> list[str]:
    """Names directly under ``path`` (empty when it does not exist)."""
    if not is_url(path):
        return os.listdir(local(path)) if os.path.isdir(local(path)) else []
    fs, p = filesystem(path)
    try:
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(p, detail=False)]
    except FileNotFoundError:
        return []


def makedirs(path: str) -> None:
    """Create a local folder and its parents (object stores have no folders: nothing to do)."""
    if not is_url(path):
        os.makedirs(local(path), exist_ok=True)


def read_bytes(path: str, start: int | None = None, end: int | None = None) -> bytes:
    """The file's bytes, or the range ``start .. end-1``."""
    if not is_url(path):
        with open(local(path), "rb") as f:
            if start is None:
                return f.read()
            f.seek(start)
            return f.read(None if end is None else end - start)
    fs, p = filesystem(path)
    return fs.cat_file(p, start=start, end=end)


def size(path: str) -> int:
    if not is_url(path):
        return os.path.getsize(local(path))
    fs, p = filesystem(path)
    return int(fs.size(p))


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` whole or not at all: locally via a temporary file, fsync and rename; on an
    object store one PUT (atomic by itself)."""
    if is_url(path):
        fs, p = filesystem(path)
        fs.pipe_file(p, data)
        return
    path = local(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.partial"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_text(path: str) -> str:
    return read_bytes(path).decode()


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode())


def remove(path: str) -> None:
    if not is_url(path):
        os.remove(local(path))
        return
    fs, p = filesystem(path)
    fs.rm_file(p)


def rmtree(path: str) -> None:
    """Delete a folder and everything under it (a prefix on an object store)."""
    if not is_url(path):
        shutil.rmtree(local(path))
        return
    fs, p = filesystem(path)
    fs.rm(p, recursive=True)
