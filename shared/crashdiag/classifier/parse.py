"""Group kernel lines into crash reports and pull out what each one says.

``ReportBuilder`` is fed one ``LogLine`` at a time (so a log of any size streams
through it) and keeps the reports it finds. A report is the run of lines around
one crash: its events (the format lines from ``formats.FORMATS``), the task
header, RIP, modules, call trace and the final panic line.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from . import formats as F
from . import regex as re  # RE2, linear in the text: every pattern here may meet guest text
from .logtext import LogLine

MAX_REPORT_LINES = 600  # lines stored per report; later lines still count and can add events
MAX_REPORTS = 200  # reports kept in detail; later ones are counted only
PRELUDE_LINES = 120  # lines before a report kept as its prelude
NEAR = 60  # lines within which a continuation belongs to the open report
ABSORB = 40  # lines within which a preamble (sysrq trigger, list corruption) takes the next event
PANIC_GAP_SECONDS = 180.0  # a panic this long after a report's last event is not its consequence
PANIC_MAX_LINES = 20000  # an OOM dump's task table can be thousands of lines long


@dataclass
class Frame:
    function: str | None
    offset: str | None = None
    module: str | None = None
    reliable: bool = True
    context: str | None = None  # IRQ, NMI, SOFTIRQ, TASK when the trace marks it
    address: str | None = None

    def to_json(self) -> dict:
        return {
            "function": self.function,
            "offset": self.offset,
            "module": self.module,
            "reliable": self.reliable,
            "context": self.context,
        }


@dataclass
class Event:
    fmt: F.Format
    groups: dict[str, str]
    index: int  # position in the report's line count
    line: LogLine


@dataclass
class Report:
    """One crash report as found in the log, with the facts extracted from it."""

    boot_release: str | None = None
    boot_cmdline: str | None = None
    boot_hardware: str | None = None
    lines: list[LogLine] = field(default_factory=list)
    prelude: list[LogLine] = field(default_factory=list)  # lines just before the report
    count: int = 0  # lines seen, including those beyond MAX_REPORT_LINES
    events: list[Event] = field(default_factory=list)
    panic: str | None = None
    panic_line: LogLine | None = None
    ended: bool = False
    ended_at: int = 0
    headless: bool = False  # began at a RIP line: the header line of the oops was lost
    closed: bool = False
    cut_marker: bool = False  # a "..." line: someone elided part of the report
    last_event_index: int = 0
    last_event_ts: float | None = None

    # Extracted facts (filled by finish()).
    kind: str = "other"
    fatal: bool = False
    cpu: int | None = None
    pid: int | None = None
    comm: str | None = None
    taint: str | None = None
    release: str | None = None
    hardware: str | None = None
    kdump_loaded: bool | None = None
    rip: dict | None = None
    bad_rip: bool = False
    cr2: str | None = None
    modules: list[tuple[str, str]] = field(default_factory=list)
    last_unloaded: str | None = None
    trace: list[Frame] = field(default_factory=list)
    trace_cut: bool = False
    # Modules the log saw taint the kernel when they loaded ("x: loading out-of-tree module
    # taints kernel."), name -> taint letter, as known when the report began.
    tainting: dict[str, str] = field(default_factory=dict)

    @property
    def first_line(self) -> LogLine:
        return self.events[0].line if self.events else self.lines[0]

    def add_line(self, line: LogLine) -> None:
        self.count += 1
        if len(self.lines) < MAX_REPORT_LINES:
            self.lines.append(line)

    def main_event(self) -> Event:
        """The most specific event; a generic panic line never outranks the report it ends,
        and a panic that only says what the crash led to (init killed) never outranks it."""
        events = [e for e in self.events if e.fmt.note != "generic"] or self.events
        if self.consequence_event() is not None:
            events = [e for e in events if e is not self.consequence_event()]
        best = events[0]
        for e in events[1:]:
            if F.RANK[e.fmt.kind] > F.RANK[best.fmt.kind]:
                best = e
        return best

    def consequence_event(self) -> Event | None:
        """The "Attempted to kill init!" panic when an oops came first: the oops killed the
        task that was init, so the first fatal report is the cause and the panic its consequence."""
        for i, e in enumerate(self.events):
            if e.fmt.kind == "init_killed" and e.fmt.role == F.PANIC:
                if any(c.fmt.kind in F.CAUSE_KINDS or c.fmt.title.startswith("Oops") for c in self.events[:i]):
                    return e
                return None
        return None


# --- line formats used for extraction ----------------------------------------------

_CPU_HEADER = re.compile(r"^CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<rest>.*)$")
_EL6_HEADER = re.compile(r"^Pid: (?P<pid>\d+), comm: (?P<rest>.*)$")
_EL6_PROCESS = re.compile(r"^Process (?P<comm>.+?) \(pid: (?P<pid>\d+), (?:threadinfo|ti)")
_EL6_CPU = re.compile(r"^CPU (?P<cpu>\d+)\s*$")
_RELEASE = re.compile(r"^\d+\.\d+(?:\.\d+)?[-.+~\w]*$")
_HARDWARE = re.compile(r"^Hardware name: (?P<hw>.+)$")
_RIP = re.compile(
    r"^(?:RIP|IP|EIP|pc|NIP|PC is at|EIP is at)\s*:?\s*(?:(?P<cs>[0-9a-f]{4}):)?"
    r"(?:\[<(?P<addr>[0-9a-f]+)>\]\s*)*(?:\? )?(?P<target>[^\s\[]+)?"
    r"(?:\s+\[(?P<module>[\w-]+)(?: [0-9a-f]+)?\])?"
)
_SYMBOL = re.compile(r"^(?P<func>[A-Za-z_.$][\w.$]*)\+(?P<off>0x[0-9a-f]+)(?:/0x[0-9a-f]+)?$")
_CALL_TRACE = re.compile(r"^(?:Call Trace|Call trace|Backtrace)\s*:?\s*$")
# A frame has an offset, or no offset and a source file:line (an inlined frame in a
# symbolised trace); RE2 has no lookahead, so the second form spells the file out.
_FRAME = re.compile(
    r"^(?:\[<(?P<addr>[0-9a-f]+)>\]\s*)?(?:\[<[0-9a-f]+>\]\s*)?(?P<unrel>\?\s+)?"
    r"(?P<func>[A-Za-z_.$][\w.$]*)"
    r"(?:\+(?P<off>0x[0-9a-f]+)(?:/0x[0-9a-f]+)?(?:\s+\[(?P<module>[\w-]+)(?: [0-9a-f]+)?\])?(?:\s+\S+:\d+(?::\d+)?)?"
    r"|\s+\S+\.[chS]:\d+(?:\S*:\d+)?)"
    r"(?:\s+\[inline\])?\s*$"
)
# arm32: "[<c0..>] (func+0x10/0x14) from [<c0..>] (caller+0x..)", the offset sometimes left out.
_FRAME_FROM = re.compile(r"^\s*\[<[0-9a-f]+>\]\s*\(?(?P<func>[A-Za-z_.$][\w.$]*)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?\)?\s+from\s")
_TRACE_MARK = re.compile(r"^<(?P<ctx>/?(?:IRQ|NMI|EOI|TASK|SOFTIRQ|#DF|DF|MCE|VC|#VC|DB|#DB))>\s*(?P<rest>.*)$")
# The crash utility's "bt": " #3 [ffff8a7d3a1b7b88] oops_end at ffffffff8b76c758 [mod]", the
# trapped context as "[exception RIP: func+32]", the task as 'PID: 1 TASK: .. CPU: 3 COMMAND: "x"'.
_CRASH_FRAME = re.compile(r"^#\d+ \[[0-9a-f]+\] (?P<func>[A-Za-z_.$][\w.$]*) at (?P<addr>[0-9a-f]+)(?: \[(?P<module>[\w-]+)\])?")
_CRASH_EXCEPTION_RIP = re.compile(r"^\[exception RIP: (?P<func>[A-Za-z_.$][\w.$]*)(?:\+(?P<off>\d+))?\]")
_CRASH_TASK = re.compile(r'^PID: (?P<pid>\d+)\s+TASK: [0-9a-f]+\s+CPU: (?P<cpu>\d+)\s+COMMAND: "(?P<comm>[^"]*)"')
# kernel/module: "%s: loading out-of-tree module taints kernel.", "%s: module verification
# failed: signature and/or required key missing - tainting kernel", "%s: module license '%s'
# taints kernel." (O, E and P in the taint flags).
_TAINTING_MODULE = re.compile(
    r"^(?P<mod>[\w-]+): (?:(?P<o>loading out-of-tree module taints kernel)|(?P<e>module verification failed)|"
    r"(?P<p>module license '[^']*' taints kernel))"
)
_CRASH_RELEASE = re.compile(r"^\s*RELEASE: (?P<release>\S+)")
_MODULES = re.compile(r"^Modules linked in:\s*(?P<mods>.*)$")
_MODULE_TOKEN = re.compile(r"(?P<name>[\w-]+)(?:\((?P<flags>[A-Z+-]*)\))?")
_LAST_UNLOADED = re.compile(r"\[last unloaded: (?P<name>[\w-]+)(?:\([A-Z+-]*\))?\]")
_MODULE_LINE = re.compile(r"^(?:[\w-]+(?:\([A-Z+-]+\))?\s+)+(?:[\w-]+(?:\([A-Z+-]+\))?)\s*(?:\[last unloaded: [^\]]+\])?\s*$")
_CR2 = re.compile(r"^CR2: (?P<cr2>[0-9a-f]+)")
_END = re.compile(r"^---\[ end (?:trace|Kernel panic)")
_CUT = re.compile(r"^\.{3,}\s*$|\s\.{3,}$")
_BAD_RIP = re.compile(r"^Code: Bad RIP value")
_LINUX_VERSION = re.compile(r"^Linux version (?P<release>\S+)")
_CMDLINE = re.compile(r"^(?:Kernel )?[Cc]ommand line: (?P<cmdline>.*)$")
_DMI = re.compile(r"^DMI: (?P<hw>.+)$")
# Frames a complete call trace ends with: the syscall entry, a kernel thread, the idle loop.
_TRACE_BOTTOM = re.compile(
    r"^(?:entry_SYSCALL\w*|system_call\w*|ret_from_fork\w*|kthread|int_signal|do_syscall_\d+|"
    r"cpu_startup_entry|start_secondary|secondary_startup_64\w*|x86_64_start_\w+|rest_init|start_kernel|"
    r"cpu_idle|cpu_bringup_and_idle|el0_svc\w*|el0t_64_sync\w*|ret_from_intr|common_interrupt|tracesys\w*|"
    r"sysenter_\w+|ia32_sysenter_target|kernel_thread_helper|child_rip)$"
)
# Exception entry frames: the trapped context's registers follow them, then its own frames
# (a WARN() under panic_on_warn shows "... invalid_op", a register dump, then the caller).
_EXCEPTION_ENTRY = re.compile(r"^(?:retint_kernel|invalid_op|asm_exc_\w+|exc_\w+|page_fault|async_page_fault|general_protection|divide_error|do_invalid_op|do_error_trap)$")
# Lines that end a call trace for certain (rather than interleaving with it).
_TRACE_END = re.compile(r"^(?:RIP|IP:|Code:|---\[|Modules linked in|CPU: |Kernel panic|RSP|CR2|Mem-Info|NMI backtrace|Kernel Offset|Sending NMI|Call Trace|Call trace|\S+ invoked oom-killer|INFO: |BUG: |WARNING: )")
# A new report's first line: the trace above it has ended.
_TRACE_HEAD = re.compile(r"^(?:INFO: |BUG: |WARNING: |Kernel panic|NMI backtrace|Sending NMI|\S+ invoked oom-killer)")
_KERNEL_RIP = re.compile(r"^(?:RIP: (?:0010|0060):|IP: \[<|IP: [A-Za-z_]|RIP \[<|pc : |EIP: 0060:)")


def _quick_check(text: str) -> bool:
    """Cheap test before running the format table: every format line holds one of these."""
    return (
        "BUG" in text
        or "panic" in text
        or "fault" in text
        or "rror" in text
        or "Oops" in text
        or "WARNING" in text
        or "INFO:" in text
        or "orruption" in text
        or "double add" in text
        or "LOCKUP" in text
        or "lockup" in text
        or "stall" in text
        or "starved" in text
        or "oom" in text
        or "memory" in text
        or "Killed process" in text
        or "Trigger a crash" in text
        or "VFS" in text
        or "NMI" in text
        or "UBSAN" in text
        or "allocation failure" in text
        or "vmalloc" in text
        or "stack" in text
        or "Unable to handle" in text
        or "unable to" in text
        or "NX-protected" in text
        or "Task in" in text
        or "blocked for more than" in text
        or "unregister_netdevice" in text
        or "XFS" in text
        or "opcode" in text
        or "EXT4-fs" in text
    )


# pr_fmt() prefixes some subsystems put before a crash message ("traps: PANIC: double
# fault"); Linux 6.9+ prefixes every die() string with "Oops: ".
_SUBSYSTEM_PREFIX = re.compile(r"^(?:traps|x86/mm|mm|kernel|panic|Oops): ")


def match_format(text: str) -> tuple[F.Format, dict[str, str]] | None:
    text = text.lstrip()
    if not _quick_check(text):
        return None
    found = _match(text)
    m = _SUBSYSTEM_PREFIX.match(text)
    if m and (found is None or found[0].kind == "other"):
        inner = _match(text[m.end() :])
        if inner is not None and inner[0].kind != "other":
            return inner
    return found


def _match(text: str) -> tuple[F.Format, dict[str, str]] | None:
    for fmt in F.FORMATS:
        m = fmt.pattern.match(text)
        if m:
            return fmt, {k: v for k, v in m.groupdict().items() if v is not None}
    return None


# The event of a report that starts at its RIP line (the oops header line was lost).
_HEADLESS = F.Format("other", F.START, re.compile(""), "Oops in {frame}", "headless")
_CRASH_BT = F.Format("other", F.START, re.compile(""), "Oops in {frame}", "crash-bt")
_HEADER_STARTS = ("Modules linked in", "CPU: ", "Pid: ", "Hardware name", "task: ", "Oops")


class ReportBuilder:
    """Streams kernel lines in, keeps the crash reports found."""

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.dropped_reports = 0
        self.current: Report | None = None
        # Lines outside any report: the header of a headless oops, and what a report's rules
        # may read as its prelude (an NVMe timeout before a hung task, a TSC warning).
        self.recent: deque[LogLine] = deque(maxlen=PRELUDE_LINES)
        self.boot_release: str | None = None
        self.boot_cmdline: str | None = None
        self.boot_hardware: str | None = None
        self.releases: list[str] = []
        self.lines_seen = 0
        self.tainting: dict[str, str] = {}

    # -- feeding -----------------------------------------------------------------

    def feed(self, line: LogLine) -> None:
        self.lines_seen += 1
        text = line.text
        if text.startswith(("Linux version", "Command line", "Kernel command", "DMI: ")):
            self._boot_fact(text)
        elif "taint" in text and (m := _TAINTING_MODULE.match(text)):
            self.tainting.setdefault(m.group("mod"), "O" if m.group("o") else "E" if m.group("e") else "P")
        elif "RELEASE: " in text[:16]:  # the crash utility's banner
            m = _CRASH_RELEASE.match(text)
            if m:
                self.boot_release = m.group("release")
                self.releases.append(self.boot_release)
        found = match_format(text)
        cur = self.current
        if found:
            fmt, groups = found
            self._event(fmt, groups, line)
            return
        if cur is not None and not cur.closed:
            cur.add_line(line)
            if _END.match(text):
                cur.ended = True
                cur.ended_at = cur.count
            elif cur.ended and cur.count - cur.ended_at > 40:
                # Well past "---[ end trace ]---" with no panic: later lines are not ours.
                self._close()
            elif cur.count - cur.last_event_index > PANIC_MAX_LINES:
                self._close()
            return
        if _KERNEL_RIP.match(text):
            self._headless(line)
            return
        if text.startswith("PID: ") and _CRASH_TASK.match(text):
            # The crash utility's "bt" with no report open: the dump itself says the kernel
            # died; its exception frames say how (see _crash_kind).
            r = self._new()
            r.add_line(line)
            r.events.append(Event(_CRASH_BT, {}, r.count, line))
            r.last_event_index = r.count
            return
        self.recent.append(line)

    def end_window(self) -> None:
        """The next lines do not follow on from these (a gap in a big log, or the end)."""
        self._close()
        self.recent.clear()

    # -- internals -----------------------------------------------------------------

    def _boot_fact(self, text: str) -> None:
        m = _LINUX_VERSION.match(text)
        if m:
            self.boot_release = m.group("release")
            self.releases.append(self.boot_release)
            self.boot_cmdline = None
            return
        m = _CMDLINE.match(text)
        if m:
            self.boot_cmdline = m.group("cmdline")
            return
        m = _DMI.match(text)
        if m:
            self.boot_hardware = m.group("hw")

    def _new(self, line: LogLine | None = None) -> Report:
        self._close()
        r = Report(boot_release=self.boot_release, boot_cmdline=self.boot_cmdline, boot_hardware=self.boot_hardware,
                   prelude=list(self.recent), tainting=dict(self.tainting))
        if len(self.reports) < MAX_REPORTS:
            self.reports.append(r)
        else:
            self.dropped_reports += 1
        self.current = r
        self.recent.clear()
        return r

    def _close(self) -> None:
        if self.current is not None:
            self.current.closed = True
        self.current = None

    def _event(self, fmt: F.Format, groups: dict[str, str], line: LogLine) -> None:
        cur = self.current
        if cur is not None and not cur.closed and self._joins(cur, fmt, line):
            cur.add_line(line)
            self._attach(cur, fmt, groups, line)
            return
        before = list(self.recent)[-15:] if fmt.title.startswith("Oops") else []
        r = self._new()
        # A report opened by a bare "Oops" line lost its header line; the lines just
        # above it (arm64 "Mem abort info", a mangled "Unable to handle" line) still
        # say what faulted. Any other report starts at its own first line.
        for prev in before:
            r.add_line(prev)
        r.add_line(line)
        self._attach(r, fmt, groups, line)

    def _joins(self, cur: Report, fmt: F.Format, line: LogLine) -> bool:
        since = cur.count - cur.last_event_index
        last = cur.events[-1].fmt if cur.events else None
        absorbing = last is not None and last.role == F.PREAMBLE and since <= ABSORB
        if fmt.role == F.PANIC:
            if cur.panic is not None:
                return False
            if line.timestamp is not None and cur.last_event_ts is not None:
                gap = line.timestamp - cur.last_event_ts
                # Long after, or before it in time (the clock restarted: a new boot).
                if gap > PANIC_GAP_SECONDS or gap < 0:
                    return False
            return since <= PANIC_MAX_LINES
        if absorbing:
            return True
        if cur.ended:
            return False
        if fmt.role == F.CONT:
            same_family = last is not None and last.kind == fmt.kind
            return since <= (PANIC_MAX_LINES if same_family else NEAR)
        if fmt.role == F.PREAMBLE:
            # el7's list_debug WARNs first and prints "list_del corruption" as the
            # warning's message, right below it.
            return since <= 8 and fmt.kind == "list_corruption"
        if fmt.role == F.START and last is not None and last.kind == fmt.kind == "mce":
            return since <= NEAR
        if last is not None and last.note == fmt.note == "xfs":
            # XFS prints an error, then xfs_do_force_shutdown(), then the shutdown notice.
            return since <= NEAR
        if cur.headless and since <= 3 and not cur.events[1:]:
            return True
        return False

    def _attach(self, r: Report, fmt: F.Format, groups: dict[str, str], line: LogLine) -> None:
        r.events.append(Event(fmt, groups, r.count, line))
        r.last_event_index = r.count
        if line.timestamp is not None:
            r.last_event_ts = line.timestamp
        if fmt.role == F.PANIC or line.text.startswith("Kernel panic - not syncing"):
            if r.panic is None:
                r.panic = line.text.partition("Kernel panic - not syncing:")[2].strip().rstrip(".")
                r.panic_line = line

    def _headless(self, line: LogLine) -> None:
        """A kernel-mode RIP with no report open: an oops whose header line was lost. The
        oops header lines just above the RIP (modules, task, hardware) belong to it."""
        back = list(self.recent)[-13:]
        while back and not back[0].text.startswith(_HEADER_STARTS):
            back.pop(0)
        r = self._new()
        r.headless = True
        for prev in back:
            r.add_line(prev)
        r.add_line(line)
        r.events.append(Event(_HEADLESS, {}, r.count, line))
        r.last_event_index = r.count
        r.last_event_ts = line.timestamp

    def finish(self) -> list[Report]:
        self._close()
        for r in self.reports:
            extract(r)
        return self.reports


# --- extraction --------------------------------------------------------------------


def extract(r: Report) -> None:
    """Fill a report's facts from its lines."""
    in_trace = False
    trace_done = False
    misses = 0
    modules_open = False
    context: str | None = None
    left_irq = False  # past "</IRQ>": the interrupted context's registers, then its frames, follow
    for line in r.lines:
        t = line.text
        if modules_open:
            if _MODULE_LINE.match(t) and not t.startswith(("CPU", "Call")):
                _parse_modules(r, t)
                continue
            modules_open = False
        if in_trace:
            fr = _parse_frame(t, context)
            if fr is not None:
                r.trace.append(fr)
                misses = 0
                continue
            mk = _TRACE_MARK.match(t.strip())
            if mk:
                ctx = mk.group("ctx")
                context = None if ctx.startswith("/") or ctx == "EOI" else ctx.strip("#")
                left_irq = left_irq or ctx.startswith("/")
                rest = mk.group("rest")
                if rest:
                    fr = _parse_frame(rest, context)
                    if fr:
                        r.trace.append(fr)
                continue
            if _CUT.search(t):
                r.trace_cut = True
            elif misses < 6 and not _TRACE_END.match(t):
                # Other messages interleave with a trace on busy consoles; keep reading.
                misses += 1
                continue
            elif (context is not None or left_irq or (r.trace and _EXCEPTION_ENTRY.match(r.trace[-1].function or ""))) \
                    and misses < 40 and not t.startswith(("---[", "Kernel panic", "Call Trace", "Call trace")) \
                    and not _TRACE_HEAD.match(t):
                if r.rip is None:  # the trapped context's RIP sits in this register block
                    r.rip = _parse_rip(t)
                # Inside <IRQ>/<NMI>: the interrupted context's registers sit between the
                # interrupt frames and </IRQ>, then the task's own frames follow.
                misses += 1
                continue
            in_trace = False
            if r.trace:
                trace_done = True
        if not trace_done and _CALL_TRACE.match(t):
            in_trace = True
            context = None
            continue
        if not trace_done and not r.trace and _FRAME_FROM.match(t):
            # arm32 prints its "[<..>] (f) from [<..>] (g)" backtrace without a header line.
            in_trace = True
            r.trace.append(_parse_frame(t, None))
            continue
        if _CUT.search(t):
            r.cut_marker = True
        if r.pid is None:
            if _header(r, t):
                continue
        m = _MODULES.match(t)
        if m and not r.modules:
            _parse_modules(r, m.group("mods"))
            modules_open = True
            continue
        if r.hardware is None:
            m = _HARDWARE.match(t)
            if m:
                r.hardware = m.group("hw").strip()
                continue
        if r.rip is None or (r.rip.get("function") is None and not r.bad_rip):
            rip = _parse_rip(t)
            if rip is not None:
                if r.rip is None or rip.get("function"):
                    r.rip = rip
                continue
        if _BAD_RIP.match(t):
            r.bad_rip = True
            continue
        if r.cr2 is None:
            m = _CR2.match(t)
            if m:
                r.cr2 = m.group("cr2")
    if in_trace and r.count >= len(r.lines) and not r.ended and not r.panic:
        # The log stops inside the call trace, unless the trace already reached its bottom.
        if not (r.trace and _TRACE_BOTTOM.match(r.trace[-1].function or "")):
            r.trace_cut = True
    if not r.trace:
        _crash_backtrace(r)
    if r.release is None:
        r.release = r.boot_release
    if r.hardware is None:
        r.hardware = r.boot_hardware
    _decide_kind(r)


