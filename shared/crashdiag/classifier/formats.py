"""The kernel's crash message formats, as a data table.

Each ``Format`` names one printk format the kernel uses to open (or continue) a
crash report, the kind of crash it means, how specific that kind is, and how the
canonical title is built. The patterns follow the kernel's own format strings
across versions (2.6.32 through 6.x), not any one sample log; the comment above
each entry names where the string comes from.

Placeholders, expanded once by ``_compile``:
  {{ADDR}}  a kernel address or hex number, with or without 0x
  {{FUNC}}  a symbol with optional +off/size, e.g. tcp_v4_rcv+0x12/0x340
"""

from __future__ import annotations

from dataclasses import dataclass

from . import regex as re  # RE2, linear in the text: every pattern here may meet guest text

KINDS = (
    "oom_panic",
    "oom_no_killable",
    "oom_kill",
    "null_deref",
    "paging_request",
    "gpf",
    "list_corruption",
    "slab_error",
    "kernel_bug",
    "divide_error",
    "invalid_opcode",
    "soft_lockup",
    "hard_lockup",
    "hung_task",
    "rcu_stall",
    "warning",
    "kasan",
    "sysrq_crash",
    "vfs_no_root",
    "init_killed",
    "page_alloc_failure",
    "double_fault",
    "mce",
    "other_panic",
    "other",
    "none",
)

# How specific a kind is: when one report holds several events, the highest wins
# ("list_del corruption" then "kernel BUG at lib/list_debug.c" is list_corruption).
RANK = {
    "sysrq_crash": 100,
    "oom_panic": 95,
    "oom_no_killable": 95,
    "vfs_no_root": 95,
    "list_corruption": 90,
    "slab_error": 90,
    "kasan": 90,
    "double_fault": 85,
    "mce": 85,
    "init_killed": 80,
    "hard_lockup": 80,
    "soft_lockup": 80,
    "hung_task": 80,
    "rcu_stall": 80,
    "divide_error": 75,
    "page_alloc_failure": 70,
    "null_deref": 60,
    "paging_request": 55,
    "gpf": 55,
    "kernel_bug": 50,
    "invalid_opcode": 40,
    "oom_kill": 35,
    "warning": 30,
    "other_panic": 20,
    "other": 10,
    "none": 0,
}

# Kinds that are a crash by themselves. The others (a WARNING, an OOM kill, a hung
# task report) only bring the machine down when a panic follows them.
FATAL_KINDS = frozenset(
    {
        "oom_panic",
        "oom_no_killable",
        "null_deref",
        "paging_request",
        "gpf",
        "kernel_bug",
        "divide_error",
        "invalid_opcode",
        "sysrq_crash",
        "vfs_no_root",
        "init_killed",
        "double_fault",
        "other_panic",
    }
)

# Kinds of an oops that kills the task it hits: when that task is init, the kernel then
# panics with "Attempted to kill init!", a consequence of the report, not its cause.
CAUSE_KINDS = frozenset(
    {"null_deref", "paging_request", "gpf", "kernel_bug", "divide_error", "invalid_opcode", "double_fault",
     "list_corruption", "slab_error", "kasan"}
)

# Roles: how an event relates to the report being built.
START = "start"  # opens a new report (unless the open one is waiting to absorb it)
CONT = "cont"  # continues the open report when close to it, else opens one
PANIC = "panic"  # the final "Kernel panic - not syncing": closes the open report
PREAMBLE = "preamble"  # opens a report that absorbs the next start event nearby


@dataclass(frozen=True)
class Format:
    kind: str
    role: str
    pattern: re.Pattern[str]
    title: str  # template; {frame}, {file}, {msg}, {op}, ... come from named groups
    note: str = ""


_PLACEHOLDERS = {
    "{{ADDR}}": r"(?:0x)?[0-9a-fA-F]+",
    "{{FUNC}}": r"[A-Za-z_.$][\w.$]*(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?",
}


def _compile(pattern: str) -> re.Pattern[str]:
    for k, v in _PLACEHOLDERS.items():
        pattern = pattern.replace(k, v)
    return re.compile(pattern)


def _f(kind: str, role: str, pattern: str, title: str, note: str = "") -> Format:
    return Format(kind, role, _compile(pattern), title, note)


