"""The incident page: one self-contained HTML file from a report.json (and the raw log).

The page itself is the template ``templates/incident.html.j2`` (on ``base.html.j2``, with
the shared CSS in ``page.css.j2``); this module works out what the template shows: the
guilty frame, the module table, evidence in its surrounding lines, the raw log's tail.
Everything a guest wrote is attacker-controlled and reaches the page only through the
template's escaping (``pages.py``). The page carries a Content-Security-Policy that
forbids scripts, external fetches and remote images, so even an escaping bug could not
run code or phone home. There is no JavaScript: folded parts are ``<details>``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import Any

from .escape import plain
from .pages import facts, human_size, human_time

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
RAW_LOG_TAIL = 200 * 1024  # the folded raw log shows at most this many bytes (the end)
CONTEXT_LINES = 4  # log lines shown around each evidence line
MAX_CONTEXT_LINES = 240  # evidence-in-context block, in all
MAX_LOG_BYTES = 64 * 1024 * 1024  # a gzip raw log is inflated at most this far
MODULES_SHOWN = 30  # modules beyond this (unflagged ones) fold away

# --- labels ---------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "page": "Crash report", "instance": "Instance", "region": "Region", "time": "Event time", "kind": "Kind",
        "title": "Title", "confidence": "Confidence", "verdict": "Verdict", "kernel": "Kernel", "task": "Task",
        "event": "Event", "fingerprint": "Fingerprint", "rule": "Known issue", "unclassified": "no known issue matched",
        "host": "The host failed (SystemFailure.Reboot): the guest may be innocent.",
        "none": "No crash report was found in the collected log.", "input_error": "The log could not be read",
        "cause": "Cause", "remedy": "What to do", "check": "Check", "fix_cmds": "Fix", "refs": "References",
        "knob": "Setting that turned this into a reboot", "fix": "Fix status against the running kernel",
        "running": "Running kernel", "fixed_in": "Fixed in", "stream": "Stream", "no_fixed": "The catalogue records no fixed kernel for this issue.",
        "suspect": "Suspect module", "flags": "Flags", "why": "Why", "taint": "Kernel taint",
        "evidence": "Evidence in context", "evidence_only": "Evidence (the raw log is not available, or the lines were not found in it)",
        "line": "line", "trace": "Call trace", "frame": "Frame", "module": "Module", "ctx": "Context",
        "guilty": "guilty frame", "unreliable": "? unreliable frame (a stale address on the stack), dimmed",
        "modules": "Modules linked in", "name": "Name", "meaning": "Meaning", "in_trace": "in the call trace",
        "more_modules": "{n} more modules (distribution modules, no flags)", "last_unloaded": "Last unloaded",
        "no_modules": "The log has no \"Modules linked in\" line.",
        "collection": "How the log was obtained", "method": "Source", "complete": "complete", "cut": "cut (a window of a larger log)",
        "path": "Path on the guest", "size": "Size", "stale": "older than the event", "uploaded": "Uploaded whole",
        "window": "Window (lines)", "notes": "Notes", "kdump_loaded": "kdump loaded at crash time",
        "readiness": "Ready for the next crash?", "all_good": "Nothing to fix: kdump and the panic settings look right.",
        "last_audit": "At its last readiness audit ({at})", "audit_ready": "ready: a crash leaves a vmcore and its dmesg",
        "audit_not_ready": "not ready: a crash may leave no kdump evidence", "audit_exposed": "exposed to",
        "audit_upgrade": "upgrade to",
        "no_context": "The guest's settings are not known (no context block: the log came from the console or by hand).",
        "setting": "Setting", "value": "Value", "settings": "Guest settings", "kdump": "kdump service",
        "reports": "All reports in the log", "raw": "Raw log", "raw_tail": "last {shown} of {total}",
        "raw_none": "The raw log is not attached to this page.", "yes": "yes", "no": "no", "unknown": "unknown",
        "source": "Report of", "generated": "ecs-crashdiag report, schema",
    },
    "zh": {
        "page": "宕机诊断报告", "instance": "实例", "region": "地域", "time": "事件时间", "kind": "类型",
        "title": "标题", "confidence": "可信度", "verdict": "结论类别", "kernel": "内核", "task": "进程",
        "event": "事件", "fingerprint": "指纹", "rule": "已知问题", "unclassified": "未匹配到已知问题",
        "host": "物理机故障（SystemFailure.Reboot）：实例内部可能没有问题。",
        "none": "采集到的日志中没有发现宕机报告。", "input_error": "日志无法读取",
        "cause": "原因", "remedy": "处理建议", "check": "检查命令", "fix_cmds": "修复命令", "refs": "参考资料",
        "knob": "导致重启的配置", "fix": "当前内核的修复状态",
        "running": "运行中的内核", "fixed_in": "修复版本", "stream": "发行版线", "no_fixed": "知识库中没有记录该问题的修复内核版本。",
        "suspect": "可疑模块", "flags": "标志", "why": "依据", "taint": "内核污染标志",
        "evidence": "关键日志及上下文", "evidence_only": "关键日志（没有原始日志，或在其中未找到这些行）",
        "line": "行", "trace": "调用栈", "frame": "栈帧", "module": "模块", "ctx": "上下文",
        "guilty": "出错栈帧", "unreliable": "? 不可靠栈帧（栈上残留的地址），已淡化显示",
        "modules": "已加载模块", "name": "名称", "meaning": "含义", "in_trace": "出现在调用栈中",
        "more_modules": "其余 {n} 个模块（发行版自带，无标志）", "last_unloaded": "最近卸载",
        "no_modules": "日志中没有 \"Modules linked in\" 行。",
        "collection": "日志来源", "method": "来源", "complete": "完整", "cut": "不完整（较大日志中截取的片段）",
        "path": "实例内路径", "size": "大小", "stale": "早于本次事件", "uploaded": "已完整上传",
        "window": "截取范围（行）", "notes": "说明", "kdump_loaded": "宕机时 kdump 已加载",
        "readiness": "为下次宕机做好准备", "all_good": "无需调整：kdump 与 panic 相关配置正常。",
        "last_audit": "最近一次就绪巡检（{at}）", "audit_ready": "就绪：宕机时会留下 vmcore 和 dmesg",
        "audit_not_ready": "未就绪：宕机时可能没有 kdump 证据", "audit_exposed": "受影响的已知问题",
        "audit_upgrade": "升级到",
        "no_context": "实例配置未知（没有上下文信息：日志来自串口或手动上传）。",
        "setting": "配置项", "value": "值", "settings": "实例配置", "kdump": "kdump 服务",
        "reports": "日志中的全部报告", "raw": "原始日志", "raw_tail": "显示最后 {shown}，共 {total}",
        "raw_none": "本页未附带原始日志。", "yes": "是", "no": "否", "unknown": "未知",
        "source": "报告对象", "generated": "ecs-crashdiag 报告，schema",
    },
}

KIND_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "oom_panic": "panic on out of memory", "oom_no_killable": "out of memory, nothing to kill", "oom_kill": "OOM killer",
        "null_deref": "NULL pointer dereference", "paging_request": "bad paging request", "gpf": "general protection fault",
        "list_corruption": "list corruption", "slab_error": "slab corruption", "kernel_bug": "kernel BUG",
        "divide_error": "divide error", "invalid_opcode": "invalid opcode", "soft_lockup": "soft lockup",
        "hard_lockup": "hard lockup", "hung_task": "hung task", "rcu_stall": "RCU stall", "warning": "kernel WARNING",
        "kasan": "KASAN report", "sysrq_crash": "crash triggered by SysRq", "vfs_no_root": "root file system not mounted",
        "init_killed": "init killed", "page_alloc_failure": "page allocation failure", "double_fault": "double fault",
        "mce": "machine check (hardware)", "other_panic": "kernel panic", "other": "oops", "none": "no crash found",
    },
    "zh": {
        "oom_panic": "内存耗尽触发 panic", "oom_no_killable": "内存耗尽且无可终止进程", "oom_kill": "OOM killer",
        "null_deref": "空指针解引用", "paging_request": "非法内存访问", "gpf": "通用保护错误",
        "list_corruption": "链表损坏", "slab_error": "slab 损坏", "kernel_bug": "内核 BUG",
        "divide_error": "除零错误", "invalid_opcode": "非法指令", "soft_lockup": "软锁死",
        "hard_lockup": "硬锁死", "hung_task": "进程挂起", "rcu_stall": "RCU 停滞", "warning": "内核 WARNING",
        "kasan": "KASAN 报告", "sysrq_crash": "SysRq 触发的宕机", "vfs_no_root": "根文件系统挂载失败",
        "init_killed": "init 进程被终止", "page_alloc_failure": "页分配失败", "double_fault": "双重错误",
        "mce": "硬件机器检查（MCE）", "other_panic": "内核 panic", "other": "oops", "none": "未发现宕机",
    },
}

CATEGORY_LABELS: dict[str, dict[str, str]] = {
    "en": {"kernel_bug": "kernel bug", "config": "configuration", "resource": "resource exhaustion",
           "hardware": "hardware", "boot": "boot failure", "third_party_module": "third-party module"},
    "zh": {"kernel_bug": "内核缺陷", "config": "配置导致", "resource": "资源耗尽",
           "hardware": "硬件故障", "boot": "启动失败", "third_party_module": "第三方模块"},
}

CONFIDENCE_LABELS = {"en": {"high": "high", "medium": "medium", "low": "low"},
                     "zh": {"high": "高", "medium": "中", "low": "低"}}

FIX_LABELS = {
    "en": {"affected": "affected: the running kernel predates the fix", "fixed": "fixed: the running kernel has the fix",
           "unknown": "unknown"},
    "zh": {"affected": "受影响：当前内核早于修复版本", "fixed": "已修复：当前内核已包含修复", "unknown": "未知"},
}

METHOD_LABELS = {
    "en": {"kdump": "kdump vmcore-dmesg", "pstore": "pstore record", "journal": "journal of the previous boot",
           "messages": "/var/log/messages", "kern.log": "/var/log/kern.log",
           "console": "serial console (GetInstanceConsoleOutput)", "inbox": "uploaded by hand to inbox/",
           "local": "a local file", "none": "no log"},
    "zh": {"kdump": "kdump vmcore-dmesg", "pstore": "pstore 记录", "journal": "上次启动的 journal",
           "messages": "/var/log/messages", "kern.log": "/var/log/kern.log",
           "console": "串口输出（GetInstanceConsoleOutput）", "inbox": "手动上传到 inbox/",
           "local": "本地文件", "none": "没有日志"},
}

# Module flags printed in "Modules linked in: name(OE)" (kernel/module.c module_flags()).
MODULE_FLAGS = {
    "en": {"P": "proprietary", "O": "out-of-tree", "E": "unsigned", "F": "force-loaded", "C": "staging",
           "U": "unsupported (el6: unsigned)", "T": "technology preview (RHEL)", "X": "auxiliary (distribution)",
           "K": "live patch", "+": "loading", "-": "unloading"},
    "zh": {"P": "专有", "O": "树外模块", "E": "未签名", "F": "强制加载", "C": "staging 驱动",
           "U": "不受支持（el6：未签名）", "T": "技术预览（RHEL）", "X": "辅助标志（发行版）",
           "K": "热补丁", "+": "加载中", "-": "卸载中"},
}
# The classifier decodes taint letters in English; the page says them in Chinese too.
TAINT_ZH = {
    "G": "未加载专有模块（未设置 P）", "P": "已加载专有模块", "F": "模块被强制加载", "S": "CPU 不符合规格",
    "R": "模块被强制卸载", "M": "发生过机器检查异常（MCE）", "B": "引用了坏页或页标志异常", "U": "用户空间请求的污染（el6：不受支持的模块）",
    "D": "内核刚发生过 oops 或 BUG", "A": "ACPI 表被用户覆盖", "W": "之前出现过内核 WARNING", "C": "已加载 staging 驱动",
    "I": "针对平台缺陷的固件规避", "O": "已加载树外模块", "E": "已加载未签名模块", "L": "之前发生过软锁死",
    "K": "内核已热补丁", "X": "辅助污染（发行版定义）", "T": "结构体随机化插件（RHEL：技术预览驱动）", "N": "运行过内核内测试（kunit）",
}
THIRD_PARTY_FLAGS = frozenset("OEPU")  # as in classify: did not ship with the distribution kernel

CONTEXT_KEYS = ("uname_r", "kdump_active", "crashkernel", "journal_persistent", "sysctl.kernel.panic",
                "sysctl.kernel.panic_on_oops", "sysctl.vm.panic_on_oom", "sysctl.kernel.hung_task_panic",
                "sysctl.kernel.softlockup_panic", "sysctl.kernel.panic_on_warn", "sysctl.kernel.unknown_nmi_panic",
                "tainted_modules")


def labels(lang: str) -> dict[str, str]:
    return LABELS.get(lang, LABELS["en"])


def label_of(table: dict[str, dict[str, str]], lang: str, key: object) -> str:
    t = table.get(lang, table["en"])
    return t.get(str(key), str(key))


def kind_label(kind: object, lang: str) -> str:
    return label_of(KIND_LABELS, lang, kind)


# --- the guilty frame ------------------------------------------------------------------------


def guilty_function(d: dict[str, Any]) -> str | None:
    """The frame the classifier blamed: the function the title names after ' in ', else
    the crashing function, else the first reliable frame that is not crash plumbing."""
    from ..classifier.formats import SKIP_FRAMES, clean_function

    m = re.search(r" in (\S+)$", str(d.get("title") or ""))
    if m and not SKIP_FRAMES.match(m.group(1)):
        return m.group(1)
    rip = (d.get("crash") or {}).get("rip_function")
    if rip and not SKIP_FRAMES.match(rip):
        return rip
    for fr in d.get("call_trace") or []:
        fn = clean_function(str(fr.get("function") or ""))
        if fr.get("reliable") and fn and not SKIP_FRAMES.match(fn):
            return fn
    return None


def _guilty_index(d: dict[str, Any], guilty: str | None) -> int | None:
    """Index in call_trace of the guilty frame; -1 is the RIP row; None when not shown."""
    from ..classifier.formats import clean_function

    if not guilty:
        return None
    crash = d.get("crash") or {}
    if crash.get("rip_function") == guilty and crash.get("rip_symbol"):
        return -1
    frames = d.get("call_trace") or []
    for want_reliable in (True, False):
        for i, fr in enumerate(frames):
            if clean_function(str(fr.get("function") or "")) == guilty and bool(fr.get("reliable")) == want_reliable:
                return i
    return None


# --- evidence in context ---------------------------------------------------------------------


def raw_log_text(raw_log: bytes | None) -> str | None:
    """The raw log as text: gzip inflated (bounded), CRLF and lone CR made newlines."""
    if raw_log is None:
        return None
    data = raw_log
    if data[:2] == b"\x1f\x8b":
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, MAX_LOG_BYTES)
        except zlib.error:
            pass
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


# A raw log above this size is never held whole: the page reads it as a stream for the
# evidence lines, their surroundings and its tail (crashdiag report --html on 200 MB).
WHOLE_BELOW = 4 * 1024 * 1024
SCAN_CHUNK = 4 * 1024 * 1024
EVIDENCE_WINDOW = 16 * 1024  # bytes read around each evidence hit in a large log


class RawView:
    """What the page shows of a raw log: its size, its tail, and windows around the
    evidence lines with the line number each starts at. Built from a file object in
    chunks, so memory stays near SCAN_CHUNK + the windows whatever the log's size."""

    def __init__(self, total: int, tail: str, windows: list[tuple[int, str]]) -> None:
        self.total, self.tail, self.windows = total, tail, windows

    def scrubbed(self, fn: Callable[[str], str]) -> RawView:
        """The same view with ``fn`` applied to each of its lines (redaction: the page's
        parts only, never the whole log)."""

        def each(text_: str) -> str:
            return "\n".join(fn(line) for line in text_.split("\n"))

        return RawView(self.total, each(self.tail), [(n, each(t)) for n, t in self.windows])

    @classmethod
    def of(cls, raw: bytes | str | RawView | None, evidence: list[str]) -> RawView | None:
        """From the log's bytes (plain or gzip) or a path to it."""
        import gzip
        import io
        import os

        if raw is None or isinstance(raw, RawView):
            return raw
        if isinstance(raw, bytes) and len(raw) < WHOLE_BELOW and raw[:2] != b"\x1f\x8b":
            text = raw_log_text(raw) or ""
            return cls(len(raw), text, [(1, text)])
        fh: Any = open(raw, "rb") if isinstance(raw, str | os.PathLike) else io.BytesIO(raw)  # noqa: SIM115
        with fh:
            limit = None
            if fh.read(2) == b"\x1f\x8b":
                fh.seek(0)
                fh, limit = gzip.GzipFile(fileobj=fh), MAX_LOG_BYTES  # inflated at most this far
            fh.seek(0)
            return cls._scan(fh, evidence, limit)

    @classmethod
    def _scan(cls, fh: Any, evidence: list[str], limit: int | None = None) -> RawView:
        needles = [e.strip().encode("utf-8", "replace")[:200] for e in evidence if len(e.strip()) >= 8]
        keep = max((len(n) for n in needles), default=0)
        hits: list[tuple[int, int]] = []  # (offset of the hit's line start, its line number)
        tail = b""
        total = lines = 0
        carry = b""
        while limit is None or total < limit:
            try:
                chunk = fh.read(SCAN_CHUNK)
            except (OSError, EOFError):
                break
            if not chunk:
                break
            buf = carry + chunk
            base = total - len(carry)  # offset of buf[0]
            for n in needles:
                i = buf.find(n)
                while i >= 0 and len(hits) < 64:
                    start = buf.rfind(b"\n", 0, i) + 1
                    at = base + start
                    if all(h[0] != at for h in hits):
                        hits.append((at, lines - carry.count(b"\n") + buf.count(b"\n", 0, start) + 1))
                    i = buf.find(n, i + 1)
            lines += chunk.count(b"\n")
            total += len(chunk)
            tail = (tail + chunk)[-RAW_LOG_TAIL:]
            carry = buf[-keep:] if keep else b""
        ranges: list[list[int]] = []  # [lo, hi, a hit's offset, its line number], overlapping ones merged
        for at, line_no in sorted(hits):
            lo, hi = max(0, at - EVIDENCE_WINDOW), at + EVIDENCE_WINDOW
            if ranges and lo <= ranges[-1][1]:
                ranges[-1][1] = hi
            else:
                ranges.append([lo, hi, at, line_no])
        windows: list[tuple[int, str]] = []
        for lo, hi, at, line_no in ranges:
            try:
                fh.seek(lo)
                data = fh.read(hi - lo)
            except (OSError, EOFError):
                continue
            first = data.find(b"\n") + 1 if lo > 0 else 0  # start at a whole line
            last = data.rfind(b"\n")
            data = data[first : last + 1 if last >= first else len(data)]
            windows.append((line_no - data.count(b"\n", 0, at - lo - first), _text(data)))
        return cls(total, _text(tail), windows)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def evidence_in_view(view: RawView, evidence: list[str]) -> list[tuple[int, str, bool] | None] | None:
    """evidence_context over each window of a RawView, with line numbers of the whole log."""
    out: list[tuple[int, str, bool] | None] = []
    for first_line, text_ in view.windows:
        rows = evidence_context(text_, evidence, first_line=first_line, budget=MAX_CONTEXT_LINES - len(out))
        if rows:
            if out:
                out.append(None)
            out.extend(rows)
        if len(out) >= MAX_CONTEXT_LINES:
            break
    return out or None