def _crash_backtrace(r: Report) -> None:
    """Frames, trapped RIP and task from the crash utility's "bt" when the report has no
    kernel call trace of its own (a "crash" session pasted without its "log")."""
    tasks = 0
    for ln in r.lines:
        t = ln.text.strip()
        if _CRASH_TASK.match(t):
            tasks += 1
            if tasks > 1 and r.trace:
                break  # the next task's backtrace ("foreach bt"): not the one that died
        m = _CRASH_FRAME.match(t)
        if m:
            r.trace.append(Frame(F.clean_function(m.group("func")), None, m.group("module"), True, None, m.group("addr")))
            continue
        m = _CRASH_EXCEPTION_RIP.match(t)
        if m and (r.rip is None or not r.rip.get("function")):
            fn = m.group("func")
            r.rip = {"function": F.clean_function(fn), "symbol": fn, "offset": hex(int(m.group("off") or 0)),
                     "module": None, "address": None}
            continue
        m = _CRASH_TASK.match(t)
        if m and r.pid is None:
            r.pid, r.cpu, r.comm = int(m.group("pid")), int(m.group("cpu")), m.group("comm")


def _header(r: Report, t: str) -> bool:
    m = _CPU_HEADER.match(t)
    if m:
        r.cpu = int(m.group("cpu"))
        r.pid = int(m.group("pid"))
        _comm_taint_release(r, m.group("rest"))
        return True
    m = _EL6_HEADER.match(t)
    if m:
        r.pid = int(m.group("pid"))
        _comm_taint_release(r, m.group("rest"))
        return True
    m = _EL6_PROCESS.match(t)
    if m:
        r.comm = r.comm or m.group("comm")
        r.pid = int(m.group("pid"))
        return True
    m = _EL6_CPU.match(t)
    if m and r.cpu is None:
        r.cpu = int(m.group("cpu"))
    return False