# Patterns are matched with .match() against the message text (transport prefixes
# already removed), in this order; the first that matches wins. Specific before
# generic.
FORMATS: tuple[Format, ...] = (
    # --- sysrq ------------------------------------------------------------------
    # drivers/tty/sysrq.c: sysrq_handle_crash(); "SysRq : Trigger a crash" (<=5.x,
    # "sysrq: SysRq : " prefix from 4.x) and "sysrq: Trigger a crash" (5.x+).
    _f("sysrq_crash", PREAMBLE, r"(?:sysrq: )?(?:SysRq ?: )?Trigger a crash", "sysrq triggered crash"),
    # 5.x+ panics instead of writing to NULL: panic("sysrq triggered crash\n").
    _f("sysrq_crash", PANIC, r"Kernel panic - not syncing: sysrq triggered crash", "sysrq triggered crash"),
    # --- OOM (mm/oom_kill.c) ------------------------------------------------------
    # check_panic_on_oom(): "Out of memory: %s panic_on_oom is enabled" with
    # "compulsory" or "system-wide" (3.x+); 2.6.32: "out of memory. panic_on_oom is selected".
    _f(
        "oom_panic",
        PANIC,
        r"Kernel panic - not syncing: (?:Out of memory: (?P<scope>system-wide|compulsory) panic_on_oom is enabled|out of memory\. panic_on_oom is selected)",
        "Kernel panic - Out of memory: panic_on_oom is enabled",
    ),
    # out_of_memory() with no victim: panic("Out of memory and no killable
    # processes...") up to 4.x; later pr_warn() that line, then panic("System is
    # deadlocked on memory").
    _f(
        "oom_no_killable",
        PANIC,
        r"Kernel panic - not syncing: (?:Out of memory and no killable processes|System is deadlocked on memory)",
        "Kernel panic - Out of memory and no killable processes",
    ),
    _f("oom_no_killable", CONT, r"Out of memory and no killable processes", "Out of memory and no killable processes"),
    # dump_header(): "%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd"
    _f("oom_kill", START, r"(?P<comm>.+?) invoked oom-killer: ", "OOM killer invoked"),
    # oom_kill_process(): "Out of memory: Kill process %d (%s) score %u or sacrifice child"
    # (<=4.x), "Out of memory: Killed process %d (%s) total-vm..." (5.x), and the memcg
    # variant "Memory cgroup out of memory: Kill(ed) process".
    _f(
        "oom_kill",
        CONT,
        r"(?P<scope>Memory cgroup out of memory|Out of memory|Task in .* killed as a result of limit)(?:: Kill(?:ed)? process \d+ \((?P<victim>[^)]*)\))?",
        "OOM killer invoked",
    ),
    _f("oom_kill", CONT, r"Killed process \d+ \((?P<victim>[^)]*)\)", "OOM killer invoked"),
    _f("oom_kill", CONT, r"oom-kill:constraint=", "OOM killer invoked"),
    # --- boot failures (init/do_mounts.c, init/main.c, kernel/exit.c) -------------
    _f(
        "vfs_no_root",
        PANIC,
        r"Kernel panic - not syncing: VFS: Unable to mount root fs(?: on (?P<dev>\S+))?",
        "VFS: Unable to mount root fs on {dev}",
    ),
    _f("vfs_no_root", PREAMBLE, r"VFS: Cannot open root device", "VFS: Unable to mount root fs on {dev}"),
    # kernel/exit.c: panic("Attempted to kill init! exitcode=0x%08x\n", ...)
    _f(
        "init_killed",
        PANIC,
        r"Kernel panic - not syncing: Attempted to kill init!(?: exitcode=(?P<exitcode>0x[0-9a-f]+))?",
        "Attempted to kill init! exitcode={exitcode}",
    ),
    # init/main.c: "No working init found." and "Requested init %s failed (error %d)."
    _f(
        "init_killed",
        PANIC,
        r"Kernel panic - not syncing: (?P<msg>No working init found|Requested init \S+ failed|No init found)",
        "{msg}",
    ),
    # --- lockups and stalls --------------------------------------------------------
    # kernel/watchdog.c: "BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]", prefixed
    # "NMI watchdog: " (4.x) or "watchdog: " (4.15+).
    _f(
        "soft_lockup",
        START,
        r"(?:(?:NMI )?watchdog: )?BUG: soft lockup - CPU#\d+ stuck for \d+s! \[(?P<comm>.*):(?P<pid>\d+)\]",
        "BUG: soft lockup in {frame}",
    ),
    _f("soft_lockup", PANIC, r"Kernel panic - not syncing: softlockup: hung tasks", "BUG: soft lockup in {frame}"),
    # kernel/watchdog_hld.c / kernel/nmi.c: "Watchdog detected hard LOCKUP on cpu %d"
    _f(
        "hard_lockup",
        START,
        r"(?:(?:NMI )?watchdog: )?Watchdog detected hard LOCKUP on cpu \d+",
        "Watchdog detected hard LOCKUP in {frame}",
    ),
    _f(
        "hard_lockup",
        PANIC,
        r"Kernel panic - not syncing: (?:Hard LOCKUP|Watchdog detected hard LOCKUP)",
        "Watchdog detected hard LOCKUP in {frame}",
    ),
    # kernel/hung_task.c: "INFO: task %s:%d blocked for more than %ld seconds."
    _f(
        "hung_task",
        START,
        r"INFO: task (?P<comm>.*):(?P<pid>\d+) blocked for more than \d+ seconds",
        "INFO: task hung in {frame}",
    ),
    # The same line when a task name holding a newline split it in two.
    _f("hung_task", CONT, r".*:(?P<pid>\d+) blocked for more than \d+ seconds", "INFO: task hung in {frame}"),
    _f("hung_task", PANIC, r"Kernel panic - not syncing: hung_task: blocked tasks", "INFO: task hung in {frame}"),
    # kernel/rcu/tree_stall.h (tree.c before 5.x): "INFO: %s detected stalls on
    # CPUs/tasks:", "INFO: %s self-detected stall on CPU", "rcu: " prefix from 4.18;
    # RCU-tasks: "INFO: rcu_tasks detected stalls on tasks:".
    _f(
        "rcu_stall",
        START,
        r"(?:rcu: )?INFO: (?P<flavor>rcu\w*|rcu_\w+) (?:detected stalls?|self-detected stall)",
        "INFO: rcu detected stall in {frame}",
    ),
    _f("rcu_stall", CONT, r"(?:rcu: )?(?P<flavor>rcu\w*) kthread starved for \d+ jiffies", "INFO: rcu detected stall in {frame}"),
    _f("rcu_stall", PANIC, r"Kernel panic - not syncing: RCU Stall", "INFO: rcu detected stall in {frame}"),
    # --- memory safety detectors (mm/kasan/report.c, mm/kfence, mm/kmsan) ----------
    _f(
        "kasan",
        START,
        r"BUG: (?P<tool>KASAN|KFENCE|KMSAN): (?P<bug>[\w -]+?) in (?P<frame>{{FUNC}})",
        "{tool}: {bug} in {frame}",
    ),
    # --- list and slab corruption (lib/list_debug.c, mm/slub.c, mm/slab.c) ---------
    # "list_del corruption, %px->next is LIST_POISON1 (%px)", "list_del corruption.
    # prev->next should be %px, but was %px", "list_add corruption. next->prev should
    # be prev (%px), but was %px", "list_add double add: new=%px, prev=%px, next=%px".
    _f(
        "list_corruption",
        PREAMBLE,
        r"(?P<op>list_add|list_del|hlist_add|hlist_del|list_add_rcu)(?: corruption| double add)",
        "{op} corruption in {frame}",
    ),
    # slab_err()/object_err(): "BUG %s (%s): %pV" with the cache name and taint.
    _f(
        "slab_error",
        START,
        r"BUG (?P<cache>[\w.-]+)(?:\([^)]*\))? \((?:Not tainted|Tainted:[^)]*)\): (?P<msg>[^,(\n]*?)(?: in [\w.-]+.*)?$",
        "BUG {cache}: {msg}",
    ),
    # mm/slab.c: "slab error in %s(): cache `%s': %s"
    _f("slab_error", START, r"slab error in (?P<frame>\w+)\(\): cache `(?P<cache>[^']*)'", "slab error in {cache}: {frame}"),
    # --- stack overflow and double fault (arch/x86/kernel/traps.c) ----------------
    _f("double_fault", START, r"(?:PANIC: )?double fault(?:, error_code: {{ADDR}}|: \d+ \[#\d+\])", "double fault in {frame}"),
    _f("double_fault", CONT, r"Oops: double fault: ", "double fault in {frame}"),
    _f("double_fault", START, r"BUG: (?:TASK |IRQ )?stack guard page was hit at", "BUG: stack guard page was hit in {frame}"),
    _f("double_fault", START, r"(?:Insufficient stack space to handle exception|kernel stack overflow)", "kernel stack overflow in {frame}"),
    _f("double_fault", PANIC, r"Kernel panic - not syncing: Kernel stack overflow", "kernel stack overflow in {frame}"),
    # --- machine checks (arch/x86/kernel/cpu/mce, drivers/acpi/apei/ghes.c) --------
    _f("mce", START, r"(?:mce: )?\[Hardware Error\]: (?P<msg>.*)", "Machine check: hardware error"),
    _f("mce", START, r"(?:\{\d+\})?\[Hardware Error\]: Hardware error from APEI", "Machine check: hardware error"),
    _f(
        "mce",
        PANIC,
        r"Kernel panic - not syncing: (?:Fatal (?:local )?machine check|Machine check|Timeout: Not all CPUs entered broadcast exception handler|Fatal hardware error|MCE: )",
        "Machine check: hardware error",
    ),
    # --- x86 page faults (arch/x86/mm/fault.c show_fault_oops / no_context) --------
    # <=4.x: "BUG: unable to handle kernel NULL pointer dereference at %p"
    # 5.0+:  "BUG: kernel NULL pointer dereference, address: %px"
    # arm64: "Unable to handle kernel NULL pointer dereference at virtual address %016lx";
    # MIPS (arch/mips/mm/fault.c) puts "CPU %d " before it.
    _f(
        "null_deref",
        START,
        r"(?:BUG: (?:unable to handle kernel|kernel) |(?:CPU \d+ )?Unable to handle kernel )NULL pointer dereference",
        "BUG: unable to handle kernel NULL pointer dereference in {frame}",
    ),
    # <=4.x: "BUG: unable to handle kernel paging request at %p"; 5.0+: "BUG: unable
    # to handle page fault for address: %px"; arm/arm64: "Unable to handle kernel
    # paging request at virtual address"; NX/SMEP variants.
    _f(
        "paging_request",
        START,
        r"(?:BUG: unable to handle (?:kernel paging request|page fault for address)|(?:CPU \d+ )?Unable to handle kernel (?:paging request|access to user memory|execute from non-executable memory|write to read-only memory|read from unreadable memory))",
        "BUG: unable to handle kernel paging request in {frame}",
    ),
    # arch/x86/mm/fault.c prints these just above the "BUG: unable to handle" line.
    _f(
        "paging_request",
        PREAMBLE,
        r"(?:kernel tried to execute NX-protected page|(?:BUG: )?unable to execute userspace code|kernel attempted to read user page)",
        "BUG: unable to handle kernel paging request in {frame}",
    ),
    # arch/x86/kernel/traps.c: die("general protection fault", ...); 5.x adds
    # ", probably for non-canonical address 0x...", 6.9+ prefixes "Oops: ".
    _f("gpf", START, r"(?:Oops: )?general protection fault", "general protection fault in {frame}"),
    # do_error_trap(): "divide error: 0000 [#1] SMP"; 6.9+: "Oops: divide error: 0000".
    _f("divide_error", START, r"(?:Oops: )?divide[ _]error: ", "divide error in {frame}"),
    # lib/bug.c report_bug(): "kernel BUG at %s:%u!"; without CONFIG_DEBUG_BUGVERBOSE
    # "Kernel BUG at %pB [verbose debug info unavailable]"; arm64 "Internal error: Oops - BUG".
    _f("kernel_bug", START, r"kernel BUG at (?P<file>[^:\s]+)(?::\d+)?!?", "kernel BUG at {file} in {frame}"),
    _f("kernel_bug", START, r"Kernel BUG at ", "kernel BUG in {frame}"),
    _f("kernel_bug", CONT, r"Internal error: Oops - BUG", "kernel BUG in {frame}"),
    # The ud2 trap behind BUG(): continues a "kernel BUG at" report, alone it is a
    # real invalid opcode. 6.9+ prefixes "Oops: ".
    _f("invalid_opcode", CONT, r"(?:Oops: )?invalid opcode: ", "invalid opcode in {frame}"),
    # --- warnings (kernel/panic.c __warn, lockdep) ----------------------------------
    # 3.x: "WARNING: at %s:%d %pS()"; 4.x+: "WARNING: CPU: %d PID: %d at %s:%d %pS"
    _f(
        "warning",
        START,
        r"WARNING: (?:CPU: \d+ PID: \d+ at |at )(?P<file>\S+?)(?::\d+)? (?P<frame>{{FUNC}})",
        "WARNING in {frame}",
    ),
    # kernel/locking/lockdep.c reports: a lock-order problem, not a WARN_ON().
    _f(
        "other",
        START,
        r"WARNING: possible (?:circular|recursive) locking|WARNING: possible irq lock inversion",
        "possible deadlock in {frame}",
    ),
    _f(
        "other",
        START,
        r"WARNING: (?P<msg>inconsistent lock state|suspicious RCU usage|bad unlock balance detected|lock held when returning to user space|held lock freed|nested lock was not taken|kernel stack (?:regs|frame pointer) at \S+ .*has bad)",
        "WARNING: {msg} in {frame}",
    ),
    # lib/ubsan.c: "UBSAN: %s in %s:%d:%d"
    _f("warning", START, r"UBSAN: (?P<msg>[\w-]+(?: [\w-]+)*) in ", "UBSAN: {msg} in {frame}"),
    # --- page allocation failures (mm/page_alloc.c warn_alloc) ---------------------
    _f(
        "page_alloc_failure",
        START,
        r"(?P<comm>.*?): page allocation failure[:.] order:(?P<order>\d+)",
        "page allocation failure: order:{order} in {frame}",
    ),
    _f("page_alloc_failure", START, r"(?P<comm>.*?): vmalloc(?: error)?: (?:allocation failure|size)", "vmalloc allocation failure in {frame}"),
    # --- NMI (arch/x86/kernel/nmi.c) -----------------------------------------------
    # "Uhhuh. NMI received for unknown reason %02x on CPU %d." then either "Dazed and
    # confused, but trying to continue" or, with unknown_nmi_panic / panic_on_io_nmi /
    # the console's NMI button, panic("NMI: Not continuing").
    _f("other", PREAMBLE, r"(?:Uhhuh\. )?NMI received for unknown reason (?P<reason>\w+)", "NMI received for unknown reason"),
    _f("other", PREAMBLE, r"NMI: (?:IOCK|PCI system) error", "NMI: hardware error reported"),
    _f("other_panic", PANIC, r"Kernel panic - not syncing: NMI(?: IOCK error)?: Not continuing", "NMI: Not continuing"),
    # --- filesystems ------------------------------------------------------------------
    # fs/xfs/xfs_error.c and xfs_fsops.c: "XFS: Internal error %s at line %d of file %s",
    # "XFS (%s): Corruption of in-memory data detected.  Shutting down filesystem",
    # "xfs_do_force_shutdown(0x%x) called from line %d of file %s".
    # xfs_do_force_shutdown(flags): 0x1 metadata I/O error, 0x2 log I/O error, 0x4 forced
    # unmount, 0x8 in-memory corruption, 0x10 on-disk corruption (fs/xfs/xfs_mount.h). 5.x+
    # words it "Filesystem has been shut down due to log error (0x2)" and friends.
    _f("other", START, r"XFS(?: \([^)]*\))?: Internal error (?P<msg>\w+)", "XFS: internal error {msg} in {frame}", "xfs"),
    _f("other", START, r"XFS(?: \([^)]*\))?: xfs_do_force_shutdown\((?P<flag>0x[0-9a-f]+)\)", "XFS: filesystem shut down ({xfs_reason})", "xfs"),
    _f("other", START, r"XFS(?: \([^)]*\))?: (?:Filesystem has been shut down due to|Corruption of in-memory data detected|Metadata corruption detected|Metadata CRC error detected|metadata I/O error|log I/O error)", "XFS: filesystem shut down ({xfs_reason})", "xfs"),
    _f("other", CONT, r"XFS(?: \([^)]*\))?: (?:Please umount the filesystem|Please unmount the filesystem|Corruption of in-memory data detected|Log I/O Error Detected|I/O Error Detected)", "XFS: filesystem shut down ({xfs_reason})", "xfs"),
    # fs/ext4/super.c ext4_error: "EXT4-fs error (device %s): %s:%d: ..."; with
    # errors=panic it ends in panic("EXT4-fs (device %s): panic forced after error").
    _f("other", START, r"EXT4-fs error \(device [^)]*\): (?P<frame>\w+)", "EXT4-fs error in {frame}"),
    # net/core/dev.c netdev_wait_allrefs(): a device reference leak that blocks teardown.
    _f("other", START, r"unregister_netdevice: waiting for \S+ to become free", "unregister_netdevice: waiting for DEV to become free"),
    # --- stack corruption (kernel/panic.c __stack_chk_fail, kernel/sched/core.c) -----------
    # "stack-protector: Kernel stack is corrupted in: %pB" names the function whose canary
    # died (an address when it cannot be symbolised); schedule_debug() panics with "corrupted
    # stack end detected inside scheduler" when the end-of-stack magic was overwritten.
    _f(
        "other_panic",
        PANIC,
        r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: (?P<frame>{{FUNC}})",
        "Kernel panic - stack-protector: stack is corrupted in {frame}",
    ),
    _f(
        "other_panic",
        PANIC,
        r"Kernel panic - not syncing: corrupted stack end detected inside scheduler",
        "Kernel panic - corrupted stack end in {frame}",
    ),
    # --- generic oops lines ----------------------------------------------------------
    # arch/x86/kernel/dumpstack.c __die(): "Oops: %04lx [#%d]"; arm64 "Internal
    # error: Oops: %x [#%d]". They continue the BUG line above them; alone (the
    # header was lost) they still mark a kernel oops.
    _f("other", CONT, r"(?:Internal error: )?Oops(?::| -) ", "Oops in {frame}"),
    # kernel/sched/core.c, mm/memory.c, ...: the many "BUG: <what>" reports.
    _f("other", START, r"BUG: (?P<msg>.+)", "BUG: {msg} in {frame}"),
    # Any other panic: kernel/panic.c panic("%s").
    _f("other_panic", PANIC, r"Kernel panic - not syncing: ?(?P<msg>.*)", "Kernel panic - {msg}", "generic"),
)

