"""One crash, every shape a log arrives in: the diagnosis must not change.

The base is a real el7 oops (seed section 9, re-lined); each transform rewrites it
the way a collection path would (journal, syslog, serial console, pasted web page,
pstore, gzip...)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from corpus import load_case
from crashdiag.classifier.classify import classify_bytes

BASE = load_case(Path(__file__).with_name("cases") / "seed" / "09-blk-mq-timeout-null-deref.txt")
TS = re.compile(r"^\[\s*(\d+\.\d+)\] ?")


def _records() -> list[tuple[str, str]]:
    out = []
    for line in BASE.log.decode().splitlines():
        m = TS.match(line)
        out.append((m.group(1) if m else "0.0", line[m.end():] if m else line))
    return out


def dmesg(recs):  # plain dmesg with timestamps (the base)
    return "\n".join(f"[{float(ts):12.6f}] {msg}" for ts, msg in recs)


def no_timestamps(recs):  # dmesg -t, or printk.time=0
    return "\n".join(msg for _, msg in recs)


def dmesg_raw(recs):  # dmesg -r: level prefix
    return "\n".join(f"<4>[{float(ts):12.6f}] {msg}" for ts, msg in recs)


def printk_caller(recs):  # CONFIG_PRINTK_CALLER
    return "\n".join(f"[{float(ts):12.6f}][ T163944] {msg}" for ts, msg in recs)


def printk_caller_cpu(recs):
    return "\n".join(f"[{float(ts):12.6f}][    C0] {msg}" for ts, msg in recs)


def journal_short(recs):  # journalctl -k
    return "\n".join(f"Nov 26 10:00:01 web-01 kernel: {msg}" for _, msg in recs)


def journal_short_iso(recs):
    return "\n".join(f"2026-11-26T10:00:01+0800 web-01 kernel: {msg}" for _, msg in recs)


def journal_short_monotonic(recs):
    return "\n".join(f"[{float(ts):12.6f}] web-01 kernel: {msg}" for ts, msg in recs)


def var_log_messages(recs):  # rsyslog, printk timestamp kept after "kernel:"
    lines = []
    for i, (ts, msg) in enumerate(recs):
        lines.append(f"Nov 26 10:00:01 web-01 kernel: [{float(ts):12.6f}] {msg}")
        if i % 5 == 0:
            lines.append("Nov 26 10:00:01 web-01 systemd[1]: Started Session 42 of user root.")
    return "\n".join(lines)


def serial_console(recs):  # GetInstanceConsoleOutput: kernel lines among systemd and login output
    lines = ["[  OK  ] Started Login Service.", "", "CentOS Linux 7 (Core)", "Kernel 3.10.0 on an x86_64", ""]
    for i, (ts, msg) in enumerate(recs):
        prefix = "web-01 login: " if i == 0 else ""
        lines.append(f"{prefix}[{float(ts):12.6f}] {msg}")
        if i == 3:
            lines.append("[  OK  ] Reached target Multi-User System.")
    return "\r\n".join(lines)


def flattened(recs):  # pasted from a web page: one line
    return " ".join(f"[{float(ts):12.6f}] {msg}" for ts, msg in recs)


def crlf(recs):
    return dmesg(recs).replace("\n", "\r\n")


def ansi(recs):
    return "\n".join(f"\x1b[33m[{float(ts):12.6f}]\x1b[0m {msg}\x1b[K" for ts, msg in recs)


def kmsg(recs):  # /dev/kmsg records
    return "\n".join(f"4,{i},{int(float(ts) * 1e6)},-;{msg}" for i, (ts, msg) in enumerate(recs))


SHAPES = [dmesg, no_timestamps, dmesg_raw, printk_caller, printk_caller_cpu, journal_short, journal_short_iso,
          journal_short_monotonic, var_log_messages, serial_console, flattened, crlf, ansi, kmsg]


def _key(result):
    return (result["kind"], result["title"], result["fingerprint"], (result["rule"] or {}).get("id"),
            result["crash"]["rip_function"], result["crash"]["comm"], result["kernel"]["release"],
            len(result["call_trace"]))


@pytest.fixture(scope="module")
def expected():
    r = classify_bytes(BASE.log)
    assert r["kind"] == "null_deref" and r["crash"]["rip_function"] == "blk_mq_rq_timed_out"
    return _key(r)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.__name__ for s in SHAPES])
def test_text_shapes_give_the_same_diagnosis(shape, expected):
    data = shape(_records()).encode()
    assert _key(classify_bytes(data)) == expected


def test_gzip(expected):
    assert _key(classify_bytes(gzip.compress(BASE.log))) == expected


def test_nul_padding_like_pstore(expected):
    assert _key(classify_bytes(b"\x00" * 4096 + BASE.log + b"\x00" * 65536)) == expected


def test_invalid_utf8_bytes(expected):
    data = BASE.log.replace(b"Comm: kworker/0:1H", b"Comm: kworker/0:1H").replace(b"PGD", b"\xff\xfePGD")
    assert _key(classify_bytes(b"\xc3\x28 garbage \xa0\xa1\n" + data)) == expected
