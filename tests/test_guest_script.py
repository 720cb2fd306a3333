"""The guest collection script, run for real by sh/dash/busybox sh against fixture trees.

Every run substitutes the ``{{...}}`` parameters the way Cloud Assistant does
(``simulate.substitute_parameters``), feeds the script to the shell on stdin (as the
simulator does) with ``CRASHDIAG_ROOT`` pointing at a copy of a fixture instance under
``events/instances/``, and reads the output with ``guest_output.parse_guest_output``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import random
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from crashdiag.classifier.classify import classify_bytes
from crashdiag.cloud.simulate import SimulatedCloud, substitute_parameters
from crashdiag.pipeline.guest_output import parse_guest_output

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "shared/crashdiag/pipeline/guest/collect-crash-log.sh"
INSTANCES = REPO / "events/instances"
OUTPUT_LIMIT = 24 * 1024
T0 = 1795704001  # 2026-11-26 10:00:01 +08:00: when the fixtures' crashes happened

KDUMP01 = "i-bp1kdumpel7demo01"
OOM02 = "i-bp1oompanic0002"
UBUNTU03 = "i-bp1ubuntu0000003"
BOOTLOOP04 = "i-bp1bootloop00004"
JOURNAL05 = "i-bp1journalonly05"
BIG06 = "i-bp1bigmessages06"
VMCORE08 = "i-bp1vmcoreonly08"  # a vmcore without vmcore-dmesg.txt; a stand-in makedumpfile in its tree
VMCORE08_DIR = "var/crash/127.0.0.1-2026-11-26-10:00:01"

# instance -> (log.source, log.path, file under root/ holding the log)
EXPECTED = {
    KDUMP01: ("kdump", "/var/crash/127.0.0.1-2026-11-26-10:00:01/vmcore-dmesg.txt",
              "var/crash/127.0.0.1-2026-11-26-10:00:01/vmcore-dmesg.txt"),
    OOM02: ("messages", "/var/log/messages", "var/log/messages"),
    UBUNTU03: ("kdump", "/var/crash/202611261000/dmesg.202611261000", "var/crash/202611261000/dmesg.202611261000"),
    JOURNAL05: ("journal", "journalctl -k -b -1", "run/crashdiag-fixture/journal-k-b-1.txt"),
    BIG06: ("messages", "/var/log/messages", "var/log/messages"),
}
SMALL = [KDUMP01, OOM02, UBUNTU03, JOURNAL05]

SHELLS = {
    "sh": ["sh"],
    "dash": ["dash"],
    "busybox-sh": ["busybox", "sh"],
    "bash-posix": ["bash", "--posix"],
}


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture(params=list(SHELLS), ids=list(SHELLS))
def shell(request) -> list[str]:
    argv = SHELLS[request.param]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (apt-get install -y {argv[0]})")
    return argv


def copy_instance(instance: str, dest: Path, mtime: int = T0) -> Path:
    """A copy of the instance's root/ with every file and directory at ``mtime``."""
    root = dest / "root"
    shutil.copytree(INSTANCES / instance / "root", root, symlinks=True)
    for p in [root, *root.rglob("*")]:
        os.utime(p, (mtime, mtime), follow_symlinks=False)
    return root


