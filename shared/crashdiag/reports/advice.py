"""Readiness advice from the guest's context block: settings that turned an event
into a reboot, and gaps that will leave the next crash without evidence."""

from __future__ import annotations

import re
from typing import Any

# (test on the context, id, en, zh)
_CHECKS: tuple[tuple[Any, str, str, str], ...] = (
    (lambda c: c.get("kdump_active") not in (None, "", "active", "unknown"), "kdump-inactive",
     "kdump is not active: the next crash will leave no vmcore or vmcore-dmesg.txt. Enable it: systemctl enable --now kdump.",
     "kdump 未启用：下次宕机将不会留下 vmcore 或 vmcore-dmesg.txt。请启用：systemctl enable --now kdump。"),
    (lambda c: "cmdline" in c and not c.get("crashkernel"), "no-crashkernel",
     "The kernel command line has no crashkernel= reservation, so kdump cannot load. Add crashkernel=auto (or a size such as 256M) to GRUB and reboot.",
     "内核启动参数中没有 crashkernel= 预留内存，kdump 无法加载。请在 GRUB 中加入 crashkernel=auto（或 256M 等大小）并重启。"),
    (lambda c: c.get("sysctl.vm.panic_on_oom") not in (None, "", "0"), "panic-on-oom-set",
     "vm.panic_on_oom is still {sysctl.vm.panic_on_oom}: the next out-of-memory event will reboot the instance again.",
     "vm.panic_on_oom 仍为 {sysctl.vm.panic_on_oom}：下次内存耗尽时实例会再次重启。"),
    (lambda c: c.get("sysctl.kernel.hung_task_panic") not in (None, "", "0"), "hung-task-panic-set",
     "kernel.hung_task_panic is {sysctl.kernel.hung_task_panic}: a task blocked for long reboots the instance.",
     "kernel.hung_task_panic 为 {sysctl.kernel.hung_task_panic}：进程长时间阻塞就会导致实例重启。"),
    (lambda c: c.get("sysctl.kernel.softlockup_panic") not in (None, "", "0"), "softlockup-panic-set",
     "kernel.softlockup_panic is {sysctl.kernel.softlockup_panic}: a soft lockup reboots the instance.",
     "kernel.softlockup_panic 为 {sysctl.kernel.softlockup_panic}：软锁死会导致实例重启。"),
    (lambda c: c.get("sysctl.kernel.panic_on_warn") not in (None, "", "0"), "panic-on-warn-set",
     "kernel.panic_on_warn is {sysctl.kernel.panic_on_warn}: any kernel WARNING reboots the instance.",
     "kernel.panic_on_warn 为 {sysctl.kernel.panic_on_warn}：任何内核 WARNING 都会导致实例重启。"),
    (lambda c: c.get("sysctl.kernel.unknown_nmi_panic") not in (None, "", "0"), "unknown-nmi-panic-set",
     "kernel.unknown_nmi_panic is {sysctl.kernel.unknown_nmi_panic}: an NMI (including one sent from the console) panics the kernel.",
     "kernel.unknown_nmi_panic 为 {sysctl.kernel.unknown_nmi_panic}：收到 NMI（包括从控制台发送的）会使内核 panic。"),
    (lambda c: c.get("journal_persistent") == "no", "journal-volatile",
     "The systemd journal is not persistent: kernel messages of a crashed boot are lost. Create /var/log/journal (or set Storage=persistent).",
     "systemd journal 未持久化：宕机那次启动的内核日志会丢失。请创建 /var/log/journal（或设置 Storage=persistent）。"),
    (lambda c: c.get("sysctl.kernel.panic") in ("0",), "panic-no-reboot",
     "kernel.panic is 0: after a panic the instance hangs instead of rebooting. Consider kernel.panic = 10 (with kdump, the dump runs first).",
     "kernel.panic 为 0：panic 后实例会一直挂起而不是重启。建议设置 kernel.panic = 10（启用 kdump 时会先转储）。"),
)


def readiness_advice(context: dict[str, str], lang: str) -> list[dict[str, str]]:
    """Advice items that apply to this guest, each with a stable id."""
    from .escape import plain

    out = []
    for test, aid, en, zh in _CHECKS:
        try:
            hit = test(context)
        except (TypeError, AttributeError):
            hit = False
        if hit:
            template = zh if lang == "zh" else en
            text = re.sub(r"\{([\w.]+)\}", lambda m: plain(context.get(m.group(1), "?"), 40), template)
            out.append({"id": aid, "text": text})
    return out
