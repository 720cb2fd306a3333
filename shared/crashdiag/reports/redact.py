"""What identifies a machine, or unlocks it, is hidden before a report is stored or sent.

Always (whatever CRASHDIAG_REDACT says): secrets given on a kernel command line, the value
of any ``password=``, ``passwd=``, ``pwd=``, ``*secret=``, ``*key=`` or ``*token=``
parameter (``rd.luks.key=``, ``api_token=``), become ``<redacted>`` (``mask_secrets``).

With CRASHDIAG_REDACT (``redact_report``, ``redact_log``): IP addresses (v4 and v6), host
names (syslog prefixes, the guest's host name and FQDN, the instance name and host name
from ECS) and the whole kernel command line (it can carry root device UUIDs, cloud-init
seeds) become ``<ip>``, ``<host>``, ``<redacted>``. Kernel symbols, module names and
versions are kept: the diagnosis needs them.

Host names must be recognised by stages that run after the record naming them was stored
redacted (diagnose reads a redacted collect.json; notify a redacted report.json). They
travel as a ``redaction`` record of salted SHA-256 digests (``seal``); ``redact_text``
hashes each name-shaped token and hides the ones that match. A reader of the bucket who
guesses a host name can confirm the guess: the digests hide names, they do not protect
guessable ones.

Every pattern runs on RE2 (``classifier.regex``) and candidates are checked by plain code,
so the time is linear in the text: a log line is written by whoever had root on the guest.
"""

from __future__ import annotations

import hashlib
import secrets
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


_NAME_RUN = re.compile(r"[\w.-]{3,}")
_NAME_MAX = 253


class Sealed:
    """Host names known only by their salted digests (a stored ``redaction`` record)."""

    def __init__(self, salt: str, digests: frozenset[str]) -> None:
        self.salt, self.digests = salt, digests

    def digest(self, name: str) -> str:
        return hashlib.sha256(f"{self.salt}\0{name.lower()}".encode("utf-8", "replace")).hexdigest()

    def hides(self, name: str) -> bool:
        return self.digest(name) in self.digests

    def record(self) -> dict[str, Any]:
        return {"salt": self.salt, "names": sorted(self.digests)}


def seal(names: tuple[str, ...], previous: dict[str, Any] | None = None) -> Sealed:
    """A Sealed holding the digests of ``names`` (and their short forms), added to a
    previous record's (same salt) or under a new random salt."""
    old = sealed_from(previous)
    sealed = old or Sealed(secrets.token_hex(16), frozenset())
    return Sealed(sealed.salt, sealed.digests | {sealed.digest(n) for n in _forms(names)})


def sealed_from(record: Any) -> Sealed | None:
    if not isinstance(record, dict) or not isinstance(record.get("salt"), str):
        return None
    return Sealed(record["salt"], frozenset(str(d) for d in record.get("names") or ()))


def _forms(names: tuple[str | None, ...]) -> list[str]:
    out: list[str] = []
    for n in names:
        if isinstance(n, str) and len(n.strip()) >= 3 and n.strip() != "<host>":
            for v in (n.strip(), n.strip().split(".", 1)[0]):
                if len(v) >= 3 and v not in out:
                    out.append(v)
    return out


def _replace_sealed(text: str, sealed: Sealed) -> str:
    """Each run of name characters whose start is a sealed name (ending at the run's end or
    before one of its dots) has that name replaced by <host>."""

    def one(m: Any) -> str:
        run = m.group(0)
        if len(run) <= _NAME_MAX and sealed.hides(run):
            return "<host>"
        cut = -1
        i = run.find(".", 3)
        while 0 <= i <= _NAME_MAX:  # a DNS name is at most 253 characters: bounded work per run
            if sealed.hides(run[:i]):
                cut = i
            i = run.find(".", i + 1)
        return run if cut < 0 else "<host>" + run[cut:]

    return _NAME_RUN.sub(one, text)


_CMDLINE_LINE = re.compile(r"((?:Kernel )?[Cc]ommand line: ).*")


def redact_text(text: str, hostnames: tuple[str, ...] = (), sealed: Sealed | None = None) -> str:
    text = mask_secrets(text)
    if "ommand line: " in text:
        text = _CMDLINE_LINE.sub(lambda m: f"{m.group(1)}<redacted>", text)
    text = _SYSLOG_HOST.sub(lambda m: f"{m.group(1)}<host>{m.group(3)}", text)
    text = _IPV4_RUN.sub(_ip4, text)
    if ":" in text:
        text = _IPV6_RUN.sub(_ip6, text)
    for name in hostnames:
        if name and len(name) >= 3:
            text = _replace_name(text, name)
    if sealed is not None and sealed.digests:
        text = _replace_sealed(text, sealed)
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
    FQDN (and their short forms) and the instance name."""
    ctx = report_or_collect.get("guest_context") or report_or_collect.get("context") or {}
    inc = report_or_collect.get("incident") or {}
    names = (ctx.get("hostname"), ctx.get("fqdn"), inc.get("instance_name"), inc.get("host_name"), *extra)
    return tuple(sorted(_forms(names), key=len, reverse=True))  # the FQDN before its short form


def mask_report(report: dict[str, Any]) -> dict[str, Any]:
    """A copy of a report (or collect.json) with command-line secrets hidden (always done)."""
    return _walk(report, mask_secrets, False)


def redact_record(record: dict[str, Any], hostnames: tuple[str, ...] = (), previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of a report, collect.json or event record with IPs, host names and the kernel
    command line hidden, and a ``redaction`` record (the host names' salted digests, with
    those of ``previous``) for the stages after it."""
    names = tuple(dict.fromkeys((*hostnames, *hostnames_of(record))))
    sealed = seal(names, previous if previous is not None else record.get("redaction"))
    red = _walk({k: v for k, v in record.items() if k != "redaction"}, lambda s: redact_text(s, names, sealed), True)
    red["redacted"] = True
    red["redaction"] = sealed.record()
    return red


def redact_report(report: dict[str, Any], hostnames: tuple[str, ...] = (), previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of a report with IPs, host names and the kernel command line hidden."""
    return redact_record(report, hostnames, previous)


def mask_log(data: bytes) -> bytes:
    """Log bytes with command-line secrets hidden (always done to what we store or send)."""
    if b"=" not in data:
        return data
    text = data.decode("utf-8", "replace")
    return "\n".join(mask_secrets(line) for line in text.split("\n")).encode("utf-8")


def redact_log(data: bytes, hostnames: tuple[str, ...] = (), sealed: Sealed | None = None) -> bytes:
    text = data.decode("utf-8", "replace")
    return "\n".join(redact_text(line, hostnames, sealed) for line in text.split("\n")).encode("utf-8")


def scrub_log(data: bytes, report: dict[str, Any]) -> bytes:
    """Log bytes about to leave with a report (an attachment): secrets masked always, and
    with the report redacted, redacted the same way (names from its ``redaction`` record)."""
    if report.get("redacted"):
        return redact_log(data, (), sealed_from(report.get("redaction")))
    return mask_log(data)