def _comm_taint_release(r: Report, rest: str) -> None:
    # "AliDetect Kdump: loaded Tainted: GOE ------------ T 3.10.0-1127.el7.x86_64 #1"
    for marker in (" Not tainted", " Tainted: "):
        i = rest.find(marker)
        if i != -1:
            comm, tail = rest[:i], rest[i + len(marker) :]
            break
    else:
        comm, tail = rest, ""
    if comm.endswith(" Kdump: loaded"):
        r.kdump_loaded = True
        comm = comm[: -len(" Kdump: loaded")]
    r.comm = comm.strip()
    flags: list[str] = []
    tokens = tail.split()
    hw_from = None
    for i, tok in enumerate(tokens):
        if _RELEASE.match(tok):
            r.release = tok
            hw_from = i + 1
            break
        if marker == " Tainted: " and re.fullmatch(r"[A-Z]+", tok):
            flags.append(tok)
    r.taint = "".join(flags) if marker == " Tainted: " else ""
    if hw_from is not None:
        rest_tokens = tokens[hw_from:]
        if rest_tokens and rest_tokens[0].startswith("#"):
            rest_tokens = rest_tokens[1:]
        if rest_tokens:  # el6 puts the hardware name at the end of this line
            r.hardware = " ".join(rest_tokens)