def evidence_context(text_: str, evidence: list[str], around: int = CONTEXT_LINES,
                     budget: int = MAX_CONTEXT_LINES, first_line: int = 1) -> list[tuple[int, str, bool] | None] | None:
    """Lines around each evidence line as (line number, text, is_evidence), with None
    between separate stretches; None when no evidence line is found in the text. Works
    on character offsets so a log of many megabytes is never split into lines whole."""
    hits: list[int] = []  # offsets of the start of each hit line
    for ev in evidence:
        ev = ev.strip()
        if not ev:
            continue
        pos = text_.find(ev)
        if pos < 0:
            continue
        hits.append(text_.rfind("\n", 0, pos) + 1)
    if not hits:
        return None
    hit_starts = set(hits)
    spans: list[list[int]] = []
    for start in sorted(hit_starts):
        lo = start
        for _ in range(around):
            if lo == 0:
                break
            lo = text_.rfind("\n", 0, lo - 1) + 1
        hi = start
        for _ in range(around + 1):
            nxt = text_.find("\n", hi)
            if nxt < 0:
                hi = len(text_)
                break
            hi = nxt + 1
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    out: list[tuple[int, str, bool] | None] = []
    counted, line_no = 0, first_line
    for lo, hi in spans:
        line_no += text_.count("\n", counted, lo)
        counted = lo
        if out:
            out.append(None)
        pos = lo
        while pos < hi and pos < len(text_):
            end = text_.find("\n", pos, hi)
            end = hi if end < 0 else end
            out.append((line_no, text_[pos:end], pos in hit_starts))
            if end >= hi:
                pos = hi
            else:
                pos = end + 1
                line_no += 1
                counted = pos
            if len(out) >= budget:
                return out
        line_no += text_.count("\n", counted, hi)
        counted = hi
    return out


