"""The crashdiag command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "cases" / "seed"


def run(*args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(ROOT / "shared"))
    e.pop("CRASHDIAG_LANG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "crashdiag.cli", *args], input=stdin, capture_output=True, env=e, cwd=ROOT)


def test_json_for_one_path_is_one_object():
    p = run("classify", "--json", str(SEED / "01-oom-panic-on-oom.txt"))
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["kind"] == "oom_panic"
    assert d["rule"]["id"] == "oom-panic-on-oom"
    assert d["source"].endswith("01-oom-panic-on-oom.txt")
    assert d["kernel"]["release"] == "3.10.0-1127.10.1.el7.x86_64"


def test_json_lines_for_several_paths_each_with_its_source():
    paths = [str(SEED / "09-blk-mq-timeout-null-deref.txt"), str(SEED / "12-rootfs-mount-failure.txt")]
    p = run("classify", "--json", *paths)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert [json.loads(x)["source"] for x in lines] == paths
    assert [json.loads(x)["kind"] for x in lines] == ["null_deref", "vfs_no_root"]


def test_stdin_and_gzip(tmp_path):
    log = (SEED / "04-intel-pstate-divide-error.txt").read_bytes()
    p = run("classify", "--json", "-", stdin=log)
    assert json.loads(p.stdout)["kind"] == "divide_error"
    gz = tmp_path / "vmcore-dmesg.txt.gz"
    gz.write_bytes(gzip.compress(log))
    assert json.loads(run("classify", "--json", str(gz)).stdout)["kind"] == "divide_error"


def test_terminal_summary_in_chinese():
    p = run("classify", "--lang", "zh", str(SEED / "01-oom-panic-on-oom.txt"))
    out = p.stdout.decode()
    assert p.returncode == 0
    assert "类型: oom_panic" in out and "vm.panic_on_oom" in out and "处理建议" in out


def test_language_from_environment():
    p = run("classify", "--json", str(SEED / "01-oom-panic-on-oom.txt"), env={"CRASHDIAG_LANG": "zh"})
    assert "内存" in json.loads(p.stdout)["rule"]["cause"]


def _file(name: str, data: bytes):
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name

    return make


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.txt", "no such file"),
        (lambda d: d, "is a directory"),
        (_file("empty.txt", b""), "empty log"),
        (_file("blank.txt", b"\n\n  \x00\x00\n"), "empty log"),
        (_file("vmcore", b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 64), "kernel dump (vmcore)"),
        (_file("image.png", b"\x89PNG\r\n" + bytes(range(256)) * 64), "binary data"),
    ],
    ids=["missing", "directory", "empty", "blank", "vmcore", "binary"],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path, make, message):
    path = make(tmp_path)
    p = run("classify", "--json", str(path))
    assert p.returncode == 2
    err = p.stderr.decode().strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert p.stdout == b""


def test_bad_input_among_good_still_prints_the_good(tmp_path):
    p = run("classify", "--json", str(tmp_path / "nope"), str(SEED / "12-rootfs-mount-failure.txt"))
    assert p.returncode == 2
    assert json.loads(p.stdout)["kind"] == "vfs_no_root"


def test_healthy_log_is_none(tmp_path):
    f = tmp_path / "dmesg.txt"
    f.write_text(
        "[    0.000000] Linux version 5.10.134-16.al8.x86_64 (mockbuild@x) (gcc 10.2.1) #1 SMP\n"
        "[    0.000000] Command line: BOOT_IMAGE=/vmlinuz root=UUID=1 crashkernel=0M-2G:0M,2G-8G:192M\n"
        "[    0.512000] NMI watchdog: Perf NMI watchdog permanently disabled\n"
        "[    0.600000] ACPI BIOS Error (bug): Could not resolve symbol [\\_SB.PCI0], AE_NOT_FOUND\n"
        "[    1.000000] [Firmware Bug]: TSC_DEADLINE disabled due to Errata\n"
        "[    2.000000] mce: CPU0: Thermal monitoring enabled (TM1)\n"
        "[ 3000.000000] java[1234]: java.lang.OutOfMemoryError: Java heap space\n"
        "[ 3001.000000] panic: runtime error: invalid memory address or nil pointer dereference\n"
    )
    d = json.loads(run("classify", "--json", str(f)).stdout)
    assert d["kind"] == "none" and d["rule"] is None and d["reports"] == []
    assert d["kernel"]["stream"] == "alinux3"
    assert d["boot"]["crashkernel"] == "0M-2G:0M,2G-8G:192M"


def test_rules_list_and_show():
    p = run("rules")
    assert p.returncode == 0
    assert "oom-panic-on-oom" in p.stdout.decode()
    p = run("rules", "show", "oom-panic-on-oom")
    assert "vm.panic_on_oom" in p.stdout.decode()
    assert run("rules", "show", "no-such-rule").returncode == 2