def run_script(
    root: Path | None,
    work: Path,
    *,
    since: str = "0",
    max_bytes: str = "11000",
    upload_url: str = "",
    shell: list[str] | None = None,
    path: str | None = None,
    tmpdir: str | None = None,
    timeout: int = 60,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[bytes, subprocess.CompletedProcess]:
    """Run the script as Cloud Assistant would; cwd, HOME and TMPDIR are empty dirs under ``work``
    (``preexec_fn``: e.g. a resource limit for the shell and all it runs)."""
    text = substitute_parameters(SCRIPT.read_text(), {"since": since, "max_bytes": max_bytes, "upload_url": upload_url})
    for d in ("cwd", "home", "tmp"):
        (work / d).mkdir(exist_ok=True)
    env = {
        "PATH": path if path is not None else os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C",
        "HOME": str(work / "home"),
        "TMPDIR": tmpdir if tmpdir is not None else str(work / "tmp"),
    }
    if root is not None:
        env["CRASHDIAG_ROOT"] = str(root)
    argv = list(shell or ["sh"])
    if path is not None and not os.path.isabs(argv[0]):
        argv[0] = shutil.which(argv[0], path=path) or argv[0]
    p = subprocess.run([*argv, "-s"], input=text.encode(), capture_output=True, env=env, cwd=work / "cwd", timeout=timeout,
                       check=False, preexec_fn=preexec_fn)
    assert p.returncode == 0, p.stderr
    assert p.stderr == b"", p.stderr  # Cloud Assistant would mix stderr into the output
    return p.stdout, p


def tree_listing(root: Path) -> dict[str, tuple]:
    """Path -> (type, mode, size, mtime, sha256) for everything under root."""
    out: dict[str, tuple] = {}
    for p in sorted([root, *root.rglob("*")]):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out


def payload_section(out: bytes) -> bytes:
    return out.split(b"CRASHDIAG-LOG\n", 1)[1].rsplit(b"CRASHDIAG-TAIL\n", 1)[0]


def tool_dir(dest: Path, tools: dict[str, str]) -> str:
    """A PATH directory holding only the given tools (name -> target executable)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, target in tools.items():
        (dest / name).symlink_to(target)
    return str(dest)


def system_tools(*names: str) -> dict[str, str]:
    found = {n: shutil.which(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    return {n: os.path.realpath(p) for n, p in found.items()}


def window_of(data: bytes, window: str) -> bytes:
    first, last = (int(x) for x in window.split("-"))
    return b"".join(data.splitlines(keepends=True)[first - 1:last])


def check_big(out: bytes, log: bytes, max_bytes: int = 11000, whole_report: bool = True) -> dict:
    g = parse_guest_output(out)
    assert not g["truncated"]
    assert len(out) <= max_bytes  # the whole output stays in the budget, inside the agent's 12,000
    assert len(payload_section(out)) <= max_bytes
    meta = g["log"]
    assert meta["source"] == "messages" and meta["complete"] == "no"
    assert meta["size"] == str(len(log))
    assert g["payload"] == window_of(log, meta["window"])
    assert b"---[ end Kernel panic - not syncing: hung_task: blocked tasks ]---" in g["payload"]
    if whole_report:  # from its first line (67 lines before the last one)
        assert b"INFO: task float_bessel:77920 blocked for more than 120 seconds." in g["payload"]
    return g


# --- every fixture, every shell --------------------------------------------------------------


@pytest.mark.parametrize("instance", SMALL)
def test_fixture_log_is_found_whole(instance, shell, tmp_path):
    root = copy_instance(instance, tmp_path)
    out, _ = run_script(root, tmp_path, since=str(T0 - 3600), shell=shell)
    g = parse_guest_output(out)
    source, path, rel = EXPECTED[instance]
    log = (root / rel).read_bytes()
    assert not g["truncated"]
    assert g["log"]["source"] == source
    assert g["log"]["path"] == path
    assert g["log"]["encoding"] == "gzip+base64"
    assert g["log"]["complete"] == "yes" and "window" not in g["log"]
    assert g["log"]["stale"] == "no"
    assert g["log"]["uploaded"] == "no"
    assert g["log"]["mtime"] == str(T0)
    assert g["log"]["size"] == str(len(log))
    assert g["payload"] == log
    assert len(out) < OUTPUT_LIMIT


def test_vmcore_without_its_dmesg_is_read_with_makedumpfile(shell, tmp_path):
    root = copy_instance(VMCORE08, tmp_path)
    out, _ = run_script(root, tmp_path, since=str(T0 - 3600), shell=shell)
    g = parse_guest_output(out)
    dump = (root / VMCORE08_DIR / "vmcore").read_bytes()
    assert g["log"]["source"] == "kdump"
    assert g["log"]["path"] == f"/{VMCORE08_DIR}/vmcore (makedumpfile --dump-dmesg)"
    assert g["log"]["extracted"] == "makedumpfile --dump-dmesg"
    assert g["log"]["mtime"] == str(T0) and g["log"]["complete"] == "yes"
    assert g["payload"] == dump[8:]  # the stand-in's dump is its signature, then the log
    assert classify_bytes(g["payload"])["kind"] != "none"
    assert list((tmp_path / "tmp").iterdir()) == []  # the extracted text lived in the private temp dir only


def test_vmcore_without_makedumpfile_falls_back_and_says_nothing_was_extracted(shell, tmp_path):
    root = copy_instance(VMCORE08, tmp_path)
    (root / "usr/sbin/makedumpfile").unlink()
    out, _ = run_script(root, tmp_path, since=str(T0 - 3600), shell=shell, path="/usr/bin:/bin")
    g = parse_guest_output(out)
    assert g["log"]["source"] != "kdump" and "extracted" not in g["log"]


def test_a_fresh_vmcore_dmesg_is_taken_without_running_makedumpfile(tmp_path):
    root = copy_instance(VMCORE08, tmp_path)
    dump = root / VMCORE08_DIR / "vmcore"
    (root / VMCORE08_DIR / "vmcore-dmesg.txt").write_bytes(dump.read_bytes()[8:])
    os.utime(root / VMCORE08_DIR / "vmcore-dmesg.txt", (T0, T0))
    (root / "usr/sbin/makedumpfile").write_text("#!/bin/sh\necho ran >\"$3\"\n")
    out, _ = run_script(root, tmp_path, since=str(T0 - 3600))
    g = parse_guest_output(out)
    assert g["log"]["path"] == f"/{VMCORE08_DIR}/vmcore-dmesg.txt" and "extracted" not in g["log"]


def test_a_stale_vmcore_is_not_extracted(tmp_path):
    root = copy_instance(VMCORE08, tmp_path)
    out, _ = run_script(root, tmp_path, since=str(T0 + 3600))
    assert "extracted" not in parse_guest_output(out)["log"]


def test_big_messages_is_windowed_around_the_last_crash(shell, tmp_path):
    root = copy_instance(BIG06, tmp_path)
    out, _ = run_script(root, tmp_path, since=str(T0 - 3600), shell=shell)
    g = check_big(out, (root / "var/log/messages").read_bytes())
    assert g["log"]["encoding"] == "gzip+base64"
    first, last = (int(x) for x in g["log"]["window"].split("-"))
    assert last - first > 150  # a generous window: gzip keeps the 200 lines before the crash


def test_context_of_the_centos7_kdump_instance(shell, tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    ctx = parse_guest_output(run_script(root, tmp_path, shell=shell)[0])["context"]
    assert ctx["uname_r"] == "3.10.0-1160.80.1.el7.x86_64"
    assert ctx["os_id"] == "centos" and ctx["os_version_id"] == "7"
    assert "crashkernel=auto" in ctx["cmdline"]
    assert ctx["crashkernel"] == "auto"
    assert ctx["kdump_active"] == "active"
    assert ctx["journal_persistent"] == "no"
    assert ctx["mem_total_kb"] == "65806780"
    assert "AliSecGuard(OE)" in ctx["tainted_modules"].split()
    assert "virtio_net" not in ctx["tainted_modules"]
    assert {k: v for k, v in ctx.items() if k.startswith("sysctl.")} == {
        "sysctl.vm.panic_on_oom": "0",
        "sysctl.kernel.panic": "0",
        "sysctl.kernel.panic_on_oops": "1",
        "sysctl.kernel.hung_task_panic": "0",
        "sysctl.kernel.softlockup_panic": "0",
        "sysctl.kernel.panic_on_warn": "0",
        "sysctl.kernel.sysrq": "16",
        "sysctl.kernel.unknown_nmi_panic": "0",
    }


def test_context_of_the_other_instances(tmp_path):
    def ctx_of(instance):
        work = tmp_path / instance
        work.mkdir()
        return parse_guest_output(run_script(copy_instance(instance, work), work)[0])["context"]

    oom = ctx_of(OOM02)
    assert oom["os_id"] == "alinux" and oom["os_version_id"] == "3"
    assert oom["sysctl.vm.panic_on_oom"] == "1" and oom["kdump_active"] == "inactive"
    assert oom["crashkernel"] == ""
    ubuntu = ctx_of(UBUNTU03)
    assert ubuntu["os_id"] == "ubuntu" and ubuntu["os_version_id"] == "20.04"
    assert ubuntu["crashkernel"] == "512M-:192M" and ubuntu["kdump_active"] == "active"
    journal = ctx_of(JOURNAL05)
    assert journal["journal_persistent"] == "yes" and journal["kdump_active"] == "inactive"
    big = ctx_of(BIG06)
    assert big["sysctl.kernel.hung_task_panic"] == "1" and big["tainted_modules"] == ""


def test_nothing_found_is_source_none(shell, tmp_path):
    root = copy_instance(BOOTLOOP04, tmp_path)
    g = parse_guest_output(run_script(root, tmp_path, shell=shell)[0])
    assert g["log"]["source"] == "none"
    assert g["payload"] == b"" and not g["truncated"]
    assert g["context"]["kdump_active"] == "unknown"
    assert g["context"]["sysctl.vm.panic_on_oom"] == ""


def test_empty_root_still_gives_the_markers(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    out, _ = run_script(root, tmp_path)
    assert out.startswith(b"CRASHDIAG-BEGIN 2\n") and out.endswith(b"CRASHDIAG-END 2\n")
    assert parse_guest_output(out)["log"]["source"] == "none"


# --- which evidence wins ----------------------------------------------------------------------


def test_since_newer_than_every_file_takes_the_newest_and_says_stale(shell, tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    g = parse_guest_output(run_script(root, tmp_path, since=str(T0 + 86400), shell=shell)[0])
    assert g["log"]["source"] == "kdump" and g["log"]["stale"] == "yes"
    assert g["payload"] == (root / EXPECTED[KDUMP01][2]).read_bytes()


def test_fresh_kdump_beats_a_newer_messages(tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    msgs = root / "var/log/messages"
    msgs.parent.mkdir(parents=True)
    msgs.write_text("Nov 26 10:02:00 web-01 systemd[1]: Started Session 1 of user root.\n")
    os.utime(msgs, (T0 + 120, T0 + 120))
    g = parse_guest_output(run_script(root, tmp_path, since=str(T0 - 60))[0])
    assert (g["log"]["source"], g["log"]["stale"]) == ("kdump", "no")
    # the kdump file predates SINCE: the fresh messages wins
    g = parse_guest_output(run_script(root, tmp_path, since=str(T0 + 60))[0])
    assert (g["log"]["source"], g["log"]["stale"], g["log"]["mtime"]) == ("messages", "no", str(T0 + 120))
    # nothing fresh: the newest of all, marked stale
    g = parse_guest_output(run_script(root, tmp_path, since=str(T0 + 600))[0])
    assert (g["log"]["source"], g["log"]["stale"]) == ("messages", "yes")


def test_newest_kdump_directory_wins_and_old_ones_are_ignored(tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    old = root / "var/crash/127.0.0.1-2026-10-01-03:14:15"
    old.mkdir()
    (old / "vmcore-dmesg.txt").write_text("[1.0] Kernel panic - not syncing: an older crash\n")
    os.utime(old / "vmcore-dmesg.txt", (T0 - 86400 * 50, T0 - 86400 * 50))
    g = parse_guest_output(run_script(root, tmp_path)[0])
    assert g["log"]["path"] == EXPECTED[KDUMP01][1]


def test_kdump_path_from_kdump_conf(tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    conf = root / "etc/kdump.conf"
    conf.write_text(conf.read_text().replace("path /var/crash", "path /data/kdump/"))
    (root / "data/kdump").mkdir(parents=True)
    shutil.move(root / "var/crash/127.0.0.1-2026-11-26-10:00:01", root / "data/kdump/127.0.0.1-2026-11-26-10:00:01")
    g = parse_guest_output(run_script(root, tmp_path)[0])
    assert g["log"]["path"] == "/data/kdump/127.0.0.1-2026-11-26-10:00:01/vmcore-dmesg.txt"


def test_pstore_records_are_read(tmp_path):
    root = copy_instance(BOOTLOOP04, tmp_path)
    rec = root / "sys/fs/pstore/dmesg-ramoops-0"
    rec.parent.mkdir(parents=True)
    rec.write_text("Panic#1 Part1\n<0>[  12.000001] Kernel panic - not syncing: sysrq triggered crash\n")
    g = parse_guest_output(run_script(root, tmp_path)[0])
    assert (g["log"]["source"], g["log"]["path"]) == ("pstore", "/sys/fs/pstore/dmesg-ramoops-0")
    assert g["payload"] == rec.read_bytes()


def test_symlinked_and_empty_candidates_are_not_taken(tmp_path):
    root = copy_instance(BOOTLOOP04, tmp_path)
    secret = root / "etc/shadow"
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    link = root / "var/crash/127.0.0.1-2026-11-26-10:00:01/vmcore-dmesg.txt"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../../etc/shadow")
    empty = root / "var/crash/202611261000/dmesg.202611261000"
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    g = parse_guest_output(run_script(root, tmp_path)[0])
    assert g["log"]["source"] == "none"
    assert b"secret" not in g["payload"]


KDUMP01_DIR = "var/crash/127.0.0.1-2026-11-26-10:00:01"
FORGED = b"[1.0] Kernel panic - not syncing: FORGED by a local user\n"


def _forged_crash_dir(root: Path, name: str = "127.0.0.1-2026-11-27-09:00:00") -> Path:
    """A crash dir newer than the genuine one (its file dated after it, still fresh)."""
    d = root / "var/crash" / name
    d.mkdir()
    return d


def _assert_genuine(root: Path, out: bytes) -> None:
    g = parse_guest_output(out)
    assert (g["log"]["source"], g["log"]["path"]) == EXPECTED[KDUMP01][:2]
    assert g["payload"] == (root / EXPECTED[KDUMP01][2]).read_bytes()
    assert b"FORGED" not in out


def test_kdump_control_is_genuine_when_the_newer_dir_is_honest(shell, tmp_path):
    """The control for the attacks below: the same newer dir with a plain root-owned file wins."""
    root = copy_instance(KDUMP01, tmp_path)
    f = _forged_crash_dir(root) / "vmcore-dmesg.txt"
    f.write_bytes(FORGED)
    os.utime(f, (T0 + 3600, T0 + 3600))
    g = parse_guest_output(run_script(root, tmp_path, since=str(T0 - 60), shell=shell)[0])
    assert g["payload"] == FORGED


def test_a_future_dated_kdump_file_is_ignored(shell, tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    f = _forged_crash_dir(root, "127.0.0.1-2099-01-01-00:00:00") / "vmcore-dmesg.txt"
    f.write_bytes(FORGED)
    future = int(time.time()) + 86400 * 365
    os.utime(f, (future, future))
    _assert_genuine(root, run_script(root, tmp_path, since=str(T0 - 60), shell=shell)[0])


def test_a_symlinked_crash_dir_is_not_followed(shell, tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    elsewhere = root / "home/user/crash"
    elsewhere.mkdir(parents=True)
    (elsewhere / "vmcore-dmesg.txt").write_bytes(FORGED)
    os.utime(elsewhere / "vmcore-dmesg.txt", (T0 + 3600, T0 + 3600))
    (root / "var/crash/127.0.0.1-2026-11-27-09:00:00").symlink_to(elsewhere)
    _assert_genuine(root, run_script(root, tmp_path, since=str(T0 - 60), shell=shell)[0])


def test_a_symlinked_vmcore_dmesg_is_ignored(shell, tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    target = root / "home/user/forged.txt"
    target.parent.mkdir(parents=True)
    target.write_bytes(FORGED)
    os.utime(target, (T0 + 3600, T0 + 3600))
    link = _forged_crash_dir(root) / "vmcore-dmesg.txt"
    link.symlink_to(target)
    _assert_genuine(root, run_script(root, tmp_path, since=str(T0 - 60), shell=shell)[0])


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_kdump_file_not_owned_by_root_is_ignored(shell, tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    d = _forged_crash_dir(root)
    f = d / "vmcore-dmesg.txt"
    f.write_bytes(FORGED)
    os.utime(f, (T0 + 3600, T0 + 3600))
    os.chown(f, 12345, 12345)
    _assert_genuine(root, run_script(root, tmp_path, since=str(T0 - 60), shell=shell)[0])


# --- one copy of the chosen file, through one descriptor (attacks as a local user: test_guest_attacks) ---


LOG_MAX = 64 << 20  # the script's cap on the copy (its end past that)
MEM_MAX = 4 << 20  # the cap without a private temporary directory (the copy is held in memory)
TAIL_CRASH = b"<0>[ 99.000001] Kernel panic - not syncing: the genuine end of a long log\n"


def _messages(root: Path, data: bytes | None = None, hole: int = 0) -> Path:
    """var/log/messages: ``hole`` bytes of sparse hole (truncate, like ``truncate -s``), then ``data``."""
    f = root / "var/log/messages"
    f.parent.mkdir(parents=True, exist_ok=True)
    with f.open("wb") as fh:
        fh.write(b"<0>[ 1.000001] Kernel panic - not syncing: EARLY, before the hole\n")
        if hole:
            fh.truncate(hole)
            fh.seek(hole)
        fh.write(data or TAIL_CRASH)
    os.utime(f, (T0, T0))
    return f


def test_a_log_over_64_mb_is_read_from_its_end(shell, tmp_path):
    """A 70 MB log (mostly hole): the copy is its last 64 MB, so the crash at its end is found
    and what came before the cut is not read; log.size is the whole file's."""
    root = copy_instance(BOOTLOOP04, tmp_path)
    f = _messages(root, hole=70 << 20)
    g = parse_guest_output(run_script(root, tmp_path, shell=shell)[0])
    assert (g["log"]["source"], g["log"]["size"]) == ("messages", str(f.stat().st_size))
    assert TAIL_CRASH.strip() in g["payload"]
    assert b"EARLY" not in g["payload"]
    assert list((tmp_path / "tmp").iterdir()) == []  # the 64 MB copy is gone with the private dir


def test_the_upload_of_a_log_over_64_mb_is_its_last_64_mb(put_server, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    root = copy_instance(BOOTLOOP04, tmp_path)
    f = _messages(root, hole=70 << 20)
    g = parse_guest_output(run_script(root, tmp_path, upload_url=_url(put_server))[0])
    assert g["log"]["uploaded"] == "yes"
    body = put_server.puts[0]["body"]
    assert len(body) == LOG_MAX
    with f.open("rb") as fh:
        fh.seek(-LOG_MAX, os.SEEK_END)
        assert body == fh.read()


def test_without_a_private_dir_the_copy_is_held_in_memory_and_capped(shell, put_server, tmp_path):
    """No usable TMPDIR: the copy is the last MEM_MAX bytes, kept in the shell; curl uploads it."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    root = copy_instance(BOOTLOOP04, tmp_path)
    lines = b"".join(b"Nov 26 09:%02d:%02d h kernel: filler line %07d\n" % (i // 60 % 60, i % 60, i) for i in range(120_000))
    f = _messages(root, lines + TAIL_CRASH)
    data = f.read_bytes()
    assert len(data) > MEM_MAX + (1 << 20)
    out, _ = run_script(root, tmp_path, upload_url=_url(put_server), tmpdir=str(tmp_path / "no-such-dir"), shell=shell)
    g = parse_guest_output(out)
    assert (g["log"]["source"], g["log"]["size"], g["log"]["uploaded"]) == ("messages", str(len(data)), "yes")
    assert put_server.puts[0]["body"] == data[-MEM_MAX:]
    assert TAIL_CRASH.strip() in g["payload"] and b"EARLY" not in g["payload"]


def test_a_hardlinked_log_is_refused(shell, tmp_path):
    """A second name for a root-only file (where fs.protected_hardlinks is 0 anyone may make
    one) is not a log: files with more than one link are not read. The control: the same file
    with one link is."""
    root = copy_instance(BOOTLOOP04, tmp_path)
    secret = root / "etc/shadow"
    secret.write_bytes(b"root:$6$hardlinked-secret:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    msgs = root / "var/log/messages"
    msgs.parent.mkdir(parents=True)
    os.link(secret, msgs)
    out, _ = run_script(root, tmp_path, shell=shell)
    assert parse_guest_output(out)["log"]["source"] == "none" and b"hardlinked-secret" not in out
    secret.unlink()
    g = parse_guest_output(run_script(root, tmp_path, shell=shell)[0])
    assert g["log"]["source"] == "messages" and b"hardlinked-secret" in g["payload"]


@pytest.mark.parametrize(("folder", "mode", "taken"), [
    ("var/log", 0o777, False), ("var/log", 0o775, True),  # group-writable /var/log: Ubuntu's root:syslog 0775
    ("var/crash", 0o777, False), ("var/crash", 0o1777, True),  # sticky /var/crash: Ubuntu's 1777
    (KDUMP01_DIR, 0o757, False), (KDUMP01_DIR, 0o770, True),
])
def test_a_log_in_a_folder_others_can_write_is_refused(folder, mode, taken, tmp_path):
    """Others may not write where a log is (nor, for kdump, rename crash folders without the sticky bit)."""
    root = copy_instance(KDUMP01 if folder != "var/log" else BOOTLOOP04, tmp_path)
    if folder == "var/log":
        _messages(root)
    (root / folder).chmod(mode)
    g = parse_guest_output(run_script(root, tmp_path)[0])
    if folder == "var/log":
        assert (g["log"]["source"] == "messages") is taken
    else:
        assert (g["log"]["path"] == EXPECTED[KDUMP01][1]) is taken


def test_a_log_owned_by_another_user_is_refused_outside_kdump_too(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    root = copy_instance(BOOTLOOP04, tmp_path)
    f = _messages(root)
    os.chown(f, 65534, 65534)
    assert parse_guest_output(run_script(root, tmp_path)[0])["log"]["source"] == "none"
    os.chown(f, 0, 0)
    assert parse_guest_output(run_script(root, tmp_path)[0])["log"]["source"] == "messages"


@pytest.mark.parametrize("owner, taken", [(104, True), (999, True), (1000, False), (65534, False)])
def test_a_syslog_file_may_belong_to_the_syslog_daemons_system_account(tmp_path, owner, taken):
    """Ubuntu's rsyslog writes kern.log as its own system user (0640 syslog:adm); a log
    owned by a login user (uid 1000 and up) or nobody is still refused. kdump files are not
    relaxed: the kdump tools write them as root."""
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    root = copy_instance(BOOTLOOP04, tmp_path)
    f = _messages(root)
    kern = f.parent / "kern.log"
    f.rename(kern)
    os.chown(kern, owner, 4)
    kern.chmod(0o640)
    g = parse_guest_output(run_script(root, tmp_path)[0])
    assert g["log"]["source"] == ("kern.log" if taken else "none")


# --- hostile input --------------------------------------------------------------------------


HOSTILE_SINCE = ["1; rm -rf /", "$(touch {canary})", "`touch {canary}`", "0\ntouch {canary}", "' ; touch {canary} ; echo '", "-1", "99999999999999999999"]
HOSTILE_URLS = [
    "http://127.0.0.1:9/x' ; touch {canary} ; echo '",
    'http://127.0.0.1:9/x" ; touch {canary} ; echo "',
    "http://127.0.0.1:9/x$(touch {canary})",
    "http://127.0.0.1:9/x`touch {canary}`",
    "http://127.0.0.1:9/a b",
    "http://127.0.0.1:9/a\\b",
    "file:///etc/passwd",
    "-o{canary} http://127.0.0.1:9/",
]


@pytest.mark.parametrize("since", HOSTILE_SINCE)
def test_hostile_since_is_neutralised(since, shell, tmp_path):
    canary = tmp_path / "canary"
    root = copy_instance(KDUMP01, tmp_path)
    before = tree_listing(root)
    out, _ = run_script(root, tmp_path, since=since.format(canary=canary), shell=shell)
    g = parse_guest_output(out)
    assert g["log"]["source"] == "kdump" and g["log"]["stale"] == "no"  # SINCE fell back to 0
    assert not canary.exists()
    assert tree_listing(root) == before


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_upload_url_is_neutralised(url, shell, tmp_path):
    canary = tmp_path / "canary"
    root = copy_instance(KDUMP01, tmp_path)
    before = tree_listing(root)
    out, _ = run_script(root, tmp_path, upload_url=url.format(canary=canary), shell=shell)
    g = parse_guest_output(out)
    assert g["log"]["uploaded"] == "no"  # the URL was dropped: no upload attempted
    assert g["log"]["source"] == "kdump"
    assert not canary.exists()
    assert tree_listing(root) == before


@pytest.mark.parametrize(("value", "budget"), [("12", 4096), ("abc", 11000), ("99999999999", 11000), ("", 11000), ("8000", 8000),
                                               ("20000", 20000)])
def test_max_bytes_is_validated_and_clamped(value, budget, tmp_path):
    root = copy_instance(BIG06, tmp_path)
    out, _ = run_script(root, tmp_path, max_bytes=value)
    # 4096 bytes, less the header, hold the end of the report, not all of it
    check_big(out, (root / "var/log/messages").read_bytes(), max_bytes=budget, whole_report=budget > 4096)


def test_guest_values_are_single_line(shell, tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    crash = root / "var/crash"
    evil = "127.0.0.1-2026\nlog.source=pwned\rCRASHDIAG-END"
    (crash / "127.0.0.1-2026-11-26-10:00:01").rename(crash / evil)
    os.utime(crash / evil / "vmcore-dmesg.txt", (T0, T0))
    osr = root / "etc/os-release"
    osr.write_text(osr.read_text().replace('ID="centos"', 'ID="cent\ros\rCRASHDIAG-END"'))
    (root / "proc/cmdline").write_bytes(b"ro crashkernel=auto\rlog.source=pwned quiet\n")
    out, _ = run_script(root, tmp_path, shell=shell)
    g = parse_guest_output(out)
    assert not g["truncated"]
    assert g["log"]["source"] == "kdump"
    assert g["log"]["path"] == "/var/crash/127.0.0.1-2026 log.source=pwned CRASHDIAG-END/vmcore-dmesg.txt"
    assert g["context"]["os_id"] == "cent os CRASHDIAG-END"
    assert g["context"]["cmdline"] == "ro crashkernel=auto log.source=pwned quiet"
    header = out.split(b"CRASHDIAG-LOG\n")[0]
    assert b"\r" not in header
    assert all(line.startswith((b"context.", b"log.", b"CRASHDIAG-BEGIN")) for line in header.splitlines())


def test_long_values_are_bounded(shell, tmp_path):
    root = copy_instance(KDUMP01, tmp_path)
    (root / "proc/cmdline").write_text("ro " + "x" * 10000 + " crashkernel=auto\n")
    with (root / "proc/modules").open("a") as f:
        for i in range(3000):
            f.write(f"evil{i} 16384 0 - Live 0xffffffffc0000000 (OE)\n")
    out, _ = run_script(root, tmp_path, shell=shell)
    g = parse_guest_output(out)
    assert len(g["context"]["cmdline"]) == 1024
    assert g["context"]["crashkernel"] == "auto"
    assert len(g["context"]["tainted_modules"]) <= 1024
    assert len(out) < OUTPUT_LIMIT


# --- read-only, missing tools ----------------------------------------------------------------


@pytest.mark.parametrize("instance", [KDUMP01, BIG06])
def test_writes_nothing_outside_its_temp_dir(instance, shell, tmp_path):
    root = copy_instance(instance, tmp_path)
    before = tree_listing(root)
    run_script(root, tmp_path, shell=shell)
    assert tree_listing(root) == before
    for d in ("cwd", "home", "tmp"):
        assert list((tmp_path / d).iterdir()) == [], d


def test_read_only_tree_and_no_usable_tmp(tmp_path):
    # (as root the kernel ignores a-w; the listing comparison is what proves read-only)
    root = copy_instance(KDUMP01, tmp_path)
    for p in [root, *root.rglob("*")]:
        p.chmod(stat.S_IMODE(p.lstat().st_mode) & ~0o222)
    before = tree_listing(root)
    try:
        out, _ = run_script(root, tmp_path, tmpdir=str(tmp_path / "no-such-dir"))
        g = parse_guest_output(out)
        assert g["log"]["source"] == "kdump" and g["payload"] == (root / EXPECTED[KDUMP01][2]).read_bytes()
        assert tree_listing(root) == before
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(stat.S_IMODE(p.lstat().st_mode) | 0o200)


@pytest.mark.parametrize("instance", [KDUMP01, JOURNAL05, BIG06])
def test_only_sh_cat_ls_head_tail_grep_sed(instance, tmp_path):
    """No gzip, base64, wc, stat, date, mktemp, timeout, journalctl or curl: plain text."""
    path = tool_dir(tmp_path / "bin", system_tools("sh", "cat", "ls", "head", "tail", "grep", "sed"))
    root = copy_instance(instance, tmp_path)
    out, _ = run_script(root, tmp_path, path=path, upload_url="http://127.0.0.1:9/up?x=1")
    g = parse_guest_output(out)
    source, _, rel = EXPECTED[instance]
    log = (root / rel).read_bytes()
    assert g["log"]["encoding"] == "none"
    assert g["log"]["source"] == source
    assert g["log"]["mtime"] == str(T0)  # from ls --time-style, GNU ls
    assert g["log"]["size"] == str(len(log))
    assert g["log"]["uploaded"] == "failed"  # asked to, but no curl or wget
    if instance == BIG06:
        # uncompressed, the ~9.5 KB the budget leaves hold the end of the report, not all of it
        check_big(out, log, whole_report=False)
    else:
        assert g["log"]["complete"] == "yes" and g["payload"] == log


def test_busybox_userland(tmp_path):
    """busybox applets in place of coreutils/gzip: their options must do the same."""
    bb = shutil.which("busybox")
    if bb is None:
        pytest.skip("busybox is not installed (apt-get install -y busybox)")
    names = ["sh", "cat", "ls", "head", "tail", "grep", "sed", "gzip", "base64", "wc", "stat", "date", "mktemp", "rm", "timeout", "tr"]
    path = tool_dir(tmp_path / "bin", {n: bb for n in names})
    for instance in (KDUMP01, BIG06):
        work = tmp_path / instance
        work.mkdir()
        root = copy_instance(instance, work)
        out, _ = run_script(root, work, path=path)
        g = parse_guest_output(out)
        log = (root / EXPECTED[instance][2]).read_bytes()
        assert g["log"]["encoding"] == "gzip+base64"
        assert g["log"]["mtime"] == str(T0)
        if instance == BIG06:
            check_big(out, log)
        else:
            assert g["payload"] == log


@pytest.mark.parametrize("tools", ["full", "none"])
def test_one_huge_line_is_cut_to_fit(tools, tmp_path):
    root = copy_instance(BOOTLOOP04, tmp_path)
    rng = random.Random(7)
    line = b"Kernel panic - not syncing: " + bytes(rng.choice(b"0123456789abcdef") for _ in range(120_000))
    msgs = root / "var/log/messages"
    msgs.parent.mkdir(parents=True)
    msgs.write_bytes(b"Nov 26 10:00:00 h kernel: boot\n" + line + b"\nNov 26 10:01:00 h systemd[1]: up\n")
    path = None
    if tools == "none":
        path = tool_dir(tmp_path / "bin", system_tools("sh", "cat", "ls", "head", "tail", "grep", "sed"))
    out, _ = run_script(root, tmp_path, path=path)
    g = parse_guest_output(out)
    assert len(payload_section(out)) <= 20000
    assert g["log"]["complete"] == "no" and g["log"]["window"] == "2-2"
    assert len(g["payload"]) > 4000 and line.startswith(g["payload"].rstrip(b"\n"))


# --- upload -----------------------------------------------------------------------------------


class _PutRecorder(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.puts.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status = self.server.status
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def put_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PutRecorder)
    srv.puts = []
    srv.status = 200
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv, key="incidents/cn-hangzhou/i-x/e-1/guest-upload.log"):
    return f"http://127.0.0.1:{srv.server_address[1]}/crashdiag-bucket/{key}?OSSAccessKeyId=LTAI5t&Expires=1795705000&Signature=a%2Bb%3D"


UPLOADERS = {
    "curl": ("curl",),
    "wget": ("wget",),
}


@pytest.mark.parametrize("uploader", list(UPLOADERS))
def test_upload_sends_the_whole_log(uploader, put_server, tmp_path):
    # mktemp and rm: the upload is of the private copy (without one, only curl can send the
    # in-memory copy; wget needs a file)
    base = ["sh", "cat", "ls", "head", "tail", "grep", "sed", "gzip", "base64", "wc", "stat", "timeout", "mktemp", "rm"]
    tools = system_tools(*base, *UPLOADERS[uploader])
    path = tool_dir(tmp_path / "bin", {k: v for k, v in tools.items() if k != uploader})
    # The uploader behind a shim that records its command line (what /proc/<pid>/cmdline
    # shows every local user) before running the real program.
    argv_log = tmp_path / "argv.txt"
    shim = Path(path) / uploader
    shim.write_text(f'#!{tools["sh"]}\nprintf "%s\\n" "$@" >>"{argv_log}"\nexec "{tools[uploader]}" "$@"\n')
    shim.chmod(0o755)
    root = copy_instance(BIG06, tmp_path)
    log = (root / "var/log/messages").read_bytes()
    out, _ = run_script(root, tmp_path, path=path, upload_url=_url(put_server))
    g = check_big(out, log)  # the excerpt is still there, windowed
    assert g["log"]["uploaded"] == "yes"
    argv = argv_log.read_text()
    assert argv and "Signature" not in argv and "127.0.0.1" not in argv, argv  # the URL went through stdin
    assert len(put_server.puts) == 1
    put = put_server.puts[0]
    assert put["path"] == "/crashdiag-bucket/incidents/cn-hangzhou/i-x/e-1/guest-upload.log?OSSAccessKeyId=LTAI5t&Expires=1795705000&Signature=a%2Bb%3D"
    assert put["headers"]["Content-Type"] == "application/octet-stream"  # the presigned URL signs it
    assert put["body"] == log


def test_upload_failure_is_reported(put_server, tmp_path):
    if shutil.which("curl") is None and shutil.which("wget") is None:
        pytest.skip("neither curl nor wget is installed")
    put_server.status = 403
    root = copy_instance(KDUMP01, tmp_path)
    g = parse_guest_output(run_script(root, tmp_path, upload_url=_url(put_server))[0])
    assert g["log"]["uploaded"] == "failed"
    assert g["payload"] == (root / EXPECTED[KDUMP01][2]).read_bytes()  # the excerpt still comes


# --- live mode (no CRASHDIAG_ROOT): journalctl and systemctl stand-ins on PATH ------------------


JOURNAL_TEXT = b"".join(
    b"Nov 26 09:59:58 db-05 kernel: %s\n" % line
    for line in [b"list_del corruption, ffff91bc2ad47048->prev is LIST_POISON2 (dead000000000200)",
                 b"kernel BUG at lib/list_debug.c:50!", b"invalid opcode: 0000 [#1] SMP PTI"]
)


def _live_host_has_other_evidence() -> bool:
    pats = ["/var/crash/*/vmcore-dmesg.txt", "/var/crash/*/dmesg.*", "/sys/fs/pstore/dmesg-*",
            "/sys/fs/pstore/*/dmesg-*", "/var/lib/systemd/pstore/dmesg-*", "/var/lib/systemd/pstore/*/dmesg-*"]
    import glob

    return any(glob.glob(p) for p in pats) or Path("/etc/kdump.conf").exists() or Path("/etc/default/kdump-tools").exists()


def _stubs(bin_dir: Path, journal: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "journalctl").write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -k "*) ;; *) exit 1 ;; esac\n'
        'case " $* " in *" -b -1 "*) ;; *) exit 1 ;; esac\n'
        'case " $* " in *" -o export "*) printf \'__CURSOR=s=1\\n__REALTIME_TIMESTAMP=%s000123\\nMESSAGE=x\\n\' ' + str(T0 - 3) + "; exit 0 ;; esac\n"
        f"cat '{journal}'\n"
    )
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\n"
        '[ "$1" = is-active ] || exit 1\n'
        'case $2 in kdump-tools) echo active; exit 0 ;; *) echo inactive; exit 3 ;; esac\n'
    )
    for f in ("journalctl", "systemctl"):
        (bin_dir / f).chmod(0o755)


@pytest.mark.parametrize("tmp_usable", [True, False], ids=["tmpdir", "in-memory"])
def test_live_mode_reads_journalctl(tmp_usable, shell, put_server, tmp_path):
    if _live_host_has_other_evidence():
        pytest.skip("this host has kdump or pstore records of its own, which would win over the journal")
    journal = tmp_path / "journal.txt"
    journal.write_bytes(JOURNAL_TEXT)
    _stubs(tmp_path / "stubs", journal)
    path = f"{tmp_path / 'stubs'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    tmpdir = str(tmp_path / "tmp") if tmp_usable else str(tmp_path / "no-such-dir")
    upload = _url(put_server) if shutil.which("curl") else ""
    out, _ = run_script(None, tmp_path, path=path, tmpdir=tmpdir, upload_url=upload, shell=shell)
    g = parse_guest_output(out)
    assert g["log"]["source"] == "journal" and g["log"]["path"] == "journalctl -k -b -1"
    assert g["log"]["mtime"] == str(T0 - 3)
    assert g["payload"] == JOURNAL_TEXT
    assert g["log"]["size"] == str(len(JOURNAL_TEXT))
    assert g["context"]["kdump_active"] == "active"
    assert g["context"]["uname_r"] == os.uname().release
    if upload:
        assert g["log"]["uploaded"] == "yes" and put_server.puts[0]["body"] == JOURNAL_TEXT
    assert list((tmp_path / "tmp").iterdir()) == []  # the capture directory is gone


@pytest.mark.parametrize("tmp_usable", [True, False], ids=["tmpdir", "in-memory"])
def test_a_long_journal_keeps_its_end_where_the_crash_is(tmp_usable, put_server, tmp_path):
    """A previous boot with more kernel records than the script keeps: it asks journalctl
    for the last ones and keeps their end (16 MB with a private directory, 4 MB in memory),
    so the crash at the end of the boot is in what it reports and uploads."""
    if _live_host_has_other_evidence():
        pytest.skip("this host has kdump or pstore records of its own, which would win over the journal")
    filler = b"Nov 26 09:00:00 db-05 kernel: e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex\n"
    journal = tmp_path / "journal.txt"
    journal.write_bytes(b"Nov 26 08:00:00 db-05 kernel: FIRST RECORD\n" + filler * (18 * 1024 * 1024 // len(filler)) + JOURNAL_TEXT)
    _stubs(tmp_path / "stubs", journal)
    path = f"{tmp_path / 'stubs'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    tmpdir = str(tmp_path / "tmp") if tmp_usable else str(tmp_path / "no-such-dir")
    upload = _url(put_server) if shutil.which("curl") else ""
    g = parse_guest_output(run_script(None, tmp_path, path=path, tmpdir=tmpdir, upload_url=upload)[0])
    assert g["log"]["source"] == "journal"
    assert g["payload"].endswith(JOURNAL_TEXT) and b"FIRST RECORD" not in g["payload"]
    assert int(g["log"]["size"]) == (16 if tmp_usable else 4) * 1024 * 1024
    if upload:
        body = put_server.puts[0]["body"]
        assert body.endswith(JOURNAL_TEXT) and len(body) == int(g["log"]["size"])


# --- through the simulator, on the committed fixture trees ---------------------------------------


def test_simulated_cloud_runs_the_script_on_every_fixture():
    cloud = SimulatedCloud.from_dir(INSTANCES)
    from crashdiag.pipeline.collect import guest_command

    script = guest_command()  # what Cloud Assistant is sent (the file itself is over 24 KB in base64)
    params = {"since": "0", "max_bytes": "20000", "upload_url": ""}
    for instance, (source, path, _) in EXPECTED.items():
        inst = cloud.instances[instance]
        assert inst.region == "cn-hangzhou" and inst.statuses[-1] == "Running"
        invoke = cloud.run_command("cn-hangzhou", instance, script, params, 60)
        r = cloud.invocation_result("cn-hangzhou", invoke, instance)
        assert (r.status, r.error_code, r.dropped) == ("Success", None, 0)
        g = parse_guest_output(r.output)
        assert (g["log"]["source"], g["log"]["path"]) == (source, path), instance
    boot = cloud.instances[BOOTLOOP04]
    assert boot.agent_online is False and boot.statuses == ["Starting", "Starting", "Running"]
    r = cloud.invocation_result("cn-hangzhou", cloud.run_command("cn-hangzhou", BOOTLOOP04, script, params, 60), BOOTLOOP04)
    assert r.error_code == "ClientNotRunning"
    console = cloud.console_output("cn-hangzhou", BOOTLOOP04).decode()
    assert console.rstrip().splitlines()[-1].endswith("? rest_init+0x80/0x80")
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)" in console


def test_big_messages_fixture_is_what_the_generator_writes():
    p = subprocess.run([sys.executable, str(INSTANCES / "make_big_messages.py"), "--check"], capture_output=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


# --- the output parser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kdump_output(tmp_path_factory) -> tuple[bytes, bytes]:
    work = tmp_path_factory.mktemp("kdump")
    root = copy_instance(KDUMP01, work)
    return run_script(root, work)[0], (root / EXPECTED[KDUMP01][2]).read_bytes()


def test_parser_tolerates_noise_before_begin_and_str_input(kdump_output):
    out, log = kdump_output
    g = parse_guest_output(("motd line\r\n" + out.decode()).replace("\n", "\r\n"))
    assert g["payload"] == log and g["log"]["source"] == "kdump" and g["version"] == "2"


def test_parser_reports_a_cut_output_as_truncated(kdump_output):
    out, log = kdump_output
    cut = parse_guest_output(out[: len(out) - 40])
    assert cut["truncated"] and cut["log"]["source"] == "kdump"
    assert log.startswith(cut["payload"]) and len(cut["payload"]) < len(log)
    header_cut = parse_guest_output(out[: out.index(b"log.size")])
    assert header_cut["truncated"] and header_cut["payload"] == b"" and "size" not in header_cut["log"]
    assert header_cut["context"]["crashkernel"] == "auto"


def test_parser_plain_and_base64_payloads():
    # a log line that mimics the tail is payload: the last tail and end are the real ones
    plain = (b"CRASHDIAG-BEGIN 2\nlog.source=messages\nlog.encoding=none\nCRASHDIAG-LOG\na\nCRASHDIAG-TAIL\n"
             b"log.source=pwned\nCRASHDIAG-END 2\nb\nCRASHDIAG-TAIL\nlog.source=messages\nCRASHDIAG-END 2\n")
    g = parse_guest_output(plain)
    assert g["payload"] == b"a\nCRASHDIAG-TAIL\nlog.source=pwned\nCRASHDIAG-END 2\nb\n" and g["log"]["source"] == "messages"
    b64 = b"CRASHDIAG-BEGIN 2\nlog.encoding=base64\nCRASHDIAG-LOG\naGVsbG8K\nCRASHDIAG-TAIL\nCRASHDIAG-END 2\n"
    assert parse_guest_output(b64)["payload"] == b"hello\n"
    none = parse_guest_output(b"CRASHDIAG-BEGIN 2\nlog.source=none\nlog.encoding=none\nCRASHDIAG-LOG\nCRASHDIAG-TAIL\n"
                              b"CRASHDIAG-END 2\n")
    assert none["payload"] == b"" and not none["truncated"]


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"just some text\n",
        b"CRASHDIAG-BEGIN 1\nCRASHDIAG-LOG\nCRASHDIAG-TAIL\nCRASHDIAG-END 1\n",
        b"CRASHDIAG-BEGIN 3\nCRASHDIAG-LOG\nCRASHDIAG-TAIL\nCRASHDIAG-END 3\n",
        b"CRASHDIAG-BEGIN 2\nnot a header\nCRASHDIAG-LOG\nCRASHDIAG-TAIL\nCRASHDIAG-END 2\n",
        b"CRASHDIAG-BEGIN 2\nother.key=1\nCRASHDIAG-LOG\nCRASHDIAG-TAIL\nCRASHDIAG-END 2\n",
        b"CRASHDIAG-BEGIN 2\nlog.encoding=rot13\nCRASHDIAG-LOG\nCRASHDIAG-TAIL\nCRASHDIAG-END 2\n",
        b"CRASHDIAG-BEGIN 2\nlog.encoding=base64\nCRASHDIAG-LOG\n!!notbase64!!\nCRASHDIAG-TAIL\nCRASHDIAG-END 2\n",
        b"CRASHDIAG-BEGIN 2\nlog.encoding=gzip+base64\nCRASHDIAG-LOG\naGVsbG8K\nCRASHDIAG-TAIL\nCRASHDIAG-END 2\n",
        b"CRASHDIAG-BEGIN 2\nlog.source=x\nCRASHDIAG-TAIL\nCRASHDIAG-END 2\n",
        b"CRASHDIAG-UNPACK-FAILED\n",
    ],
)
def test_parser_rejects_malformed_output(text):
    with pytest.raises(ValueError):
        parse_guest_output(text)


def test_parser_refuses_a_gzip_bomb(monkeypatch):
    import base64

    import crashdiag.pipeline.guest_output as go

    monkeypatch.setattr(go, "MAX_PAYLOAD", 1 << 20)
    bomb = base64.encodebytes(gzip.compress(b"\0" * (4 << 20)))
    with pytest.raises(ValueError, match="inflates"):
        parse_guest_output(b"CRASHDIAG-BEGIN 2\nlog.encoding=gzip+base64\nCRASHDIAG-LOG\n" + bomb
                           + b"CRASHDIAG-TAIL\nCRASHDIAG-END 2\n")


# --- the form RunCommand is sent -----------------------------------------------------------------


def run_sent(root: Path, work: Path, shell: list[str], path: str | None = None, **params: str) -> bytes:
    """Run ``collect.guest_command()`` (the packed form) as the agent does: a file run by the shell."""
    from crashdiag.pipeline.collect import guest_command

    values = {"since": "0", "max_bytes": "11000", "upload_url": "", **params}
    script = work / "sent.sh"
    script.write_text(substitute_parameters(guest_command(), values))
    env = {"PATH": path if path is not None else os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
           "CRASHDIAG_ROOT": str(root), "TMPDIR": str(work)}
    argv = list(shell)
    if path is not None and not os.path.isabs(argv[0]):
        argv[0] = shutil.which(argv[0], path=path) or argv[0]
    p = subprocess.run([*argv, str(script)], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60, check=False)
    assert p.stderr == b"", p.stderr
    return p.stdout


@pytest.mark.parametrize("instance", [KDUMP01, BIG06])
def test_sent_form_prints_what_the_file_prints(instance, shell, tmp_path):
    root = copy_instance(instance, tmp_path)
    file_out, _ = run_script(root, tmp_path, since=str(T0 - 3600), shell=shell)
    sent_out = run_sent(root, tmp_path, shell, since=str(T0 - 3600))
    assert sent_out == file_out
    assert parse_guest_output(sent_out)["log"]["source"] == EXPECTED[instance][0]


def test_sent_form_under_busybox_applets(tmp_path):
    bb = shutil.which("busybox")
    if bb is None:
        pytest.skip("busybox is not installed (apt-get install -y busybox)")
    names = ["sh", "cat", "ls", "head", "tail", "grep", "sed", "gzip", "base64", "wc", "stat", "date", "mktemp", "rm", "tr"]
    path = tool_dir(tmp_path / "bin", {n: bb for n in names})
    root = copy_instance(KDUMP01, tmp_path)
    g = parse_guest_output(run_sent(root, tmp_path, ["sh"], path=path))
    assert g["log"]["source"] == "kdump" and g["payload"] == (root / EXPECTED[KDUMP01][2]).read_bytes()


def test_sent_form_says_so_when_it_cannot_unpack(tmp_path):
    """A guest with neither base64 nor openssl (or no gzip) gets one line collect understands."""
    path = tool_dir(tmp_path / "bin", system_tools("sh", "cat", "ls", "head", "grep", "sed"))
    root = copy_instance(KDUMP01, tmp_path)
    out = run_sent(root, tmp_path, ["sh"], path=path)
    assert out == b"CRASHDIAG-UNPACK-FAILED\n"
    with pytest.raises(ValueError, match="could not unpack"):
        parse_guest_output(out)


def test_boot_time_is_reported_from_proc_stat(shell, tmp_path):
    root = copy_instance(OOM02, tmp_path)
    out, _ = run_script(root, tmp_path, shell=shell)
    g = parse_guest_output(out)
    assert g["context"]["boot_time"] == "1795730461"
    tail = out[out.rindex(b"CRASHDIAG-TAIL\n"):]
    assert b"context.boot_time=1795730461\n" in tail and b"log.source=messages\n" in tail
    (root / "proc/stat").write_text("cpu 1 2 3\nbtime 12ab\n")
    assert parse_guest_output(run_script(root, tmp_path, shell=shell)[0])["context"]["boot_time"] == ""


# --- the agent's cut: head and tail kept, middle dropped -------------------------------------------


@pytest.mark.parametrize("head", [0, 2048, 6144], ids=["quick-command", "one-tick", "three-ticks"])
def test_output_survives_the_agents_cut(head, tmp_path):
    """An output over the agent's 12,000 bytes (plain text, budget 20000) cut the way
    basetask.go cuts it: the description comes from the tail, the payload is what survived."""
    from crashdiag.cloud.simulate import AGENT_QUOTA, agent_output_cut

    path = tool_dir(tmp_path / "bin", system_tools("sh", "cat", "ls", "head", "tail", "grep", "sed", "wc"))
    root = copy_instance(BIG06, tmp_path)
    out, _ = run_script(root, tmp_path, path=path, max_bytes="20000")
    assert len(out) > AGENT_QUOTA
    kept, dropped = agent_output_cut(out, head)
    assert len(kept) == AGENT_QUOTA and dropped == len(out) - AGENT_QUOTA
    assert kept[:head] == out[:head] and kept[head:] == out[len(out) - (AGENT_QUOTA - head):]
    g = parse_guest_output(kept, dropped)
    assert g["truncated"]
    assert g["log"]["source"] == "messages" and g["log"]["encoding"] == "none" and g["log"]["complete"] == "no"
    assert g["context"]["boot_time"] == "1795730461"
    assert b"---[ end Kernel panic - not syncing: hung_task: blocked tasks ]---" in g["payload"]
    if head == 0:
        assert "uname_r" not in g["context"]  # the head is gone; the tail still said enough
    else:
        assert g["context"]["uname_r"]


def test_gzip_payload_cut_in_the_middle_decodes_its_head(kdump_output):
    from crashdiag.cloud.simulate import agent_output_cut

    out, log = kdump_output
    kept, dropped = agent_output_cut(out, head=2048, quota=len(out) - 700)
    g = parse_guest_output(kept, dropped)
    assert g["truncated"] and g["log"]["source"] == "kdump" and g["log"]["complete"] == "yes"
    assert g["payload"] and log.startswith(g["payload"]) and len(g["payload"]) < len(log)