# MIPS "epc   : 804e0ed4 func+0x1d4/0x388" and RISC-V "epc : func+0x246/0x570": the
# faulting PC, with or without its address first.
_EPC = re.compile(r"^epc\s*:\s*(?:[0-9a-f]{8,16}\s+)?(?P<func>[A-Za-z_.$][\w.$]*)\+(?P<off>0x[0-9a-f]+)(?:/0x[0-9a-f]+)?"
                  r"(?:\s+\[(?P<module>[\w-]+)\])?")


def _parse_rip(t: str) -> dict | None:
    if t.startswith("epc"):
        m = _EPC.match(t)
        if not m:
            return None
        return {"function": F.clean_function(m.group("func")), "symbol": m.group("func"), "offset": m.group("off"),
                "module": m.group("module"), "address": None}
    if not t.startswith(("RIP", "IP:", "IP ", "EIP", "pc ", "NIP", "PC is at")):
        return None
    m = _RIP.match(t)
    if not m:
        return None
    cs = m.group("cs")
    target = m.group("target") or ""
    if cs in ("0033", "0023", "0073", "007b") or re.fullmatch(r"0x[0-7][0-9a-f]{0,12}", target):
        return None  # user-mode RIP (a syscall's return address), not where the kernel died
    sm = _SYMBOL.match(target)
    if sm:
        return {
            "function": F.clean_function(sm.group("func")),
            "symbol": sm.group("func"),
            "offset": sm.group("off"),
            "module": m.group("module"),
            "address": m.group("addr"),
        }
    if re.fullmatch(r"(?:0x)?[0-9a-f]+", target or m.group("addr") or ""):
        return {"function": None, "symbol": None, "offset": None, "module": None, "address": target or m.group("addr")}
    return None


