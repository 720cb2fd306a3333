"""Read the output of the guest collection script (``guest/collect-crash-log.sh``).

The format (docs/PIPELINE.md, "The guest collection script")::

    CRASHDIAG-BEGIN 1
    context.<name>=<value>
    log.<name>=<value>
    CRASHDIAG-LOG
    <the log or a window of it, encoded as log.encoding>
    CRASHDIAG-END

Cloud Assistant keeps at most 24 KB of output: when ``CRASHDIAG-END`` is missing the
output was cut, and the result says ``truncated=True`` with as much of the payload as
could be decoded. Everything in the output comes from the guest and is untrusted: values
are kept as plain strings, and a compressed payload is never inflated past
``MAX_PAYLOAD`` bytes.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import TypedDict

BEGIN = b"CRASHDIAG-BEGIN"
LOG = b"CRASHDIAG-LOG"
END = b"CRASHDIAG-END"
VERSION = "1"
ENCODINGS = ("gzip+base64", "base64", "none")
MAX_PAYLOAD = 64 * 1024 * 1024  # a decoded excerpt is ~20 KB; refuse to inflate a bomb


class GuestOutput(TypedDict):
    version: str
    context: dict[str, str]  # "uname_r", "sysctl.vm.panic_on_oom", ... (prefix dropped)
    log: dict[str, str]  # "source", "path", "mtime", "size", "stale", "encoding", ...
    payload: bytes  # the decoded log or window
    truncated: bool  # CRASHDIAG-END missing: Cloud Assistant cut the output


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _unwrap_base64(lines: list[bytes], truncated: bool) -> bytes:
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


def parse_guest_output(output: str | bytes) -> GuestOutput:
    """Parse the script's stdout. Raises ``ValueError`` when it is not the script's output
    (no ``CRASHDIAG-BEGIN``, another version, a malformed header line, an undecodable
    payload); a missing ``CRASHDIAG-END`` is not an error but ``truncated=True``."""
    data = output.encode("utf-8", "surrogateescape") if isinstance(output, str) else bytes(output)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()

    start = next((i for i, line in enumerate(lines) if line.rstrip(b"\r").startswith(BEGIN)), None)
    if start is None:
        raise ValueError("no CRASHDIAG-BEGIN marker: not the collection script's output")
    version = _text(lines[start].rstrip(b"\r")[len(BEGIN):]).strip()
    if version != VERSION:
        raise ValueError(f"unsupported collection output version {version!r}")

    context: dict[str, str] = {}
    meta: dict[str, str] = {}
    i = start + 1
    log_at = None
    while i < len(lines):
        line = lines[i].rstrip(b"\r")
        if line == LOG:
            log_at = i
            break
        if line.startswith((BEGIN, END)):
            raise ValueError(f"unexpected {_text(line)!r} before CRASHDIAG-LOG")
        if line.strip():
            key, sep, value = _text(line).partition("=")
            if not sep:
                raise ValueError(f"malformed header line {_text(line)[:80]!r}")
            if key.startswith("context.") and len(key) > 8:
                context[key[8:]] = value
            elif key.startswith("log.") and len(key) > 4:
                meta[key[4:]] = value
            else:
                raise ValueError(f"unknown header key {key[:80]!r}")
        i += 1

    if log_at is None:  # cut inside the header
        return GuestOutput(version=version, context=context, log=meta, payload=b"", truncated=True)

    body = lines[log_at + 1:]
    while body and not body[-1].strip():
        body.pop()
    truncated = not (body and body[-1].rstrip(b"\r") == END)
    if not truncated:
        body = body[:-1]
    encoding = meta.get("encoding", "none")
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown payload encoding {encoding!r}")
    payload = _decode(encoding, body, truncated)
    return GuestOutput(version=version, context=context, log=meta, payload=payload, truncated=truncated)


__all__ = ["GuestOutput", "parse_guest_output", "MAX_PAYLOAD", "ENCODINGS"]