# Panic reasons that are the consequence of the report above them rather than a
# diagnosis of their own: they only say the kernel gave up.
CONSEQUENCE_PANICS = re.compile(
    r"(?:Fatal exception(?: in interrupt)?|Attempted to kill the idle task!?|Aiee, killing interrupt handler!?|"
    r"panic_on_warn set|panic_on_oops|Fatal trap|Oops|Fatal machine check|softlockup: hung tasks|"
    r"hung_task: blocked tasks|Hard LOCKUP|RCU Stall|sysrq triggered crash|Fatal exception in interrupt)"
)

# Knobs that turn a survivable event into a panic: the panic text names them.
CONFIG_PANICS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"panic_on_oom"), "vm.panic_on_oom"),
    (re.compile(r"softlockup: hung tasks"), "kernel.softlockup_panic"),
    (re.compile(r"hung_task: blocked tasks"), "kernel.hung_task_panic"),
    (re.compile(r"panic_on_warn set"), "kernel.panic_on_warn"),
    (re.compile(r"Hard LOCKUP"), "kernel.hardlockup_panic"),
    (re.compile(r"RCU Stall"), "kernel.panic_on_rcu_stall"),
    (re.compile(r"sysrq triggered crash"), "kernel.sysrq"),
    (re.compile(r"NMI: Not continuing"), "kernel.unknown_nmi_panic"),
    (re.compile(r"NMI IOCK error: Not continuing"), "kernel.panic_on_io_nmi"),
)