def _parse_frame(t: str, context: str | None) -> Frame | None:
    m = _FRAME.match(t.strip())
    if not m:
        m2 = _FRAME_FROM.match(t)
        if m2:
            return Frame(F.clean_function(m2.group("func")), None, None, True, context)
        return None
    return Frame(
        F.clean_function(m.group("func")),
        m.group("off"),
        m.group("module"),
        m.group("unrel") is None,
        context,
        m.group("addr"),
    )


def _parse_modules(r: Report, text: str) -> None:
    m = _LAST_UNLOADED.search(text)
    if m:
        r.last_unloaded = m.group("name")
        text = text[: m.start()] + text[m.end() :]
    for tok in text.split():
        mt = _MODULE_TOKEN.fullmatch(tok)
        if mt:
            r.modules.append((mt.group("name"), mt.group("flags") or ""))


def _decide_kind(r: Report) -> None:
    ev = r.main_event()
    kind = ev.fmt.kind
    names = {fr.function for fr in r.trace[:12]}
    rip_fn = (r.rip or {}).get("function")
    sysrq = (
        rip_fn == "sysrq_handle_crash"
        or "sysrq_handle_crash" in names
        or any(e.fmt.kind == "sysrq_crash" for e in r.events)
        or (r.panic or "").startswith("sysrq triggered crash")
    )
    if sysrq:
        kind = "sysrq_crash"
    elif ev.fmt.note == "crash-bt":
        kind = _crash_kind(r)
    elif kind in ("kernel_bug", "invalid_opcode", "warning", "other", "gpf") and _list_debug(r, ev):
        # lib/list_debug.c's checks fired without their "list_del corruption" line.
        kind = "list_corruption"
    elif kind == "other" and ev.fmt.title.startswith("Oops") and not r.headless:
        # Only the "Oops" line survived: the fault address says which fault it was
        # (x86 CR2, arm64 "... at virtual address X").
        address = r.cr2 or _virtual_address(r)
        if address is not None:
            kind = "null_deref" if int(address, 16) < 4096 else "paging_request"
    r.kind = kind
    oops = any(e.fmt.title.startswith("Oops") for e in r.events)  # a crash "bt" is one too: a dump was taken
    r.fatal = kind in F.FATAL_KINDS or r.panic is not None or oops or (kind == "list_corruption" and _has_bug(r))


