"""Read the output of the guest collection script (``guest/collect-crash-log.sh``).

The format (docs/PIPELINE.md, "The guest collection script")::

    CRASHDIAG-BEGIN 2
    context.<name>=<value>
    log.<name>=<value>
    CRASHDIAG-LOG
    <the log or a window of it, encoded as log.encoding>
    CRASHDIAG-TAIL
    context.boot_time=<value>
    log.<name>=<value>            (the same description again)
    CRASHDIAG-END 2

The Cloud Assistant agent keeps 12,000 bytes of output: what it streamed while the command
ran (nothing, for a quick command, up to about 6 KB) and the end, dropping the middle
(``simulate.agent_output_cut`` cites its source). The script keeps its output under that,
so nothing is dropped; when something is anyway (``dropped`` > 0, or no ``CRASHDIAG-END``),
the description is read from the tail, which always survives, the payload is decoded as far
as it runs unbroken from ``CRASHDIAG-LOG``, and the result says ``truncated=True``.
Everything in the output comes from the guest and is untrusted: values are kept as plain
strings, and a compressed payload is never inflated past ``MAX_PAYLOAD`` bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from typing import TypedDict

BEGIN = b"CRASHDIAG-BEGIN"
LOG = b"CRASHDIAG-LOG"
TAIL = b"CRASHDIAG-TAIL"
END = b"CRASHDIAG-END"
UNPACK_FAILED = b"CRASHDIAG-UNPACK-FAILED"
VERSION = "2"
ENCODINGS = ("gzip+base64", "base64", "none")
MAX_PAYLOAD = 64 * 1024 * 1024  # a decoded excerpt is ~10 KB; refuse to inflate a bomb
_B64_LINE = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")


class GuestOutput(TypedDict):
    version: str
    context: dict[str, str]  # "uname_r", "boot_time", "sysctl.vm.panic_on_oom", ... (prefix dropped)
    log: dict[str, str]  # "source", "path", "mtime", "size", "stale", "encoding", ...
    payload: bytes  # the decoded log or window (as much as survived)
    truncated: bool  # output was cut: Dropped > 0 or CRASHDIAG-END missing


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _unbroken(lines: list[bytes]) -> list[bytes]:
    """The base64 lines before the first one that breaks the pattern (the seam where the
    agent dropped the middle): every line as long as the first, all base64 characters."""
    out: list[bytes] = []
    width = len(lines[0].strip()) if lines else 0
    for i, line in enumerate(lines):
        line = line.strip()
        if len(line) != width or not _B64_LINE.match(line):
            # a shorter last line is the stream's own end, not a seam
            if i == len(lines) - 1 and len(line) < width and _B64_LINE.match(line):
                out.append(line)
            break
        out.append(line)
    return out


def _unwrap_base64(lines: list[bytes], truncated: bool) -> bytes:
    if truncated:
        lines = _unbroken(lines)
    data = b"".join(line.strip() for line in lines)
    if truncated:
        data = data[: len(data) // 4 * 4]
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"payload is not valid base64: {exc}") from None


def _gunzip(data: bytes, truncated: bool) -> bytes:
    d = zlib.decompressobj(wbits=31)  # gzip container
    try:
        out = d.decompress(data, MAX_PAYLOAD)
        if d.unconsumed_tail:
            raise ValueError(f"payload inflates past {MAX_PAYLOAD} bytes")
        if truncated:
            return out
        out += d.flush()
    except zlib.error as exc:
        if truncated:
            return b""
        raise ValueError(f"payload is not a valid gzip stream: {exc}") from None
    if not d.eof:
        raise ValueError("payload gzip stream ends early")
    return out


def _decode(encoding: str, lines: list[bytes], truncated: bool) -> bytes:
    if encoding == "gzip+base64":
        raw = _unwrap_base64(lines, truncated)
        return _gunzip(raw, truncated) if raw else b""
    if encoding == "base64":
        return _unwrap_base64(lines, truncated)
    if encoding == "none":
        return b"\n".join(lines) + b"\n" if lines else b""
    raise ValueError(f"unknown payload encoding {encoding!r}")


def _header(lines: list[bytes], context: dict[str, str], meta: dict[str, str], strict: bool) -> None:
    """Read ``context.*`` and ``log.*`` lines into the two dicts."""
    for raw in lines:
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        key, sep, value = _text(line).partition("=")
        if not sep:
            if strict:
                raise ValueError(f"malformed header line {_text(line)[:80]!r}")
            continue
        if key.startswith("context.") and len(key) > 8:
            context[key[8:]] = value
        elif key.startswith("log.") and len(key) > 4:
            meta[key[4:]] = value
        elif strict:
            raise ValueError(f"unknown header key {key[:80]!r}")


def _find(lines: list[bytes], marker: bytes, start: int = 0, stop: int | None = None, last: bool = False) -> int | None:
    rng = range(start, len(lines) if stop is None else stop)
    for i in reversed(rng) if last else rng:
        if lines[i].rstrip(b"\r").startswith(marker):
            return i
    return None


def parse_guest_output(output: str | bytes, dropped: int = 0) -> GuestOutput:
    """Parse the script's stdout as DescribeInvocationResults returned it (``dropped`` is
    its Dropped). Raises ``ValueError`` when it is not the script's output (neither
    ``CRASHDIAG-BEGIN`` nor the tail, another version, a malformed header line in an uncut
    output, an undecodable payload); a cut output is not an error but ``truncated=True``."""
    data = output.encode("utf-8", "surrogateescape") if isinstance(output, str) else bytes(output)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if any(line.rstrip(b"\r") == UNPACK_FAILED for line in lines[:5]):
        raise ValueError("the guest could not unpack the collection script (it needs base64 and gzip)")

    start = _find(lines, BEGIN)
    end = _find(lines, END, last=True)
    tail = _find(lines, TAIL, stop=end, last=True) if end is not None else None
    if start is None and tail is None:
        raise ValueError("no CRASHDIAG-BEGIN marker: not the collection script's output")
    marker = lines[start] if start is not None else lines[end]  # type: ignore[index]
    version = _text(marker.rstrip(b"\r").split(b" ", 1)[1] if b" " in marker else b"").strip()
    if version != VERSION:
        raise ValueError(f"unsupported collection output version {version!r}")
    truncated = dropped > 0 or end is None or tail is None

    context: dict[str, str] = {}
    meta: dict[str, str] = {}
    log_at = _find(lines, LOG, start=start or 0, stop=tail)
    if start is not None:
        head_end = log_at if log_at is not None else (tail if tail is not None else len(lines))
        for line in lines[start + 1:head_end]:
            if line.rstrip(b"\r").startswith((BEGIN, END, TAIL)):
                raise ValueError(f"unexpected {_text(line.rstrip())!r} before CRASHDIAG-LOG")
        _header(lines[start + 1:head_end], context, meta, strict=not truncated)
    if tail is not None:
        # the tail's description is the final word (and all there is when the head was cut)
        _header(lines[tail + 1:end], context, meta, strict=not truncated)

    if log_at is None and not truncated:
        raise ValueError("no CRASHDIAG-LOG marker in an output that was not cut")
    if log_at is None and not (truncated and meta.get("encoding") == "none" and tail is not None):
        return GuestOutput(version=version, context=context, log=meta, payload=b"", truncated=True)
    first = log_at + 1 if log_at is not None else 0
    body = lines[first:tail if tail is not None else len(lines)]
    while body and not body[-1].strip():
        body.pop()
    encoding = meta.get("encoding", "none")
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown payload encoding {encoding!r}")
    payload = _decode(encoding, body, truncated)
    return GuestOutput(version=version, context=context, log=meta, payload=payload, truncated=truncated)


__all__ = ["GuestOutput", "parse_guest_output", "MAX_PAYLOAD", "ENCODINGS", "UNPACK_FAILED"]
