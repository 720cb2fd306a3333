"""The incident page: one self-contained HTML file from a report.json (and the raw log).

Everything a guest wrote (process names, module names, log lines) is attacker-controlled,
so markup is only ever built by ``el()``: a plain ``str`` child or attribute value is
escaped with ``escape.h``, only ``Html`` (made here) passes through. The page carries a
Content-Security-Policy that forbids scripts, external fetches and remote images, so even
an escaping bug could not run code or phone home. There is no JavaScript: folded parts
are ``<details>``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from typing import Any

from .escape import h, plain

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
RAW_LOG_TAIL = 200 * 1024  # the folded raw log shows at most this many bytes (the end)
CONTEXT_LINES = 4  # log lines shown around each evidence line
MAX_CONTEXT_LINES = 240  # evidence-in-context block, in all
MAX_LOG_BYTES = 64 * 1024 * 1024  # a gzip raw log is inflated at most this far
MODULES_SHOWN = 30  # modules beyond this (unflagged ones) fold away

# --- safe markup ---------------------------------------------------------------------------


class Html(str):
    """Markup known to be safe: produced only by the helpers in this module."""

    __slots__ = ()


# HTML void elements only: SVG elements are foreign content and always get a closing tag.
_VOID = frozenset({"meta", "br", "hr"})


def text(value: object, limit: int = 2000) -> Html:
    """Escaped text (one line, control characters replaced, bounded)."""
    return Html(h(value, limit))


def lines(values: Iterable[object], limit: int = 4000) -> Html:
    """Several escaped lines joined by newlines (for <pre>)."""
    return Html("\n".join(h(v, limit) for v in values))


def _attr_name(name: str) -> str:
    name = name.rstrip("_").replace("_", "-")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ValueError(f"bad attribute name {name!r}")
    return name


def _children(parts: Iterable[object]) -> Iterable[str]:
    for p in parts:
        if p is None or p is False:
            continue
        if isinstance(p, Html):
            yield p
        elif isinstance(p, (list, tuple)) or hasattr(p, "__next__"):
            yield from _children(p)
        else:
            yield h(p, 4000)


def el(tag: str, *children: object, **attrs: object) -> Html:
    """``<tag a="v">children</tag>``; values and str children are escaped.

    ``class_`` names the class attribute, ``data_x`` becomes ``data-x``; an attribute
    that is None or False is left out, True is written bare.
    """
    if not re.fullmatch(r"[a-z][a-z0-9]*", tag):
        raise ValueError(f"bad tag {tag!r}")
    out = ["<", tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        out.append(" " + _attr_name(name))
        if value is not True:
            out.append('="' + h(value, 4000) + '"')
    out.append(">")
    if tag in _VOID and not children:
        return Html("".join(out))
    out.extend(_children(children))
    out.append(f"</{tag}>")
    return Html("".join(out))


def join(parts: Iterable[object], sep: str = "") -> Html:
    return Html(sep.join(_children(parts)))


def document(title: str, lang: str, style: str, body: Iterable[object]) -> Html:
    """A whole page: doctype, the CSP before anything else in <head>, inline CSS."""
    head = el(
        "head",
        el("meta", charset="utf-8"),
        el("meta", http_equiv="Content-Security-Policy", content=CSP),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("meta", name="referrer", content="no-referrer"),
        el("title", title),
        Html("<style>" + style + "</style>"),
    )
    return Html("<!DOCTYPE html>\n" + el("html", head, el("body", *body), lang="zh-CN" if lang == "zh" else "en") + "\n")


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


def human_size(n: object) -> str:
    try:
        v = float(str(n))
    except ValueError:
        return str(n)
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(n)


def human_time(iso: object) -> str:
    """'2026-11-26T10:00:01Z' -> '2026-11-26 10:00:01 UTC' (anything else as it is)."""
    s = str(iso or "")
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]00:?00)?", s)
    if m:
        return f"{m.group(1)} {m.group(2)}" + (" UTC" if m.group(3) else "")
    return s


# --- style ---------------------------------------------------------------------------------

STYLE = """
:root{--bg:#f4f6f8;--card:#fff;--ink:#1b2430;--mute:#5f6b7a;--line:#e2e6eb;--accent:#1f5fbf;
--bad:#b42318;--badbg:#fdecea;--warn:#9a5b00;--warnbg:#fff4e0;--ok:#1e7b34;--okbg:#e6f4ea;--grey:#5f6b7a;--greybg:#eef1f4}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"PingFang SC","Hiragino Sans GB","Noto Sans CJK SC","Microsoft YaHei",sans-serif}
.top{background:#16202c;color:#fff;padding:18px 0 20px}
.wrap{max-width:1180px;margin:0 auto;padding:0 28px}
.top .eyebrow{color:#9fb3c8;font-size:12px;letter-spacing:.04em;text-transform:uppercase}
.top h1{font-size:21px;line-height:1.35;margin:4px 0 8px;word-break:break-word}
.top .sub{color:#c9d5e2;font-size:13px}
main.wrap{padding-top:18px;padding-bottom:36px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 16px}
h2{font-size:15px;margin:0 0 12px;color:#0f1a26}
h3{font-size:13px;margin:14px 0 6px;color:var(--mute);text-transform:uppercase;letter-spacing:.03em}
p{margin:6px 0}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:12px 22px;margin:0}
.kv div{min-width:0}.kv dt{color:var(--mute);font-size:12px}.kv dd{margin:0;font-weight:600;word-break:break-word}
.kv dd.wide{font-weight:500}.span2{grid-column:span 2}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600;line-height:20px;border:1px solid transparent;white-space:nowrap}
.bad{color:var(--bad);background:var(--badbg);border-color:#f5c2bd}.warn{color:var(--warn);background:var(--warnbg);border-color:#f3d9a8}
.ok{color:var(--ok);background:var(--okbg);border-color:#b7dfc2}.grey{color:var(--grey);background:var(--greybg);border-color:#d8dee5}
.note{border-left:4px solid var(--warn);background:var(--warnbg);padding:8px 12px;border-radius:4px;margin:10px 0 0}
.note.bad{border-left-color:var(--bad)}
.mute{color:var(--mute)}.small{font-size:12px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono","Noto Sans Mono CJK SC",monospace;font-size:12.5px}
code{background:var(--greybg);padding:1px 5px;border-radius:4px;word-break:break-all}
.nowrap,code.nowrap{white-space:nowrap;word-break:normal}
pre{background:#0f1720;color:#e6edf3;padding:10px 12px;border-radius:6px;overflow:auto;margin:6px 0;line-height:1.45}
pre.cmd{white-space:pre-wrap;word-break:break-all}
pre.cmd .p{color:#7d8fa3;user-select:none}
ol.steps{margin:6px 0 0;padding-left:22px}ol.steps li{margin:3px 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--mute);font-weight:600;background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.log{background:#0f1720;color:#d6dee7;border-radius:6px;padding:8px 0;overflow:auto;
font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px;line-height:1.5}
.log .l{white-space:pre;padding:0 12px 0 0;min-width:max-content}
.log .n{display:inline-block;width:64px;padding-right:10px;text-align:right;color:#5d6f82;user-select:none}
.log .hit{background:#4b3b00;color:#ffe38a;box-shadow:inset 3px 0 0 #f2b600}
.log .gap{color:#5d6f82;padding-left:74px}
.trace td{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px;padding:2px 8px}
.trace tr.unrel td{color:#9aa5b1}
.trace tr.guilty td{background:var(--badbg);color:var(--bad);font-weight:700}
.trace .mark{font-family:system-ui,sans-serif;font-size:11px;font-weight:700}
.mods tr.flag td{background:#fff8ec}
details{margin:6px 0}details>summary{cursor:pointer;font-weight:600;color:var(--accent)}
details.raw pre{max-height:640px;white-space:pre}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media (max-width:800px){.cols{grid-template-columns:1fr}.span2{grid-column:auto}}
footer{color:var(--mute);font-size:12px;margin-top:8px}
a{color:var(--accent)}
.chart{width:100%;height:auto;display:block}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12px;margin:8px 0 0}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
"""


def badge(label: str, tone: str) -> Html:
    return el("span", label, class_=f"badge {tone}")


def kv(items: Iterable[tuple[str, object, str | None]]) -> Html:
    """A definition grid; values may be Html. The third item is extra classes."""
    return el("dl", [el("div", el("dt", k), el("dd", v, class_=cls), class_="span2" if cls == "wide" else None)
                     for k, v, cls in items if v not in (None, "", [])], class_="kv")


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


def evidence_context(text_: str, evidence: list[str], around: int = CONTEXT_LINES,
                     budget: int = MAX_CONTEXT_LINES) -> list[tuple[int, str, bool] | None] | None:
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
    counted, line_no = 0, 1
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


def _log_block(rows: list[tuple[int, str, bool] | None]) -> Html:
    parts = []
    for row in rows:
        if row is None:
            parts.append(el("div", "⋯", class_="l gap"))
            continue
        no, line, hit = row
        parts.append(el("div", el("span", str(no), class_="n"), text(line.rstrip("\n"), 4000), class_="l hit" if hit else "l"))
    return el("div", parts, class_="log")


def _plain_log(values: list[str], hit: bool) -> Html:
    return el("div", [el("div", el("span", "", class_="n"), text(v, 4000), class_="l hit" if hit else "l") for v in values],
              class_="log")


# --- sections --------------------------------------------------------------------------------


def _header(report: dict[str, Any], lang: str) -> Html:
    L = labels(lang)
    d = report.get("diagnosis") or {}
    inc = report.get("incident") or {}
    sub = [x for x in (inc.get("instance_id"), inc.get("region"), human_time(inc.get("event_time")) if inc.get("event_time") else None) if x]
    return el("header", el("div",
                           el("div", L["page"], " · ", kind_label(d.get("kind"), lang), class_="eyebrow"),
                           el("h1", text(d.get("title") or "", 300)),
                           el("div", " · ".join(str(plain(x, 120)) for x in sub), class_="sub") if sub else None,
                           class_="wrap"), class_="top")


def _confidence_tone(c: object) -> str:
    return {"high": "ok", "medium": "warn", "low": "bad"}.get(str(c), "grey")


def _summary(report: dict[str, Any], lang: str) -> Html:
    L = labels(lang)
    d = report.get("diagnosis") or {}
    inc = report.get("incident") or {}
    rule = d.get("rule") or {}
    crash = d.get("crash") or {}
    kernel = d.get("kernel") or {}
    instance = None
    if inc.get("instance_id"):
        instance = join([inc["instance_id"], f" ({plain(inc['instance_name'], 120)})" if inc.get("instance_name") else None])
    conf = None
    if d.get("confidence"):
        conf = join([badge(label_of(CONFIDENCE_LABELS, lang, d["confidence"]), _confidence_tone(d["confidence"])),
                     el("div", "; ".join(str(r) for r in d.get("confidence_reasons") or []), class_="small mute")
                     if d.get("confidence_reasons") else None])
    verdict = (badge(label_of(CATEGORY_LABELS, lang, rule["category"]), "bad" if rule.get("category") in ("kernel_bug", "third_party_module", "hardware") else "warn")
               if rule.get("category") else badge(L["unclassified"], "grey"))
    task = None
    if crash.get("comm"):
        task = f"{plain(crash['comm'], 64)}  pid {crash.get('pid')}  cpu {crash.get('cpu')}"
    event = " ".join(str(x) for x in (inc.get("event_code"), inc.get("event_status")) if x) or None
    kind = join([el("code", d.get("kind") or ""), " ", kind_label(d.get("kind"), lang)])
    items: list[tuple[str, object, str | None]] = [
        (L["instance"], instance, None),
        (L["region"], inc.get("region"), None),
        (L["time"], human_time(inc.get("event_time")) if inc.get("event_time") else None, None),
        (L["event"], event, None),
        (L["kind"], kind, None),
        (L["confidence"], conf, None),
        (L["verdict"], verdict, None),
        (L["kernel"], kernel.get("release"), None),
        (L["task"], task, None),
        (L["fingerprint"], el("code", d["fingerprint"]) if d.get("fingerprint") else None, None),
        (L["rule"], join([el("code", rule["id"]), " ", rule.get("title") or ""]) if rule.get("id") else None, "wide"),
        (L["title"], d.get("title"), "wide"),
    ]
    body: list[object] = [kv(items)]
    if inc.get("host_failure"):
        body.append(el("p", L["host"], class_="note"))
    if report.get("input_error"):
        body.append(el("p", L["input_error"], ": ", report["input_error"], class_="note bad"))
    elif d.get("kind") == "none":
        body.append(el("p", L["none"], class_="note"))
    return el("section", body, id="summary")


def _commands(title: str, cmds: list[str]) -> Html | None:
    if not cmds:
        return None
    return join([el("h3", title), el("pre", join([join([el("span", "$ ", class_="p"), text(c, 1000)]) for c in cmds], "\n"), class_="cmd")])


def _cause(report: dict[str, Any], lang: str) -> Html | None:
    L = labels(lang)
    d = report.get("diagnosis") or {}
    rule = d.get("rule")
    if not rule:
        return None
    refs = []
    for ref in rule.get("references") or []:
        s = str(ref)
        refs.append(el("li", el("a", s, href=s, rel="noopener noreferrer") if s.startswith("https://") else el("code", s)))
    return el(
        "section",
        el("h2", L["cause"]),
        el("p", text(rule.get("cause") or "", 4000)),
        el("h3", L["remedy"]),
        el("ol", [el("li", text(s, 2000)) for s in rule.get("remedy_steps") or []], class_="steps"),
        _commands(L["check"], rule.get("check_commands") or []),
        _commands(L["fix_cmds"], rule.get("fix_commands") or []),
        join([el("h3", L["knob"]), el("p", el("code", d["config_knob"]))]) if d.get("config_knob") else None,
        join([el("h3", L["refs"]), el("ul", refs, class_="small")]) if refs else None,
        id="cause",
    )


def _fix(report: dict[str, Any], lang: str) -> Html | None:
    L = labels(lang)
    d = report.get("diagnosis") or {}
    rule = d.get("rule")
    if not rule:
        return None
    status = d.get("fix_status")
    kernel = d.get("kernel") or {}
    tone = {"affected": "bad", "fixed": "ok"}.get(str(status), "grey")
    head = badge(label_of(FIX_LABELS, lang, status), tone) if status else el("span", L["no_fixed"], class_="mute")
    rows = []
    for stream, versions in sorted((rule.get("fixed_in") or {}).items()):
        mine = stream == kernel.get("stream")
        rows.append(el("tr", el("td", el("b", stream) if mine else stream), el("td", ", ".join(str(v) for v in versions))))
    return el(
        "section",
        el("h2", L["fix"]),
        el("p", head),
        el("p", text(d.get("fix_detail") or "")) if status else None,
        kv([(L["running"], kernel.get("release"), None), (L["stream"], kernel.get("stream"), None)]),
        el("table", el("tr", el("th", L["stream"]), el("th", L["fixed_in"])), rows, class_="small") if rows else None,
        id="fix",
    )


def _flag_names(flags: str, lang: str) -> str:
    return ", ".join(f"{c} {label_of(MODULE_FLAGS, lang, c)}" for c in flags)


def _suspect(report: dict[str, Any], lang: str) -> Html | None:
    L = labels(lang)
    d = report.get("diagnosis") or {}
    mods = d.get("modules") or {}
    taint = d.get("taint") or {}
    if not mods.get("suspect") and not taint.get("flags"):
        return None
    parts: list[object] = [el("h2", L["suspect"] if mods.get("suspect") else L["taint"])]
    if mods.get("suspect"):
        flags = next((m.get("flags") or "" for m in mods.get("linked_in") or [] if m.get("name") == mods["suspect"]), "")
        parts.append(kv([
            (L["suspect"], el("code", mods["suspect"]), None),
            (L["flags"], join([badge(f"({flags})", "bad"), " ", _flag_names(flags, lang)]) if flags else None, None),
            (L["why"], mods.get("suspect_reason"), "wide"),
        ]))
    if taint.get("flags"):
        decoded = taint.get("decoded") or {}
        if mods.get("suspect"):
            parts.append(el("h3", L["taint"]))
        parts.append(el("p", el("code", taint["flags"])))
        meaning = (lambda c: TAINT_ZH.get(c, decoded.get(c, ""))) if lang == "zh" else (lambda c: decoded.get(c, ""))
        parts.append(el("table", [el("tr", el("td", el("code", c), class_="mono"), el("td", meaning(c)))
                                  for c in str(taint["flags"]) if c != " "], class_="small"))
    return el("section", parts, id="suspect")


def _evidence(report: dict[str, Any], lang: str, raw_text: str | None) -> Html | None:
    L = labels(lang)
    d = report.get("diagnosis") or {}
    evidence = [str(e) for e in d.get("evidence") or []]
    if not evidence:
        return None
    rows = evidence_context(raw_text, evidence) if raw_text else None
    if rows:
        return el("section", el("h2", L["evidence"]), _log_block(rows), id="evidence")
    return el("section", el("h2", L["evidence_only"]), _plain_log(evidence, True), id="evidence")


def _trace(report: dict[str, Any], lang: str) -> Html | None:
    L = labels(lang)
    d = report.get("diagnosis") or {}
    frames = d.get("call_trace") or []
    crash = d.get("crash") or {}
    if not frames and not crash.get("rip_symbol"):
        return None
    guilty = _guilty_index(d, guilty_function(d))
    flagged = {m.get("name"): m.get("flags") or "" for m in (d.get("modules") or {}).get("linked_in") or []}
    rows = [el("tr", el("th", ""), el("th", L["frame"]), el("th", L["module"]), el("th", L["ctx"]))]

    def mod_cell(mod: object) -> object:
        if not mod:
            return ""
        f = flagged.get(mod, "")
        return join([str(mod), " ", badge(f"({f})", "bad") if set(f) & THIRD_PARTY_FLAGS else None])

    if crash.get("rip_symbol"):
        mark = el("span", "◀ " + L["guilty"], class_="mark") if guilty == -1 else ""
        rows.append(el("tr", el("td", "RIP"), el("td", crash["rip_symbol"], " ", mark), el("td", mod_cell(crash.get("rip_module"))),
                       el("td", ""), class_="guilty" if guilty == -1 else None))
    for i, fr in enumerate(frames):
        reliable = bool(fr.get("reliable"))
        name = str(fr.get("function") or "?") + (f"+{fr['offset']}" if fr.get("offset") else "")
        cls = "guilty" if i == guilty else (None if reliable else "unrel")
        mark = el("span", "◀ " + L["guilty"], class_="mark") if i == guilty else None
        rows.append(el("tr", el("td", "" if reliable else "?"), el("td", name, " ", mark), el("td", mod_cell(fr.get("module"))),
                       el("td", fr.get("context") or ""), class_=cls))
    return el("section", el("h2", L["trace"]), el("table", rows, class_="trace"),
              el("p", L["unreliable"], class_="small mute"), id="trace")


def _modules(report: dict[str, Any], lang: str) -> Html | None:
    L = labels(lang)
    d = report.get("diagnosis") or {}
    mods = d.get("modules") or {}
    linked = mods.get("linked_in") or []
    if not linked and not mods.get("last_unloaded"):
        if d.get("kind") in (None, "none"):
            return None
        return el("section", el("h2", L["modules"]), el("p", L["no_modules"], class_="mute"), id="modules")
    in_trace = set(mods.get("in_trace") or [])
    ordered = sorted(linked, key=lambda m: (not (set(m.get("flags") or "") & THIRD_PARTY_FLAGS), m.get("name") not in in_trace))
    head = el("tr", el("th", L["name"]), el("th", L["flags"]), el("th", L["meaning"]))

    def row(m: dict[str, Any]) -> Html:
        f = str(m.get("flags") or "")
        third = bool(set(f) & THIRD_PARTY_FLAGS)
        note = [_flag_names(f, lang)] if f else []
        if m.get("name") in in_trace:
            note.append(L["in_trace"])
        return el("tr", el("td", el("code", m.get("name") or "")), el("td", badge(f"({f})", "bad" if third else "grey") if f else ""),
                  el("td", "; ".join(note)), class_="flag" if third else None)

    shown = [m for m in ordered if m.get("flags") or m.get("name") in in_trace]
    rest = [m for m in ordered if m not in shown]
    if len(shown) + len(rest) <= MODULES_SHOWN:
        shown, rest = shown + rest, []
    body: list[object] = [el("h2", L["modules"], " ", el("span", f"({len(linked)})", class_="mute small"))]
    body.append(el("table", head, [row(m) for m in shown], class_="mods small"))
    if rest:
        body.append(el("details", el("summary", L["more_modules"].format(n=len(rest))),
                       el("p", join([el("code", m.get("name") or "") for m in rest], " "), class_="small")))
    if mods.get("last_unloaded"):
        body.append(el("p", L["last_unloaded"], ": ", el("code", mods["last_unloaded"]), class_="small"))
    return el("section", body, id="modules")


def _collection(report: dict[str, Any], lang: str) -> Html | None:
    L = labels(lang)
    col = report.get("collection") or {}
    d = report.get("diagnosis") or {}
    if not col.get("method"):
        return None
    log = col.get("log") or {}
    complete = bool(col.get("complete"))
    yes_no = {"yes": L["yes"], "no": L["no"]}
    kdump_loaded = (d.get("crash") or {}).get("kdump_loaded")
    items: list[tuple[str, object, str | None]] = [
        (L["method"], join([label_of(METHOD_LABELS, lang, col["method"]), " ",
                            badge(L["complete"] if complete else L["cut"], "ok" if complete else "warn")]), None),
        (L["path"], el("code", log["path"]) if log.get("path") else (log.get("via") or None), None),
        (L["size"], human_size(log["size"]) if log.get("size") else None, None),
        (L["window"], log.get("window"), None),
        (L["uploaded"], yes_no.get(str(log.get("uploaded")), log.get("uploaded")), None),
        (L["stale"], badge(L["yes"], "warn") if log.get("stale") == "yes" else None, None),
        (L["kdump_loaded"], None if kdump_loaded is None else (L["yes"] if kdump_loaded else L["no"]), None),
    ]
    notes = [el("li", n) for n in col.get("notes") or []]
    return el("section", el("h2", L["collection"]), kv(items),
              join([el("h3", L["notes"]), el("ul", notes, class_="small")]) if notes else None, id="collection")


def _readiness(report: dict[str, Any], lang: str) -> Html:
    L = labels(lang)
    advice = report.get("advice") or []
    ctx = report.get("guest_context") or {}
    parts: list[object] = [el("h2", L["readiness"])]
    if ctx.get("kdump_active") or ctx.get("cmdline"):
        active = ctx.get("kdump_active")
        parts.append(kv([
            (L["kdump"], badge(str(active), "ok" if active == "active" else "bad") if active else None, None),
            ("crashkernel=", el("code", ctx["crashkernel"]) if ctx.get("crashkernel")
             else (badge(L["no"], "bad") if ctx.get("cmdline") else None), None),
        ]))
    if advice:
        parts.append(el("ul", [el("li", text(a.get("text") or "", 1000), " ", el("span", a.get("id") or "", class_="badge grey")) for a in advice]))
    elif ctx:
        parts.append(el("p", badge("✓", "ok"), " ", L["all_good"]))
    if ctx:
        rows = [el("tr", el("td", el("code", k)), el("td", text(ctx[k], 300))) for k in CONTEXT_KEYS if ctx.get(k) not in (None, "")]
        if rows:
            parts.append(el("details", el("summary", L["settings"]),
                            el("table", el("tr", el("th", L["setting"]), el("th", L["value"])), rows, class_="small")))
    else:
        parts.append(el("p", L["no_context"], class_="mute"))
    return el("section", parts, id="readiness")


def _reports(report: dict[str, Any], lang: str) -> Html | None:
    L = labels(lang)
    reps = (report.get("diagnosis") or {}).get("reports") or []
    if len(reps) < 2:
        return None
    rows = [el("tr", el("td", str(r.get("line") or ""), class_="num"), el("td", el("code", r.get("kind") or "")),
               el("td", r.get("title") or ""), el("td", "fatal" if r.get("fatal") else "")) for r in reps[:50]]
    return el("section", el("h2", L["reports"], " ", el("span", f"({len(reps)})", class_="mute small")),
              el("table", el("tr", el("th", L["line"], class_="num"), el("th", L["kind"]), el("th", L["title"]), el("th", "")), rows,
                 class_="small"), id="reports")


def _raw(lang: str, raw_log: bytes | None, raw_text: str | None) -> Html:
    L = labels(lang)
    if raw_text is None or raw_log is None:
        return el("section", el("h2", L["raw"]), el("p", L["raw_none"], class_="mute"), id="raw")
    data = raw_text.encode("utf-8", errors="replace")
    total = len(data)
    if total > RAW_LOG_TAIL:
        tail = data[-RAW_LOG_TAIL:].decode("utf-8", errors="ignore")
        tail = tail.split("\n", 1)[1] if "\n" in tail else tail  # start at a whole line
        summary = f"{L['raw']} ({L['raw_tail'].format(shown=human_size(RAW_LOG_TAIL), total=human_size(total))})"
    else:
        tail = raw_text
        summary = f"{L['raw']} ({human_size(total)})"
    return el("section", el("details", el("summary", summary), el("pre", lines(tail.rstrip("\n").split("\n"))), class_="raw"), id="raw")


def render_html(report: dict[str, Any], lang: str = "en", raw_log: bytes | None = None) -> str:
    """The incident page for one report.json: self-contained, no script, strict CSP.

    ``raw_log`` (the crash.log bytes, plain or gzip) lets the evidence be shown in its
    surrounding lines and the log itself be folded in at the end (its last 200 KB)."""
    lang = lang if lang in LABELS else "en"
    L = labels(lang)
    d = report.get("diagnosis") or {}
    raw_text = raw_log_text(raw_log)
    trace = _trace(report, lang)
    mods = _modules(report, lang)
    body = [
        _header(report, lang),
        el("main",
           _summary(report, lang),
           _cause(report, lang),
           _fix(report, lang),
           _suspect(report, lang),
           _evidence(report, lang, raw_text),
           trace,
           mods,
           el("div", _collection(report, lang), _readiness(report, lang), class_="cols"),
           _reports(report, lang),
           _raw(lang, raw_log, raw_text),
           el("footer", L["source"], ": ", el("code", report.get("source") or d.get("source") or ""), " · ",
              L["generated"], " ", str(report.get("schema_version") or "")),
           class_="wrap"),
    ]
    title = f"{L['page']}: {plain(d.get('title') or '', 120)}"
    inst = (report.get("incident") or {}).get("instance_id")
    if inst:
        title += f" ({plain(inst, 60)})"
    return document(title, lang, STYLE, body)