# --- what the template shows ------------------------------------------------------------------

GRAVE_CATEGORIES = ("kernel_bug", "third_party_module", "hardware")  # a red verdict; the rest amber


def _flag_names(flags: str, lang: str) -> str:
    return ", ".join(f"{c} {label_of(MODULE_FLAGS, lang, c)}" for c in flags)


def _trace_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The RIP row and one row per frame: class (guilty, unrel), module flags to flag."""
    frames = d.get("call_trace") or []
    crash = d.get("crash") or {}
    if not frames and not crash.get("rip_symbol"):
        return []
    guilty = _guilty_index(d, guilty_function(d))
    flagged = {m.get("name"): m.get("flags") or "" for m in (d.get("modules") or {}).get("linked_in") or []}

    def module(mod: object) -> dict[str, Any]:
        flags = flagged.get(mod, "") if mod else ""
        return {"module": mod or "", "flags": flags, "third_party": bool(set(flags) & THIRD_PARTY_FLAGS)}

    rows = []
    if crash.get("rip_symbol"):
        rows.append({"cls": "guilty" if guilty == -1 else None, "first": "RIP", "name": crash["rip_symbol"], "context": "",
                     **module(crash.get("rip_module"))})
    for i, fr in enumerate(frames):
        reliable = bool(fr.get("reliable"))
        rows.append({"cls": "guilty" if i == guilty else (None if reliable else "unrel"), "first": "" if reliable else "?",
                     "name": str(fr.get("function") or "?") + (f"+{fr['offset']}" if fr.get("offset") else ""),
                     "context": fr.get("context") or "", **module(fr.get("module"))})
    return rows


def _module_table(d: dict[str, Any], lang: str) -> dict[str, Any] | None:
    """Flagged and in-trace modules first; unflagged ones fold away past MODULES_SHOWN."""
    L = labels(lang)
    mods = d.get("modules") or {}
    linked = mods.get("linked_in") or []
    if not linked and not mods.get("last_unloaded"):
        return None if d.get("kind") in (None, "none") else {"empty": True}
    in_trace = set(mods.get("in_trace") or [])
    ordered = sorted(linked, key=lambda m: (not (set(m.get("flags") or "") & THIRD_PARTY_FLAGS), m.get("name") not in in_trace))
    shown = [m for m in ordered if m.get("flags") or m.get("name") in in_trace]
    rest = [m for m in ordered if m not in shown]
    if len(shown) + len(rest) <= MODULES_SHOWN:
        shown, rest = shown + rest, []
    rows = []
    for m in shown:
        f = str(m.get("flags") or "")
        note = [_flag_names(f, lang)] if f else []
        if m.get("name") in in_trace:
            note.append(L["in_trace"])
        rows.append({"name": m.get("name") or "", "flags": f, "third_party": bool(set(f) & THIRD_PARTY_FLAGS), "note": "; ".join(note)})
    return {"empty": False, "count": len(linked), "rows": rows, "folded": [m.get("name") or "" for m in rest]}


def _raw(lang: str, view: RawView | None) -> dict[str, Any] | None:
    """The folded raw log: at most its last RAW_LOG_TAIL bytes, from a whole line on."""
    if view is None:
        return None
    L = labels(lang)
    total = view.total
    if total > RAW_LOG_TAIL or len(view.tail.encode("utf-8", errors="replace")) > RAW_LOG_TAIL:
        tail = view.tail.encode("utf-8", errors="replace")[-RAW_LOG_TAIL:].decode("utf-8", errors="ignore")
        tail = tail.split("\n", 1)[1] if "\n" in tail else tail  # start at a whole line
        summary = f"{L['raw']} ({L['raw_tail'].format(shown=human_size(RAW_LOG_TAIL), total=human_size(total))})"
    else:
        tail = view.tail
        summary = f"{L['raw']} ({human_size(total)})"
    return {"summary": summary, "lines": tail.rstrip("\n").split("\n")}


def _context(report: dict[str, Any], lang: str, raw_log: bytes | str | RawView | None) -> dict[str, Any]:
    """Everything incident.html.j2 reads."""
    L = labels(lang)
    d = report.get("diagnosis") or {}
    inc = report.get("incident") or {}
    crash = d.get("crash") or {}
    mods = d.get("modules") or {}
    taint = d.get("taint") or {}
    ctx = report.get("guest_context") or {}
    evidence = [str(e) for e in d.get("evidence") or []]
    view = RawView.of(raw_log, evidence)
    sub = [x for x in (inc.get("instance_id"), inc.get("region"), human_time(inc.get("event_time")) if inc.get("event_time") else None) if x]
    suspect_flags = next((m.get("flags") or "" for m in mods.get("linked_in") or [] if m.get("name") == mods.get("suspect")), "")
    decoded = taint.get("decoded") or {}
    title = f"{L['page']}: {plain(d.get('title') or '', 120)}"
    if inc.get("instance_id"):
        title += f" ({plain(inc['instance_id'], 60)})"
    return {
        **facts({"report": report, "d": d, "inc": inc, "rule": d.get("rule") or {}, "crash": crash, "kernel": d.get("kernel") or {},
                 "mods": mods, "taint": taint, "col": report.get("collection") or {},
                 "log": (report.get("collection") or {}).get("log") or {}, "ctx": ctx, "advice": report.get("advice") or []}),
        "lang": lang, "csp": CSP, "title": title, "L": L,
        "KINDS": KIND_LABELS.get(lang, KIND_LABELS["en"]), "CATEGORIES": CATEGORY_LABELS.get(lang, CATEGORY_LABELS["en"]),
        "CONFIDENCE": CONFIDENCE_LABELS.get(lang, CONFIDENCE_LABELS["en"]), "FIX": FIX_LABELS.get(lang, FIX_LABELS["en"]),
        "METHODS": METHOD_LABELS.get(lang, METHOD_LABELS["en"]), "GRAVE": GRAVE_CATEGORIES,
        "sub": " · ".join(plain(x, 120) for x in sub),
        "event": " ".join(str(x) for x in (inc.get("event_code"), inc.get("event_status")) if x),
        "confidence_tone": {"high": "ok", "medium": "warn", "low": "bad"}.get(str(d.get("confidence")), "grey"),
        "task": f"{plain(crash['comm'], 64)}  pid {crash.get('pid')}  cpu {crash.get('cpu')}" if crash.get("comm") else None,
        "suspect_flags": suspect_flags, "suspect_flag_names": _flag_names(suspect_flags, lang),
        "taint_rows": [(c, TAINT_ZH.get(c, decoded.get(c, "")) if lang == "zh" else decoded.get(c, ""))
                       for c in str(taint.get("flags") or "") if c != " "],
        "evidence_rows": evidence_in_view(view, evidence) if view and evidence else None,
        "trace_rows": _trace_rows(d),
        "modules": _module_table(d, lang),
        "settings_rows": [(k, ctx[k]) for k in CONTEXT_KEYS if ctx.get(k) not in (None, "")],
        "raw": _raw(lang, view),
    }


def render_html(report: dict[str, Any], lang: str = "en", raw_log: bytes | str | RawView | None = None) -> str:
    """The incident page for one report.json: self-contained, no script, strict CSP.

    ``raw_log`` (the crash.log bytes, plain or gzip, or a path to it) lets the evidence be
    shown in its surrounding lines and the log itself be folded in at the end (its last
    200 KB). A large log is read as a stream (RawView): the page holds only those parts;
    a RawView given here (the pipeline's, redacted) is used as it is."""
    from .pages import render

    lang = lang if lang in LABELS else "en"
    return render("incident.html.j2", **_context(report, lang, raw_log))
