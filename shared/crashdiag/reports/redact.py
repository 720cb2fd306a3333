"""CRASHDIAG_REDACT: hide what identifies a machine before a report is stored or sent.

IP addresses (v4 and v6), host names (from syslog prefixes, kdump directory names and the
guest context) and the kernel command line (it can carry root device UUIDs, passwords
given to initramfs scripts, cloud-init seeds) are replaced by placeholders. Kernel
symbols, module names and versions are kept: the diagnosis needs them.
"""

from __future__ import annotations

import re
from typing import Any

_IPV4 = re.compile(r"(?<![\w.])(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?![\w.])")
# Candidates only; ipaddress decides (times like 10:00:01 and "0018:ffff8820c2b9fd18" are not).
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?![\w:])")
# "Nov 26 10:00:01 web-01 kernel:" / "2026-11-26T10:00:01+0800 web-01 kernel:"
_SYSLOG_HOST = re.compile(r"^((?:[^\W\d_]{3,5}\.?\s+\d{1,2}\s+\d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\d[T ][\d:.,+-]+Z?)\s+)(\S+)(\s+\S+?(?:\[\d+\])?:)")
CMDLINE_KEYS = ("cmdline", "crashkernel_cmdline")


def redact_text(text: str, hostnames: tuple[str, ...] = ()) -> str:
    text = _SYSLOG_HOST.sub(lambda m: f"{m.group(1)}<host>{m.group(3)}", text)
    text = _IPV4.sub("<ip>", text)
    text = _IPV6_CANDIDATE.sub(_ipv6, text)
    for name in hostnames:
        if name and len(name) >= 3:
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", "<host>", text)
    return text


def _ipv6(m: re.Match[str]) -> str:
    import ipaddress

    token = m.group(0)
    try:
        ipaddress.IPv6Address(token.split("%", 1)[0])
    except ValueError:
        return token
    return "<ip>"


def _walk(obj: Any, hostnames: tuple[str, ...]) -> Any:
    if isinstance(obj, str):
        return redact_text(obj, hostnames)
    if isinstance(obj, list):
        return [_walk(x, hostnames) for x in obj]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in CMDLINE_KEYS and isinstance(v, str) and v:
                out[k] = "<redacted>"
            else:
                out[k] = _walk(v, hostnames)
        return out
    return obj


def redact_report(report: dict[str, Any]) -> dict[str, Any]:
    """A copy of a report with IPs, host names and the kernel command line hidden."""
    ctx = report.get("guest_context") or {}
    hostnames = tuple(h for h in (ctx.get("hostname"), ctx.get("fqdn"), (report.get("incident") or {}).get("instance_name")) if h)
    red = _walk(report, hostnames)
    red["redacted"] = True
    return red


def redact_log(data: bytes, hostnames: tuple[str, ...] = ()) -> bytes:
    text = data.decode("utf-8", "replace")
    return "\n".join(redact_text(line, hostnames) for line in text.split("\n")).encode()
