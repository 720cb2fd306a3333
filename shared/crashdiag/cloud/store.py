"""Where incidents live: an object store with OSS semantics.

``ObjectStore`` is the interface the pipeline uses. ``LocalStore`` keeps objects in a
directory (the embedded default for replay); ``OssStore`` (in ``oss_store.py``) talks
to Alibaba Cloud OSS through ``oss2``.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

T = TypeVar("T")


class StoreError(Exception):
    """Base of the store's errors."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    """A write with if_absent=True found the key taken (OSS 409 FileAlreadyExists)."""


class StoreUnavailable(StoreError):
    """A transient failure (5xx, timeout, connection reset): the call may be retried."""


class StoreRefused(StoreError):
    """The service refused the request (a 4xx such as 403 AccessDenied or
    SignatureDoesNotMatch): credentials, signature, permissions or configuration are
    wrong, and retrying will not help. The message says what to check."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


_KEY = re.compile(r"^[A-Za-z0-9!_.*'()/=+-]{1,1023}$")


def check_key(key: str) -> str:
    """Keys are built from validated fields only; refuse anything that could escape."""
    if not _KEY.match(key) or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"unsafe object key: {key!r}")
    return key


RETRY_ATTEMPTS = 5
RETRY_MULTIPLIER = 0.2  # seconds; the n-th wait is at most min(RETRY_MAX_WAIT, RETRY_MULTIPLIER * 2**(n-1))
RETRY_MAX_WAIT = 3.0


def worst_case_seconds(request_timeout: float) -> float:
    """The longest one retried store call can take (docs/PIPELINE.md, time budgets): every
    try times out connecting and again reading (the client's timeout bounds each), plus
    the longest waits between tries."""
    waits = sum(min(RETRY_MAX_WAIT, RETRY_MULTIPLIER * 2 ** (n - 1)) for n in range(1, RETRY_ATTEMPTS))
    return RETRY_ATTEMPTS * 2 * request_timeout + waits


def retry_transient(fn: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    """Call a store operation, retrying transient failures (5xx, timeouts, resets) with
    backoff and jitter, RETRY_ATTEMPTS in all; other errors pass straight through."""
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_random_exponential,
    )

    for attempt in Retrying(
        retry=retry_if_exception_type(StoreUnavailable),
        wait=wait_random_exponential(multiplier=RETRY_MULTIPLIER, max=RETRY_MAX_WAIT),
        stop=stop_after_attempt(RETRY_ATTEMPTS),
        sleep=sleep,
        reraise=True,
    ):
        with attempt:
            return fn()
    raise AssertionError("unreachable: Retrying returns or raises")  # pragma: no cover


def check_prefix(prefix: str) -> str:
    """A key prefix ending in '/', held to the same rules as a key."""
    if not prefix.endswith("/"):
        raise ValueError(f"a prefix ends with '/': {prefix!r}")
    check_key(prefix[:-1])
    return prefix


# Reads of one object in pieces go this many bytes at a time, so a stage holds at most one
# piece (plus what it keeps) whatever the object's size.
READ_CHUNK = 1024 * 1024


def check_range(start: int, length: int) -> None:
    if start < 0 or length < 0:
        raise ValueError(f"a byte range starts at 0 or later and has a length of 0 or more, not {start}+{length}")


def copy_bounded(read: Callable[[int], bytes], out: BinaryIO, max_bytes: int | None = None) -> int:
    """Copy from ``read`` into ``out`` READ_CHUNK at a time, ``max_bytes`` at most; returns
    the number of bytes written. What ``read`` hands back past what was asked is dropped."""
    written = 0
    while max_bytes is None or written < max_bytes:
        want = READ_CHUNK if max_bytes is None else min(READ_CHUNK, max_bytes - written)
        piece = read(want)
        if not piece:
            break
        piece = piece[:want]
        out.write(piece)
        written += len(piece)
    return written


def read_bounded(read: Callable[[int], bytes], length: int) -> bytes:
    """At most ``length`` bytes of ``read``, asked for piece by piece: what a ranged read
    keeps whatever the server sends."""
    buf = bytearray()
    while len(buf) < length:
        piece = read(min(READ_CHUNK, length - len(buf)))
        if not piece:
            break
        buf += piece[: length - len(buf)]
    return bytes(buf)


class Skipping:
    """A reader over ``read`` whose first ``skip`` bytes are dropped, a piece at a time (a
    server that ignored a range sends the object from its start)."""

    def __init__(self, read: Callable[[int], bytes], skip: int) -> None:
        self._read, self._skip, self._pending = read, skip, b""

    def read(self, n: int) -> bytes:
        while self._skip > 0:
            piece = self._read(min(READ_CHUNK, self._skip))
            if not piece:
                self._skip = 0
                return b""
            if len(piece) > self._skip:  # more than asked: the rest is wanted data
                self._pending = piece[self._skip:]
            self._skip = max(0, self._skip - len(piece))
        if self._pending:
            out, self._pending = self._pending[:n], self._pending[n:]
            return out
        return self._read(n)


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes | BinaryIO, *, content_type: str = "application/octet-stream",
            if_absent: bool = False) -> None: ...
    def get(self, key: str) -> bytes: ...
    def size(self, key: str) -> int: ...
    def get_range(self, key: str, start: int, length: int) -> bytes: ...
    def get_to_file(self, key: str, out: BinaryIO, max_bytes: int | None = None, start: int = 0) -> int: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def url(self, key: str, ttl: int) -> str: ...
    def put_url(self, key: str, ttl: int) -> str | None: ...


class LocalStore:
    """Objects as files under ``root``; ``if_absent`` is atomic (O_EXCL on a temp link)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes | BinaryIO, *, content_type: str = "application/octet-stream",
            if_absent: bool = False) -> None:
        """Write ``data`` (bytes, or a binary file read from where it stands to its end)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(data, bytes | bytearray | memoryview):
                    f.write(data)
                else:
                    copy_bounded(data.read, f)
            if if_absent:
                try:
                    os.link(tmp, path)  # fails if the key exists, atomically
                except FileExistsError:
                    raise AlreadyExists(key) from None
            else:
                os.replace(tmp, path)
                tmp = ""
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(key) from None

    def size(self, key: str) -> int:
        """The object's length in bytes, without reading it."""
        try:
            path = self._path(key)
            if not path.is_file():
                raise NotFound(key)
            return path.stat().st_size
        except FileNotFoundError:
            raise NotFound(key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """At most ``length`` bytes from offset ``start`` (b"" past the end)."""
        check_range(start, length)
        try:
            with self._path(key).open("rb") as f:
                f.seek(start)
                return f.read(length)
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(key) from None

    def get_to_file(self, key: str, out: BinaryIO, max_bytes: int | None = None, start: int = 0) -> int:
        """Copy the object from offset ``start`` (``max_bytes`` at most) into ``out`` piece by
        piece; returns the number of bytes written."""
        check_range(start, max_bytes or 0)
        try:
            with self._path(key).open("rb") as f:
                f.seek(start)
                return copy_bounded(f.read, out, max_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is fine (OSS DeleteObject answers 204 either way)."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def list(self, prefix: str) -> list[str]:
        # Walk only the deepest folder the prefix names, not the whole store: the pipeline
        # lists one incident's state/ many times.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if folder:
            check_key(folder)
        start = self.root / folder if folder else self.root
        if not start.is_dir():
            return []
        out = []
        for p in start.rglob("*"):
            if p.is_file() and not p.name.startswith(".tmp-"):
                k = p.relative_to(self.root).as_posix()
                if k.startswith(prefix):
                    out.append(k)
        return sorted(out)

    def url(self, key: str, ttl: int) -> str:
        return self._path(key).resolve().as_uri()

    def put_url(self, key: str, ttl: int) -> str | None:
        return None