# Frames that are plumbing of the crash machinery rather than where it happened.
# Skipped when choosing the guilty frame and when fingerprinting.
SKIP_FRAMES = re.compile(
    r"^(?:_?_?dump_stack\w*|show_stack\w*|machine_kexec|__crash_kexec|crash_kexec|oops_end|show_trace\w*|show_regs|__show_regs|panic|nmi_panic|"
    r"__warn\w*|warn_slowpath\w*|report_bug|fixup_bug|handle_bug|do_error_trap|do_trap|do_invalid_op|"
    r"invalid_op|exc_\w+|asm_exc_\w+|asm_sysvec_\w+|sysvec_\w+|die|__die\w*|oops_\w+|no_context|"
    r"__bad_area\w*|bad_area\w*|page_fault_oops|kernelmode_fixup_or_oops|do_page_fault|__do_page_fault|"
    r"do_user_addr_fault|handle_page_fault|trace_do_page_fault|do_async_page_fault|async_page_fault|page_fault|"
    r"do_general_protection|general_protection|do_divide_error|divide_error|do_double_fault|double_fault|"
    r"nmi\w*|do_nmi|default_do_nmi|\w*_nmi_handler|watchdog\w*|__touch_watchdog|"
    r"print_\w+|printk\w*|vprintk\w*|console_unlock|_?sched_show_task|show_state\w*|"
    r"\w*trigger_\w*backtrace|\w*_cpumask_backtrace\w*|check_cpu_stall\w*|"
    r"__list_\w+_valid\w*|__list_del_entry\w*|__list_add\w*|list_del\w*|__list_del|"
    r"kasan_\w+|__kasan_\w+|__asan_\w+|check_memory_region\w*|kfence_\w+|"
    r"slab_err|object_err|check_panic_on_oom|out_of_memory|oom_kill_process|dump_header|"
    r"check_hung_task\w*|check_hung_uninterruptible_tasks|"
    r"rcu_\w*stall\w*|rcu_dump_cpu_stacks|print_cpu_stall\w*|rcu_check_callbacks|rcu_pending|"
    r"rcu_sched_clock_irq|update_process_times|tick_sched\w*|__hrtimer_run_queues|hrtimer_interrupt|"
    r"smp_apic_timer_interrupt|local_apic_timer_interrupt|apic_timer_interrupt|irq_exit\w*|"
    r"__do_softirq|do_softirq\w*|__irq_exit_rcu|"
    r"entry_SYSCALL\w*|system_call\w*|do_syscall_\d+|ret_from_fork\w*|worker_thread|int_signal|__pfx_\w+|"
    r"__schedule|schedule\w*|io_schedule\w*|preempt_schedule\w*|context_switch|__switch_to\w*|"
    # Locking primitives: the lock is where the crash shows, its caller is where the bug is.
    r"__lock_acquire|lock_acquire|lock_release|__lock_release|lock_acquired|lock_contended|"
    r"_raw_\w*spin_\w+|do_raw_spin_\w+|raw_spin_\w+|_raw_read_\w+|_raw_write_\w+|queued_\w+|"
    r"native_queued_spin_lock_slowpath|__pv_queued_spin_lock_slowpath|pv_\w*spin\w*|"
    r"__mutex_lock\w*|mutex_lock\w*|mutex_unlock\w*|__rt_mutex_\w+|rt_mutex_\w+|"
    r"rwsem_down_\w+|down_read\w*|down_write\w*|__down\w*|down|up_read|up_write|"
    r"wait_for_completion\w*|__wait_for_common|wait_for_common\w*|do_wait_for_common|"
    r"synchronize_rcu\w*|__synchronize_srcu|rcu_barrier\w*|"
    # Compiler and sanitizer instrumentation.
    r"__sanitizer_cov_\w+|kcsan_\w+|__tsan_\w+|kmsan_\w+|__msan_\w+|__ubsan_\w+|ubsan_\w+|"
    r"__x86_indirect_thunk_\w+|__x86_return_thunk|__fentry__|"
    # Library routines that fault on a bad argument from their caller.
    r"mem(?:cpy|set|move|cmp|chr)\w*|__mem(?:cpy|set|move)\w*|str(?:len|nlen|cmp|ncmp|cpy|ncpy|lcpy|scpy|chr|rchr)|"
    r"refcount_\w+|__refcount_\w+|rb_erase|rb_insert_color|kref_\w+|"
    r"___might_sleep|__might_sleep|__might_fault|might_fault|__cant_sleep|"
    r"__panic|panic_saved_regs|skb_panic|skb_over_panic|skb_under_panic|assertfail|"
    r"unwind_\w+|__unwind_start|arch_stack_walk|stack_trace_save\w*|save_stack\w*|"
    r"kfree|kvfree|kmem_cache_free|__kmem_cache_free|slab_free\w*|__slab_free|qlist_\w+|quarantine_\w+|"
    r"warn_bogus_irq_restore|smp_call_function_many_cond|smp_call_function_single|smp_call_function_many|csd_lock_wait|"
    # Waiting and allocating: a hung or sleeping task is stuck in its caller's business.
    r"call_rwsem_\w+|__?wait_rcu_gp|__?flush_work|flush_workqueue|jbd2_log_wait_commit|"
    r"kmem_cache_alloc\w*|__kmalloc\w*|kmalloc\w*|_?copy_(?:from|to)_user\w*|_atomic_dec_and_lock\w*|"
    r"bad_page|__schedule_bug|lock_sock_nested|mark_lock"
    r")$"
)