# Exception entry frames in a crash "bt": the trap the kernel died in.
_CRASH_EXCEPTIONS = (
    (re.compile(r"^(?:asm_)?exc_general_protection$|^general_protection$|^do_general_protection$"), "gpf"),
    (re.compile(r"^(?:asm_)?exc_page_fault$|^page_fault$|^(?:__)?do_page_fault$|^async_page_fault$"), "paging_request"),
    (re.compile(r"^(?:asm_)?exc_divide_error$|^divide_error$|^do_divide_error$"), "divide_error"),
    (re.compile(r"^(?:asm_)?exc_double_fault$|^double_fault$|^do_double_fault$"), "double_fault"),
    (re.compile(r"^(?:asm_)?exc_invalid_op$|^invalid_op$|^do_invalid_op$"), "invalid_opcode"),
)


def _crash_kind(r: Report) -> str:
    names = [fr.function or "" for fr in r.trace]
    for rx, kind in _CRASH_EXCEPTIONS:
        if any(rx.match(n) for n in names):
            if kind == "invalid_opcode" and any(n in ("report_bug", "handle_bug", "do_error_trap") for n in names):
                return "kernel_bug"
            return kind
    return "other"


_VIRTUAL_ADDRESS = re.compile(r"at virtual address ([0-9a-f]{8,16})\b")


def _virtual_address(r: Report) -> str | None:
    for ln in r.lines[:40]:
        m = _VIRTUAL_ADDRESS.search(ln.text)
        if m:
            return m.group(1)
    return None


def _list_debug(r: Report, ev: Event) -> bool:
    if ev.groups.get("file", "").endswith("list_debug.c"):
        return True
    rip_fn = (r.rip or {}).get("function") or ""
    return bool(re.match(r"__list_(?:add|del_entry)_valid|__list_del_entry$|__list_add$", rip_fn))


def _has_bug(r: Report) -> bool:
    return any(e.fmt.kind in ("kernel_bug", "invalid_opcode", "gpf", "null_deref", "paging_request") for e in r.events)
