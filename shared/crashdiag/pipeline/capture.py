"""Read a crashed instance's serial console for the kdump capture under way.

After a panic with kdump configured, the instance runs a capture kernel that saves
``vmcore-dmesg.txt`` and the ``vmcore`` before it reboots into the normal system. That
can take many minutes on a large instance, and meanwhile Cloud Assistant is offline.
``GetInstanceConsoleOutput`` shows what the capture is doing; ``read_capture`` turns that
text into a phase (and, while makedumpfile copies, a percentage), so collect can tell a
dump in progress from a hung instance and decide how long to keep waiting.

The console is guest text: it is read line by line with a few literal searches and two
anchored patterns without nested repetition, over a bounded tail, so the cost is linear
in the bytes read whatever they hold.

Where each marker comes from (facts from the tools' sources; no code of theirs here):

- kexec-tools, the dracut module run in the capture kernel on RHEL/CentOS/Alibaba Cloud
  Linux (``kdump-lib-initramfs.sh`` / ``kdump.sh``): ``saving to <dir>``, ``saving
  vmcore-dmesg.txt to <dir>``, ``saving vmcore-dmesg.txt complete|failed``, ``saving
  vmcore``, ``saving vmcore complete``, ``saving vmcore failed, _exitcode:N``; the dump is
  written as ``vmcore-incomplete`` and renamed when done; then ``Executing final action``.
  systemd announces the unit as ``Kdump Vmcore Save Service``.
- kdump-tools on Debian/Ubuntu (``kdump-config savecore``): ``running makedumpfile ...
  dump-incomplete``, ``makedumpfile Completed.``, ``kdump-tools: saved vmcore in <dir>``,
  ``kdump-tools: failed to save vmcore in <dir>``, ``saved dmesg content in <dir>``.
- makedumpfile's progress lines: ``Copying data : [ 45.3 %] ...`` (also ``Excluding
  unnecessary pages``, ``Checking for memory holes``), redrawn with carriage returns.
- The kernel: ``Kernel panic - not syncing:``, the capture kernel's command line carries
  ``elfcorehdr=``; a later ``Linux version`` whose command line has no ``elfcorehdr=`` is
  the normal boot after the capture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Only the tail matters (the newest state), and console output is capped by ECS anyway.
TAIL_BYTES = 256 * 1024

# Phases, in the order a capture goes through them.
PANICKED = "panicked"              # a panic on the console, no capture kernel (yet)
CAPTURE_BOOTING = "capture_booting"  # the capture kernel started, nothing saved yet
SAVING_DMESG = "saving_dmesg"
SAVING_VMCORE = "saving_vmcore"    # makedumpfile copying (percent when shown)
SAVED = "saved"                    # vmcore complete; the normal boot comes next
FAILED = "failed"                  # the capture said it failed
REBOOTED = "rebooted"              # the normal system is booting after the capture
UNKNOWN = "unknown"                # nothing about a crash or a capture

IN_PROGRESS = frozenset({CAPTURE_BOOTING, SAVING_DMESG, SAVING_VMCORE, SAVED})

_PROGRESS = re.compile(
    r"(Copying data|Excluding unnecessary pages|Excluding free pages|Checking for memory holes)"
    r" *: *\[ *(\d{1,3}(?:\.\d)?) *%\]")
_DIR = re.compile(r"(?:saving (?:vmcore-dmesg\.txt )?to|saved vmcore in|failed to save vmcore in) +(/\S{1,512})")


@dataclass
class CaptureView:
    phase: str = UNKNOWN
    percent: float | None = None      # makedumpfile's last shown percentage
    step: str | None = None           # which makedumpfile step that percentage belongs to
    dmesg_saved: bool | None = None   # vmcore-dmesg.txt / dmesg.<stamp> written (None: not said)
    dump_dir: str | None = None
    panic: str | None = None          # the panic line, when the console still holds it
    evidence: list[str] = field(default_factory=list)  # the newest marker lines, oldest first

    @property
    def in_progress(self) -> bool:
        return self.phase in IN_PROGRESS

    def token(self) -> str:
        """What changes while a capture makes progress; equal tokens at two checks far
        apart mean nothing moved (a hung capture, not a slow one)."""
        pct = "" if self.percent is None else f"{self.percent:.1f}"
        return f"{self.phase}:{self.step or ''}:{pct}:{len(self.evidence)}:{self.evidence[-1] if self.evidence else ''}"

    def to_json(self) -> dict:
        return {"phase": self.phase, "percent": self.percent, "step": self.step, "dmesg_saved": self.dmesg_saved,
                "dump_dir": self.dump_dir, "panic": self.panic, "evidence": list(self.evidence)}

    def describe(self, lang: str = "en") -> str:
        """One plain sentence for a record or a notice, in ``lang`` (en or zh)."""
        words = _PHASE_WORDS.get(lang, _PHASE_WORDS["en"])
        if self.phase == SAVING_VMCORE and self.percent is not None:
            return words["saving_pct"].format(step=self.step or "copying", pct=self.percent)
        return words[self.phase]


_PHASE_WORDS = {
    "en": {
        PANICKED: "the kernel panicked; no capture kernel on the console yet",
        CAPTURE_BOOTING: "the kdump capture kernel is starting",
        SAVING_DMESG: "kdump is saving vmcore-dmesg.txt",
        SAVING_VMCORE: "kdump is saving the vmcore",
        "saving_pct": "kdump is saving the vmcore ({step} {pct:.0f}%)",
        SAVED: "kdump saved the vmcore; the instance is rebooting",
        FAILED: "kdump reported that saving the dump failed",
        REBOOTED: "the instance is booting its normal system after the capture",
        UNKNOWN: "the console shows no panic and no kdump capture",
    },
    "zh": {
        PANICKED: "内核已 panic，串口上还没有出现 kdump 捕获内核",
        CAPTURE_BOOTING: "kdump 捕获内核正在启动",
        SAVING_DMESG: "kdump 正在保存 vmcore-dmesg.txt",
        SAVING_VMCORE: "kdump 正在保存 vmcore",
        "saving_pct": "kdump 正在保存 vmcore（{step} {pct:.0f}%）",
        SAVED: "kdump 已保存 vmcore，实例正在重启",
        FAILED: "kdump 报告转储保存失败",
        REBOOTED: "转储完成后，实例正在启动正常系统",
        UNKNOWN: "串口上没有 panic，也没有 kdump 转储",
    },
}


def _lines(text: str):
    # Carriage returns redraw makedumpfile's progress line; treat them as line breaks.
    start = 0
    n = len(text)
    while start < n:
        nl = text.find("\n", start)
        end = n if nl < 0 else nl
        for part in text[start:end].split("\r"):
            if part:
                yield part
        start = end + 1


def read_capture(text: str | bytes | None) -> CaptureView:
    """What the console says about the crash and the kdump capture, newest state last."""
    view = CaptureView()
    if not text:
        return view
    if isinstance(text, bytes):
        text = text[-TAIL_BYTES:].decode("utf-8", "replace")
    else:
        text = text[-TAIL_BYTES:]
    capture_seen = False
    evidence: list[str] = []

    def mark(phase: str, line: str) -> None:
        # kdump-tools writes the dmesg after the vmcore: that does not undo "saved".
        if not (phase == SAVING_DMESG and view.phase in (SAVED, FAILED)):
            view.phase = phase
        evidence.append(line.strip()[:300])
        if len(evidence) > 8:
            del evidence[0]

    for line in _lines(text):
        if "Kernel panic - not syncing" in line:
            view.panic = line.strip()[:300]
            if not capture_seen:
                mark(PANICKED, line)
            continue
        if "Linux version " in line or "Command line:" in line or "Kernel command line:" in line:
            if "elfcorehdr=" in line:
                capture_seen = True
                mark(CAPTURE_BOOTING, line)
            elif capture_seen and ("Command line:" in line or "Kernel command line:" in line):
                mark(REBOOTED, line)
            continue
        if "Kdump Vmcore Save Service" in line or "Starting crashdump kernel" in line:
            capture_seen = True
            mark(CAPTURE_BOOTING, line)
            continue
        m = _PROGRESS.search(line)
        if m:
            capture_seen = True
            for m in _PROGRESS.finditer(line):  # the last redraw on this line wins
                view.step, view.percent = m.group(1), float(m.group(2))
            view.phase = SAVING_VMCORE
            continue
        if "vmcore" not in line and "makedumpfile" not in line and "dmesg" not in line:
            continue
        d = _DIR.search(line)
        if d:
            view.dump_dir = d.group(1).rstrip(".")
        if "--dump-dmesg" in line or "dmesg log is saved to" in line:
            # kdump-tools extracts the log after the vmcore: the vmcore's phase stands.
            capture_seen = True
            view.dmesg_saved = True if "saved" in line else view.dmesg_saved
            evidence.append(line.strip()[:300])
            del evidence[:-8]
        elif "saving vmcore-dmesg.txt complete" in line or "saved dmesg content in" in line:
            capture_seen, view.dmesg_saved = True, True
            mark(SAVING_DMESG, line)
        elif "saving vmcore-dmesg.txt failed" in line:
            capture_seen, view.dmesg_saved = True, False
            mark(SAVING_DMESG, line)
        elif "saving vmcore-dmesg.txt" in line:
            capture_seen = True
            mark(SAVING_DMESG, line)
        elif "saving vmcore complete" in line or "saved vmcore in" in line or "makedumpfile Completed" in line:
            capture_seen = True
            mark(SAVED, line)
        elif "saving vmcore failed" in line or "failed to save vmcore" in line:
            capture_seen = True
            mark(FAILED, line)
        elif "saving vmcore" in line or "running makedumpfile" in line:
            capture_seen = True
            view.percent, view.step = None, None
            mark(SAVING_VMCORE, line)
    view.evidence = evidence
    return view


__all__ = ["CaptureView", "read_capture", "IN_PROGRESS", "PANICKED", "CAPTURE_BOOTING", "SAVING_DMESG",
           "SAVING_VMCORE", "SAVED", "FAILED", "REBOOTED", "UNKNOWN"]