def clean_function(name: str) -> str:
    """Drop compiler suffixes so a function reads the same across builds."""
    return re.sub(r"(?:\.(?:cold|isra|constprop|part|llvm|lto_priv|localalias)(?:\.\d+)*)+$", "", name)


# --- message heads ----------------------------------------------------------------------
# The opening words of the messages above (and of the lines inside a report), searched
# anywhere in a line to find where the kernel's message starts when the line carries a
# prefix we do not know (a collector's date, "kern.alert kernel:", a mail quote, "crash>").
# logtext learns the log's prefix from the lines where one is found. Patterns here are
# literal text with at most optional literal groups: no lookarounds, no backreferences,
# nothing that backtracks, so the search stays linear (RE2-compatible).
#
# Heads of a report: a line carrying one of these is a crash message wherever it sits.
FATAL_HEADS: tuple[str, ...] = (
    r"Kernel panic - not syncing",
    r"(?:sysrq: )?(?:SysRq ?: )?Trigger a crash",
    r"BUG: (?:unable to handle|kernel NULL pointer|soft lockup|KASAN|KFENCE|KMSAN|scheduling while atomic|Bad page)",
    r"(?:NMI )?watchdog: (?:BUG: soft lockup|Watchdog detected hard LOCKUP)",
    r"Watchdog detected hard LOCKUP",
    r"(?:CPU \d+ )?Unable to handle kernel ",  # MIPS: "CPU %d Unable to handle kernel paging request at ..."
    # "general protection fault:" / ", probably for": not "traps: x[1] general protection
    # fault ip:...", which is a user process's fault reported by the kernel.
    r"general protection fault[:,]",
    r"[Kk]ernel BUG at ",
    r"Internal error: Oops",
    r"invalid opcode: \d",
    r"divide error: \d",
    r"(?:PANIC: )?double fault",
    r"INFO: task ",
    r"(?:rcu: )?INFO: rcu",
    r" invoked oom-killer: ",
    r": page allocation failure[:.]",
    r"Out of memory: Kill",
    r"Memory cgroup out of memory: Kill",
    r"(?:list_add|list_del) corruption",
    r"WARNING: CPU: \d",
    r"WARNING: at ",
    r"(?:mce: )?\[Hardware Error\]: ",
    r"VFS: Unable to mount root",
)
# Heads of lines inside a report: enough to learn the prefix of the lines between heads.
CONT_HEADS: tuple[str, ...] = (
    r"Call Trace:",
    r"Call trace:",
    r"Modules linked in:",
    r"CPU: \d+ (?:UID: \d+ )?PID: \d+ Comm: ",
    r"Hardware name: ",
    r"RIP: 00",
    r"RIP: \[<",
    r"pc : \[?<?[0-9a-fA-F]",
    r"lr : \[?<?[0-9a-fA-F]",
    r"Oops: \d",
    r"---\[ end trace",
)
# Heads that follow a task name ("kworker/0:1 invoked oom-killer"): the message starts at
# the beginning of the word before them.
COMM_LED_HEADS = (" invoked oom-killer: ", ": page allocation failure")


