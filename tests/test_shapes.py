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


def dmesg_ctime(recs):  # dmesg -T: wall-clock time instead of seconds since boot
    return "\n".join(f"[Sat Mar  2 11:40:{int(float(ts)) % 60:02d} 2024] {msg}" for ts, msg in recs)


def dmesg_reltime(recs):  # dmesg -H / --reltime: a wall-clock stamp, then deltas
    out = []
    for i, (_ts, msg) in enumerate(recs):
        out.append(f"[Mar 2 11:40] {msg}" if i % 40 == 0 else f"[  +0.{i:06d}] {msg}")
    return "\n".join(out)


def forwarded_syslog(recs):  # a log collector's own date, then facility.level, then the ident
    levels = ("kern.alert", "kern.warning", "kern.info")
    return "\n".join(f"2023-05-04 09:12:33 +0000 UTC {levels[i % 3]} kernel: {msg}" for i, (_, msg) in enumerate(recs))


def console_collector(recs):  # an out-of-band console logger dates each line before the kernel's stamp
    return "\n".join(f"2024-01-09 22:10:05    [{float(ts):12.6f}] {msg}" for ts, msg in recs)


def mail_quoted(recs):  # a reply quoting the report
    return "\n".join(f"> [{float(ts):12.6f}] {msg}" for ts, msg in recs)


def pipe_table(recs):  # a log viewer's columns
    return "\n".join(f"web-01 | 2024-01-09T22:10:05Z | [{float(ts):12.6f}] {msg}" for ts, msg in recs)


def journal_json(recs):  # journalctl -k -o json: one JSON object per record, a user-space line between
    import json

    out = []
    for i, (ts, msg) in enumerate(recs):
        out.append(json.dumps({"__CURSOR": f"s=6e1f;i={i:x}", "__REALTIME_TIMESTAMP": "1795704001000000",
                               "_SOURCE_MONOTONIC_TIMESTAMP": str(int(float(ts) * 1e6)), "_TRANSPORT": "kernel",
                               "SYSLOG_IDENTIFIER": "kernel", "PRIORITY": "4", "MESSAGE": msg}))
        if i == 2:
            out.append(json.dumps({"_TRANSPORT": "syslog", "SYSLOG_IDENTIFIER": "app", "MESSAGE": "Kernel panic - not syncing: fake"}))
    return "\n".join(out)


SHAPES = [dmesg, no_timestamps, dmesg_raw, printk_caller, printk_caller_cpu, journal_short, journal_short_iso,
          journal_short_monotonic, var_log_messages, serial_console, flattened, crlf, ansi, kmsg,
          dmesg_ctime, dmesg_reltime, forwarded_syslog, console_collector, mail_quoted, pipe_table, journal_json]


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


# --- shapes found by their message heads (tests/shapes/: small hand-made logs in the shapes
# real people paste; the real public logs in these shapes are cases under tests/cases/public) --

SHAPE_DIR = Path(__file__).with_name("shapes")


def _classify(name):
    return classify_bytes((SHAPE_DIR / name).read_bytes(), source=name)


def test_syslogd_wall_broadcast_is_read_after_kernel_colon():
    r = _classify("syslogd-wall-soft-lockup.txt")
    assert r["kind"] == "soft_lockup"
    # Only the head line is there: the right kind, said with low confidence and why.
    assert r["confidence"] == "low"
    assert any("learned" in why for why in r["confidence_reasons"])


def test_crash_utility_sys_and_bt_without_log():
    r = _classify("crash-sys-bt-no-log.txt")
    assert r["kind"] == "null_deref"
    assert r["crash"]["rip_function"] == "blk_mq_rq_timed_out"
    assert r["crash"]["comm"] == "kworker/3:1" and r["crash"]["pid"] == 1234
    assert r["kernel"]["release"] == "3.10.0-957.el7.x86_64"
    assert r["call_trace"][0]["function"] == "machine_kexec"
    assert "blk_mq_rq_timed_out" in r["title"]


def test_mail_wrapped_head_line_is_glued_back():
    r = _classify("mail-wrapped-page-alloc-failure.txt")
    assert r["kind"] == "page_alloc_failure"
    assert r["title"].startswith("page allocation failure: order:1")


def test_a_bare_line_with_a_head_of_its_own_is_not_a_wrapped_tail():
    """Only a short bare line is glued onto a long head line above it; one that holds a
    message head ("traps: PANIC: double fault") starts its own message."""
    from crashdiag.classifier.logtext import normalise

    text = "[  100.000000] " + "double fault " * 10 + "\ntraps: PANIC: double fault, error_code: 0x0\n"
    assert [ln.text for ln in normalise(text)] == ["double fault " * 9 + "double fault", "traps: PANIC: double fault, error_code: 0x0"]
    glued = [ln.text for ln in normalise("[  100.000000] " + "double fault " * 10 + "\nwrapped tail\n")]
    assert glued == ["double fault " * 9 + "double fault wrapped tail"]


