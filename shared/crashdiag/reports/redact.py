"""What identifies a machine, or unlocks it, is hidden before a report is stored or sent.

Always (whatever CRASHDIAG_REDACT says): secrets given on a kernel command line, the value
of any ``password=``, ``passwd=``, ``pwd=``, ``*secret=``, ``*key=`` or ``*token=``
parameter (``rd.luks.key=``, ``api_token=``), become ``<redacted>`` (``mask_secrets``).

With CRASHDIAG_REDACT (``redact_report``, ``redact_log``): IP addresses (v4 and v6), host
names (syslog prefixes, the guest's host name and FQDN, the instance name and host name
from ECS) and the whole kernel command line (it can carry root device UUIDs, cloud-init
seeds) become ``<ip>``, ``<host>``, ``<redacted>``. Kernel symbols, module names and
versions are kept: the diagnosis needs them.

Every pattern runs on RE2 (``classifier.regex``) and candidates are checked by plain code,
so the time is linear in the text: a log line is written by whoever had root on the guest.
"""

from __future__ import annotations

from typing import Any

from ..classifier import regex as re

# A run of [\w.] holding a dotted quad; _ip4 keeps it only when the whole run is one address
# (so "v1.2.3.4" and "1.2.3.4.5" stay, "10.0.0.5:80" is the address and a port).
_IPV4_RUN = re.compile(r"[\w.]*\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}[\w.]*")
_IPV4 = re.compile(r"(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}")
# A run of [\w:.] with two colons or more; ipaddress decides (times like 10:00:01 and
# "0018:ffff8820c2b9fd18" are not addresses).
_IPV6_RUN = re.compile(r"[\w:.]*:[\w:.]*:[\w:.]*")
_IPV6_MAX = 45  # the longest text form (IPv4-mapped, all groups written out)
# "Nov 26 10:00:01 web-01 kernel:" / "2026-11-26T10:00:01+0800 web-01 kernel:"
_SYSLOG_HOST = re.compile(r"^((?:\pL{3,5}\.?\s+\d{1,2}\s+\d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\d[T ][\d:.,+-]+Z?)\s+)(\S+)(\s+\S+?(?:\[\d+\])?:)")
# name=value on a command line where the name says the value is a secret.
_SECRET_ARG = re.compile(
    r"(?i)((?:^|[\s\"'])[\w.-]*(?:passw(?:or)?d|pwd|secret|key|token)=)(\"[^\"\n]*\"?|'[^'\n]*'?|[^\s\"']*)"
)
CMDLINE_KEYS = ("cmdline", "crashkernel_cmdline")


def mask_secrets(text: str) -> str:
    """Hide the values of secret-looking command-line parameters (done always)."""
    if "=" not in text:
        return text
    return _SECRET_ARG.sub(lambda m: f"{m.group(1)}<redacted>", text)


def redact_text(text: str, hostnames: tuple[str, ...] = ()) -> str:
    text = mask_secrets(text)
    text = _SYSLOG_HOST.sub(lambda m: f"{m.group(1)}<host>{m.group(3)}", text)
    text = _IPV4_RUN.sub(_ip4, text)
    if ":" in text:
        text = _IPV6_RUN.sub(_ip6, text)
    for name in hostnames:
        if name and len(name) >= 3:
            text = _replace_name(text, name)
    return text


def _ip4(m: Any) -> str:
    token = m.group(0)
    return "<ip>" if _IPV4.fullmatch(token) else token


def _ip6(m: Any) -> str:
    import ipaddress

    token = m.group(0)
    bare = token.rstrip(".")  # the end of a sentence
    if len(bare) > _IPV6_MAX:
        return token
    try:
        ipaddress.IPv6Address(bare)
    except ValueError:
        return token
    return "<ip>" + token[len(bare):]


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _replace_name(text: str, name: str) -> str:
    """Every stand-alone occurrence of a host name (any case) becomes <host>: not inside a
    longer name, "web-01" in "web-01.corp" yes, in "web-010" or "a.web-01" no."""
    hay, needle = text.lower(), name.lower()
    if len(hay) != len(text) or len(needle) != len(name):  # case folding changed a length
        hay, needle = text, name
    out: list[str] = []
    start = i = 0
    while (j := hay.find(needle, i)) >= 0:
        k = j + len(needle)
        before, after = text[j - 1 : j], text[k : k + 1]
        if (before and (_word(before) or before in ".-")) or (after and (_word(after) or after == "-")):
            i = j + 1
            continue
        out.append(text[start:j])
        out.append("<host>")
        start = i = k
    if not out:
        return text
    out.append(text[start:])
    return "".join(out)


def _walk(obj: Any, fn: Any, cmdline_whole: bool) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, list | tuple):
        return [_walk(x, fn, cmdline_whole) for x in obj]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if cmdline_whole and k in CMDLINE_KEYS and isinstance(v, str) and v:
                out[k] = "<redacted>"
            else:
                out[k] = _walk(v, fn, cmdline_whole)
        return out
    return obj


def hostnames_of(report_or_collect: dict[str, Any], extra: tuple[str | None, ...] = ()) -> tuple[str, ...]:
    """The names a report or collect.json knows the machine by: the guest's host name and
    FQDN (and its short form), the instance name and the host name ECS reports."""
    ctx = report_or_collect.get("guest_context") or report_or_collect.get("context") or {}
    inc = report_or_collect.get("incident") or {}
    names = [ctx.get("hostname"), ctx.get("fqdn"), inc.get("instance_name"), inc.get("host_name"), inc.get("hostname"), *extra]
    out: list[str] = []
    for n in names:
        if isinstance(n, str) and n.strip():
            for v in (n.strip(), n.strip().split(".", 1)[0]):
                if v not in out:
                    out.append(v)
    return tuple(sorted(out, key=len, reverse=True))  # the FQDN before its short form


def mask_report(report: dict[str, Any]) -> dict[str, Any]:
    """A copy of a report (or collect.json) with command-line secrets hidden (always done)."""
    return _walk(report, mask_secrets, False)


def redact_report(report: dict[str, Any], hostnames: tuple[str, ...] = ()) -> dict[str, Any]:
    """A copy of a report with IPs, host names and the kernel command line hidden."""
    names = tuple(dict.fromkeys((*hostnames, *hostnames_of(report))))
    red = _walk(report, lambda s: redact_text(s, names), True)
    red["redacted"] = True
    return red


def redact_collect(collect: dict[str, Any], hostnames: tuple[str, ...] = ()) -> dict[str, Any]:
    """collect.json as stored under CRASHDIAG_REDACT: the same walk as a report."""
    names = tuple(dict.fromkeys((*hostnames, *hostnames_of(collect))))
    red = _walk(collect, lambda s: redact_text(s, names), True)
    red["redacted"] = True
    return red


def mask_log(data: bytes) -> bytes:
    """Log bytes with command-line secrets hidden (always done to what we store or send)."""
    if b"=" not in data:
        return data
    text = data.decode("utf-8", "replace")
    return "\n".join(mask_secrets(line) for line in text.split("\n")).encode("utf-8")


def redact_log(data: bytes, hostnames: tuple[str, ...] = ()) -> bytes:
    text = data.decode("utf-8", "replace")
    return "\n".join(redact_text(line, hostnames) for line in text.split("\n")).encode("utf-8")