# --- the frame a title names ---------------------------------------------------------------
# Frames that are where a crash shows but not whose bug it is: helpers that fault on their
# caller's bad argument, allocators, copy and string routines, locking, work and timer
# plumbing, device-model teardown. Matched anywhere in the name (so "skb_over_panic" and
# "__cancel_work_timer" are covered), only when choosing the frame a title names; the
# fingerprint's frame list keeps SKIP_FRAMES so fingerprints stay put. The names follow the
# frames syzkaller's report parser passes over (google/syzkaller pkg/report/linux.go).
TITLE_SKIP = re.compile(
    r"__sanitizer|__asan|kasan|__msan|kmsan|kcsan_setup_watchpoint|check_memory_region|check_heap_object|"
    r"check_object|read_word_at_a_time|print_address_description|panic|invalid_op|report_bug|fixup_bug|"
    r"print_report|do_error|_trap$|do_trap|show_stack|dump_stack|walk_stack|dump_backtrace|warn_slowpath|"
    r"warn_alloc|warn_bogus|__warn|alloc_page|page_frag_alloc|__get_free_pages|k?v?[mzc]alloc|krealloc|kmem_cache|allocate_slab|folio_(?:alloc|unlock)|"
    r"filemap_alloc_folio|__filemap_get_folio|pagecache_get_page|slab_|debug_object|__might_fault|lockdep|"
    r"bh_enable|bh_disable|lock_acquire|lock_release|mark_lock|spin_lock|spin_trylock|spin_unlock|"
    r"read_lock|write_lock|read_unlock|write_unlock|^down$|down_read|down_write|down_trylock|up_read|up_write|"
    r"^mutex_|^__mutex_|^rt_mutex_|osq_lock|osq_unlock|^refcount_|^kref_|memcpy|memcmp|memset|memchr|memmove|"
    r"memdup|strcmp|strncmp|strcpy|strlcpy|strncpy|strscpy|strlen|strstr|strnstr|strnlen|strchr|strdup|"
    r"copy_to_user|copy_from_user|copy_to_iter|copy_from_iter|put_user|get_user|might_fault|might_sleep|"
    r"list_add|list_del|list_replace|list_move|^rb_|^__rb_|_indirect_thunk_|snprintf|printk|"
    r"del_timer|flush_work|__cancel_work_timer|cancel_work_sync|flush_workqueue|drain_workqueue|"
    r"destroy_workqueue|queue_work|finish_wait|kthread_stop|kobject_|device_add|device_del|device_unregister|"
    r"rollback_registered|unregister_netdev|^complete$|wait_for_completion|^kv?free$|kfree_skb|"
    r"cleanup_srcu_struct|lock_timer_base|__timer_delete_sync|__mod_timer|^iput$|"
    # skb_put/skb_pull and friends panic on their caller's length (net/core/skbuff.c).
    r"^_*skb_(?:put|push|pull|over_panic|under_panic)\w*$|"
    # The crash machinery itself.
    r"^machine_kexec$|crash_kexec|^oops_end$|^die$|__die"
)

