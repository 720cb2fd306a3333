"""The serial console read for a kdump capture in progress (crashdiag.pipeline.capture).

Each file under tests/console/ is one console capture, in the shapes kexec-tools (RHEL
family, Alibaba Cloud Linux) and kdump-tools (Debian, Ubuntu) print.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crashdiag.pipeline.capture import (
    CAPTURE_BOOTING,
    FAILED,
    PANICKED,
    REBOOTED,
    SAVED,
    SAVING_VMCORE,
    UNKNOWN,
    read_capture,
)

CONSOLE = Path(__file__).with_name("console")


def view_of(name: str):
    return read_capture((CONSOLE / name).read_bytes())


@pytest.mark.parametrize("name, phase, in_progress", [
    ("el8-saving-vmcore.txt", SAVING_VMCORE, True),
    ("el8-saved-rebooting.txt", SAVED, True),
    ("el8-vmcore-failed.txt", FAILED, False),
    ("ubuntu-kdump-tools-saving.txt", SAVING_VMCORE, True),
    ("ubuntu-kdump-tools-saved.txt", SAVED, True),
    ("panic-no-kdump.txt", PANICKED, False),
    ("normal-boot-after-capture.txt", REBOOTED, False),
    ("ordinary-boot.txt", UNKNOWN, False),
])
def test_phase_of_each_console(name, phase, in_progress):
    v = view_of(name)
    assert v.phase == phase
    assert v.in_progress is in_progress


def test_makedumpfile_percentage_is_the_last_redraw():
    v = view_of("el8-saving-vmcore.txt")
    assert (v.step, v.percent) == ("Copying data", 37.9)
    assert v.dmesg_saved is True
    assert v.dump_dir == "/sysroot/var/crash/127.0.0.1-2026-11-29-09:31:02/"
    assert v.panic.endswith("Kernel panic - not syncing: sysrq triggered crash")
    assert "Copying data 38%" in v.describe()


def test_kdump_tools_progress_and_dump_dir():
    v = view_of("ubuntu-kdump-tools-saving.txt")
    assert (v.step, v.percent) == ("Excluding unnecessary pages", 88.2)
    assert v.dmesg_saved is None  # kdump-tools writes dmesg after the vmcore
    saved = view_of("ubuntu-kdump-tools-saved.txt")
    assert saved.dump_dir == "/var/crash/202611290931"
    assert saved.dmesg_saved is True


def test_failed_capture_keeps_what_it_saved():
    v = view_of("el8-vmcore-failed.txt")
    assert v.dmesg_saved is True
    assert "saving vmcore failed" in v.evidence[-1]
    assert "failed" in v.describe()


def test_progress_changes_the_token_and_a_stall_does_not():
    text = (CONSOLE / "el8-saving-vmcore.txt").read_text()
    a = read_capture(text)
    b = read_capture(text + "Copying data                                      : [ 40.2 %] |\n")
    assert a.token() != b.token()
    assert read_capture(text).token() == a.token()


def test_empty_and_binary_consoles():
    assert read_capture(None).phase == UNKNOWN
    assert read_capture(b"").phase == UNKNOWN
    assert read_capture(bytes(range(256)) * 100).phase == UNKNOWN


def test_capture_kernel_boot_alone():
    v = read_capture("[    0.000000] Command line: ro irqpoll nr_cpus=1 reset_devices elfcorehdr=524868K\n")
    assert v.phase == CAPTURE_BOOTING and v.in_progress


def test_hostile_console_is_read_in_linear_time():
    # Many near-markers on one 2 MB line, then the real state: the reader only looks at the
    # tail and never backtracks, so it answers; the bench, not this test, says how fast.
    line = "Copying data : [" * 120_000 + "saving to " * 60_000
    text = line + "\n[    3.5] kdump[543]: saving vmcore\nCopying data : [ 50.0 %] |\n"
    v = read_capture(text)
    assert (v.phase, v.percent) == (SAVING_VMCORE, 50.0)