def test_kernel_bug_that_killed_init_keeps_the_cause():
    r = _classify("arm64-bug-kills-init.txt")
    assert r["kind"] == "kernel_bug"
    assert r["crash"]["rip_function"] == "ext4_writepages"
    assert r["consequence"] == {"kind": "init_killed", "text": "Attempted to kill init! exitcode=0x0000000b"}
    assert r["reports"][0]["consequence"]["kind"] == "init_killed"


def test_init_killed_alone_has_no_consequence():
    log = b"[    3.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n"
    r = classify_bytes(log)
    assert r["kind"] == "init_killed" and r["consequence"] is None


def test_a_user_process_trap_is_not_learned_as_a_prefix():
    # "traps: x[1] general protection fault ip:..." is the kernel reporting a user fault.
    log = b"[ 10.0] traps: java[4242] general protection fault ip:7f0 sp:7ff error:0 in libc.so.6\n"
    assert classify_bytes(log)["kind"] == "none"


def test_another_programs_message_is_not_a_kernel_message():
    log = b"Jan  9 22:10:05 node7 myapp[12]: Kernel panic - not syncing: Fatal exception\n"
    assert classify_bytes(log)["kind"] == "none"


def test_end_marker_is_not_a_second_panic():
    r = classify_bytes(b"[ 1.0] Kernel panic - not syncing: Fatal exception\n[ 1.1] ---[ end Kernel panic - not syncing: Fatal exception ]---\n")
    assert len(r["reports"]) == 1


@pytest.mark.parametrize("prefix", ["Console ", "Jan  9 22:10:05 node7 myapp: "])
def test_words_or_a_program_name_are_not_learned(prefix):
    from crashdiag.classifier.logtext import learn_prefixes

    text = f"{prefix}Call Trace:\n{prefix}dump_stack+0x1/0x2\n"
    assert learn_prefixes(text) == []


@pytest.mark.parametrize("prefix", ["2023-05-04 09:12:33 +0000 UTC kern.alert kernel: ", "[Sat Mar  2 11:40:17 2024] ",
                                    "[  +0.004512] ", " kernel:", "> ", "crash> "])
def test_transport_prefixes_are_learned(prefix):
    from crashdiag.classifier.logtext import learn_prefixes

    learned = learn_prefixes(f"{prefix}BUG: unable to handle kernel NULL pointer dereference at 0000000000000008\n")
    assert [lp.shape for lp in learned] == [prefix]


def test_crash_banner_gives_way_to_the_log_that_follows():
    r = _classify("crash-sys-then-log.txt")
    assert r["kind"] == "null_deref" and len(r["reports"]) == 2
    assert r["crash"]["rip_function"] == "blk_mq_rq_timed_out" and r["call_trace"]
    assert r["confidence"] != "low"


# --- attribution without "Modules linked in" ---------------------------------------------

_OOPS_IN_MODULE = """\
[  100.000000] BUG: kernel NULL pointer dereference, address: 0000000000000018
[  100.000100] #PF: supervisor read access in kernel mode
[  100.000200] Oops: 0000 [#1] SMP PTI
[  100.000300] CPU: 1 PID: 42 Comm: kworker/1:0 {taint} 5.15.0-91-generic #101-Ubuntu
[  100.000400] RIP: 0010:agent_hook_exec+0x18/0x230 [secagent]
[  100.000500] Call Trace:
[  100.000600]  <TASK>
[  100.000700]  agent_hook_exec+0x18/0x230 [secagent]
[  100.000800]  do_execveat_common.isra.0+0x1a8/0x220
[  100.000900]  __x64_sys_execve+0x37/0x50
[  100.001000]  do_syscall_64+0x59/0x90
[  100.001100]  entry_SYSCALL_64_after_hwframe+0x44/0xae
"""


def test_rip_in_a_module_on_a_tainted_kernel_names_it():
    r = classify_bytes(_OOPS_IN_MODULE.format(taint="Tainted: G           OE").encode())
    assert r["modules"]["suspect"] == "secagent" and "RIP" in r["modules"]["suspect_reason"]
    assert r["rule"]["id"] == "third-party-module-in-trace"


def test_rip_in_a_module_on_an_untainted_kernel_names_nobody():
    r = classify_bytes(_OOPS_IN_MODULE.format(taint="Not tainted").encode())
    assert r["modules"]["suspect"] is None and r["rule"]["id"] != "third-party-module-in-trace"


def test_out_of_tree_load_line_names_the_module_in_the_trace():
    log = ("[    5.000000] secagent: loading out-of-tree module taints kernel.\n"
           + _OOPS_IN_MODULE.format(taint="Tainted: G           O")).encode()
    r = classify_bytes(log)
    assert r["modules"]["suspect"] == "secagent" and "loaded" in r["modules"]["suspect_reason"]
    assert "secagent" in r["modules"]["out_of_tree"]


def test_learned_prefixes_are_few_whatever_the_log():
    """Each line is tried against every learned prefix: a log with a different prefix shape
    on every line must not make that a per-line cost in the hundreds."""
    from crashdiag.classifier.logtext import MAX_PREFIXES, learn_prefixes

    text = "".join(f"{'x-' * (n % 50)}{n}: kernel: BUG: unable to handle page fault for address: 0\n" for n in range(400))
    assert len(learn_prefixes(text)) <= MAX_PREFIXES