# Stalls (soft lockups, RCU stalls, a stack overflow) are found at a random point of the code
# that loops; the title names the function just above the entry point that dispatched the
# work (the syscall, the work item, the softirq), so the same stall gets the same title.
STALL_ANCHORS = re.compile(
    r"process_one_work|do_syscall_|do_fast_syscall_|sysenter_dispatch|tracesys_phase2|el0_svc_handler|"
    r"invoke_syscall|ret_fast_syscall|netif_receive_skb|do_softirq|call_timer_fn|_run_timers|"
    r"run_timer_softirq|hrtimer_run|run_ksoftirqd|smpboot_thread_fn|^kthread$|start_secondary|"
    r"cpu_startup_entry|ret_from_fork|vfs_write|vfs_read|vfs_iter_read|vfs_iter_write|do_iter_read|"
    r"do_iter_write|call_read_iter|call_write_iter|new_sync_read|new_sync_write|vfs_ioctl|ksys_ioctl|"
    r"compat_ioctl|compat_sys_ioctl|blkdev_driver_ioctl|blkdev_ioctl|do_iter_readv_writev|^call_mmap|"
    r"mmap_region|do_mmap|do_dentry_open|vfs_open|^sock_sendmsg|^sock_recvmsg|^sock_release|"
    r"^__sock_release|^setsockopt$|kernel_setsockopt|sock_common_setsockopt|^listen$|kernel_listen|"
    r"sk_common_release|^sock_mmap|^accept$|kernel_accept|^sock_do_ioctl|^sock_ioctl|^compat_sock_ioctl|"
    r"^nfnetlink_rcv_msg|^rtnetlink_rcv_msg|^netlink_dump|^(?:sys_)?(?:socketpair|connect|ioctl)|"
    r"__do_fault|do_page_fault|^page_fault$|__fput|task_work_run|exit_to_usermode|smp_call_function|"
    r"tasklet_action|tasklet_hi_action"
)

# Hung tasks wait at a random victim's stack; two waits say what is stuck for everyone:
# RCU grace periods and the RTNL lock. Otherwise the first frame that is not waiting.
HANG_ANCHORS = (("rtnl_lock", "rtnl_lock"), ("synchronize_rcu", "synchronize_rcu"),
                ("synchronize_srcu", "synchronize_rcu"), ("synchronize_net", "synchronize_rcu"),
                ("synchronize_sched", "synchronize_rcu"))
HANG_SKIP = re.compile(r"sched|_lock|_slowlock|down|rwsem|completion|kthread|wait|synchronize|context_switch|"
                       r"__switch_to|cancel_delayed_work|rcu_barrier")

# Syscall entry wrappers, read as the syscall: the shortest name left by removing one of these.
SYSCALL_PREFIXES = ("SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_", "__sys_",
                    "__se_", "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_")


def canonical_function(name: str) -> str:
    """A frame as titles name it: compiler suffixes dropped, one syscall wrapper prefix removed."""
    name = clean_function(name)
    return min((name.removeprefix(p) for p in SYSCALL_PREFIXES), key=len)
