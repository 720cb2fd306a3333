"""The incident report: report.json (stable schema) and report.md for people."""

from __future__ import annotations

from typing import Any

from .advice import readiness_advice
from .escape import md, md_code_block, plain

REPORT_SCHEMA_VERSION = 1

_COLLECTION = {
    "en": {
        "kdump": "kdump vmcore-dmesg", "pstore": "pstore record", "journal": "journal of the previous boot",
        "messages": "/var/log/messages", "kern.log": "/var/log/kern.log", "console": "serial console (GetInstanceConsoleOutput)",
        "inbox": "uploaded by hand to inbox/",
    },
    "zh": {
        "kdump": "kdump vmcore-dmesg", "pstore": "pstore 记录", "journal": "上次启动的 journal",
        "messages": "/var/log/messages", "kern.log": "/var/log/kern.log", "console": "串口输出（GetInstanceConsoleOutput）",
        "inbox": "手动上传到 inbox/",
    },
}
_L = {
    "en": {"title": "Crash report", "instance": "Instance", "region": "Region", "event": "Event", "kind": "Kind",
           "confidence": "Confidence", "cause": "Cause", "remedy": "What to do", "fix": "Fix status",
           "suspect": "Suspect module", "collected": "Log obtained from", "complete": "complete", "partial": "partial",
           "advice": "Before the next crash", "evidence": "Evidence", "trace": "Call trace", "rule": "Known issue",
           "host": "The host failed (SystemFailure.Reboot): the guest may be innocent.", "none": "No crash report was found in the collected log.",
           "knob": "Setting that caused the reboot", "commands": "Check", "failed": "Not collected",
           "audit": "Readiness at the last audit", "audit_ready": "ready: a crash leaves a vmcore and its dmesg",
           "audit_not_ready": "not ready: a crash may leave no kdump evidence", "exposed": "exposed to", "upgrade": "upgrade to"},
    "zh": {"title": "宕机诊断报告", "instance": "实例", "region": "地域", "event": "事件", "kind": "类型",
           "confidence": "可信度", "cause": "原因", "remedy": "处理建议", "fix": "修复状态",
           "suspect": "可疑模块", "collected": "日志来源", "complete": "完整", "partial": "不完整",
           "advice": "为下次宕机做好准备", "evidence": "关键日志", "trace": "调用栈", "rule": "已知问题",
           "host": "物理机故障（SystemFailure.Reboot）：实例内部可能没有问题。", "none": "采集到的日志中没有发现宕机报告。",
           "knob": "导致重启的配置", "commands": "检查命令", "failed": "未能采集",
           "audit": "最近一次巡检时的就绪状态", "audit_ready": "就绪：宕机时会留下 vmcore 和 dmesg",
           "audit_not_ready": "未就绪：宕机时可能没有 kdump 证据", "exposed": "受影响的已知问题", "upgrade": "升级到"},
}


def build_report(data: bytes, collect: dict[str, Any], lang: str, source: str,
                 budget_s: float | None = None, path: str | None = None) -> dict[str, Any]:
    """The report of one log: ``data``, or with ``path`` the file there, read as a stream."""
    from ..classifier.classify import classify_bytes, classify_path
    from ..classifier.logtext import LogInputError

    try:
        if path is not None:
            diagnosis = classify_path(path, lang=lang, budget_s=budget_s)
            diagnosis["source"] = source
        else:
            diagnosis = classify_bytes(data, lang=lang, source=source, budget_s=budget_s)
        input_error = None
    except LogInputError as exc:
        diagnosis = {"kind": "none", "title": "unreadable log", "rule": None, "fix_status": None, "reports": []}
        input_error = str(exc)
    context = collect.get("context") or {}
    incident = collect.get("incident") or {}
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "source": source,
        "incident": {
            "id": incident.get("incident_id"),
            "instance_id": incident.get("instance_id"),
            "instance_name": incident.get("instance_name"),
            "region": incident.get("region"),
            "event_code": incident.get("code"),
            "event_status": incident.get("status"),
            "host_failure": incident.get("code") == "SystemFailure.Reboot",
            "event_time": incident.get("execute_start_time") or incident.get("publish_time"),
        },
        "collection": {
            "method": collect.get("method"),
            "complete": bool(collect.get("complete")),
            "log": collect.get("log") or {},
            "notes": collect.get("notes") or [],
        },
        "guest_context": context,
        "advice": readiness_advice(context, lang),
        "input_error": input_error,
        "diagnosis": diagnosis,
    }


def build_failure_report(collect: dict[str, Any], lang: str) -> dict[str, Any]:
    """The report of an incident whose crash log could not be collected: people are told
    about it like any other crash, with the reason and what they can do."""
    failure = collect.get("failure") or {}
    reason = failure.get("reason") or "no crash log could be collected"
    report = build_report(b"", collect, lang, source=None)
    report["input_error"] = None
    report["failure"] = {"reason": reason, "advice": failure.get("advice") or ""}
    report["diagnosis"] = {
        "kind": "none", "title": _FAILED_TITLE[lang if lang in _FAILED_TITLE else "en"], "fingerprint": None,
        "confidence": None, "confidence_reasons": [], "rule": None, "fix_status": None, "fix_detail": None,
        "config_knob": None, "kernel": {}, "crash": None, "modules": {}, "taint": None, "call_trace": [],
        "evidence": [], "reports": [],
    }
    return report


_FAILED_TITLE = {"en": "crash log could not be collected", "zh": "未能采集到宕机日志"}


def render_markdown(report: dict[str, Any], lang: str) -> str:
    L = _L.get(lang, _L["en"])
    d = report["diagnosis"]
    inc = report["incident"]
    out = [f"# {L['title']}: {md(d['title'], 200)}", ""]
    if inc.get("instance_id"):
        out.append(f"- **{L['instance']}**: {md(inc['instance_id'])}" + (f" ({md(inc['instance_name'])})" if inc.get("instance_name") else ""))
        out.append(f"- **{L['region']}**: {md(inc.get('region'))}")
        out.append(f"- **{L['event']}**: {md(inc.get('event_code'))} {md(inc.get('event_status'))} {md(inc.get('event_time') or '')}")
    out.append(f"- **{L['kind']}**: `{plain(d['kind'])}`")
    if d.get("confidence"):
        out.append(f"- **{L['confidence']}**: {md(d['confidence'])}" + (f" ({md('; '.join(d.get('confidence_reasons') or []))})" if d.get("confidence_reasons") else ""))
    col = report["collection"]
    if col.get("method"):
        label = _COLLECTION.get(lang, _COLLECTION["en"]).get(col["method"], col["method"])
        out.append(f"- **{L['collected']}**: {md(label)} ({L['complete'] if col.get('complete') else L['partial']})")
        out += [f"  - {md(note, 500)}" for note in (col.get("notes") or [])[:10]]  # e.g. what a large upload lost
    if inc.get("host_failure"):
        out += ["", f"> {L['host']}"]
    if report.get("failure"):
        f = report["failure"]
        out += ["", f"**{L['failed']}**: {md(f['reason'], 1000)}", "", f"**{L['remedy']}**: {md(f['advice'], 1000)}"]
    if d["kind"] == "none" and not report.get("failure"):
        out += ["", L["none"]]
    rule = d.get("rule")
    if rule:
        out += ["", f"## {L['rule']}: {md(rule['title'])}", "", f"`{plain(rule['id'])}` · {md(rule['category'])}", "",
                f"**{L['cause']}**: {md(rule['cause'], 2000)}", "", f"**{L['remedy']}**:", ""]
        out += [f"{i}. {md(s, 1000)}" for i, s in enumerate(rule["remedy_steps"], 1)]
        if rule.get("check_commands"):
            out += ["", f"**{L['commands']}**:", "", md_code_block(rule["check_commands"])]
    if d.get("config_knob"):
        out += ["", f"**{L['knob']}**: `{plain(d['config_knob'])}`"]
    if d.get("fix_status"):
        out += ["", f"**{L['fix']}**: {md(d['fix_status'])} — {md(d.get('fix_detail') or '')}"]
    mods = d.get("modules") or {}
    if mods.get("suspect"):
        out += ["", f"**{L['suspect']}**: {md(mods['suspect'])} — {md(mods.get('suspect_reason') or '')}"]
    if report.get("advice"):
        out += ["", f"## {L['advice']}", ""] + [f"- {md(a['text'], 1000)}" for a in report["advice"]]
    ra = report.get("readiness")
    if ra:
        out += ["", f"## {L['audit']} ({md(ra.get('audited_at') or '?')})", "",
                f"- {md(L['audit_ready'] if ra.get('ready') else L['audit_not_ready'])}"]
        out += [f"- **{md(p['status'])}** `{plain(p['id'])}`: {md(p['detail'], 300)}" + (f" — `{plain(p['fix'], 300)}`" if p.get("fix") else "")
                for p in ra.get("problems") or []]
        out += [f"- {md(L['exposed'])} `{plain(e['rule'])}`: {md(e.get('title') or '', 200)}, {md(L['upgrade'])} {md(e.get('upgrade_to') or '?')}"
                for e in ra.get("exposed") or []]
    if d.get("evidence"):
        out += ["", f"## {L['evidence']}", "", md_code_block(d["evidence"])]
    if d.get("call_trace"):
        frames = [("  " if f["reliable"] else "? ") + f"{f['function']}" + (f" [{f['module']}]" if f.get("module") else "") for f in d["call_trace"][:30]]
        out += ["", f"## {L['trace']}", "", md_code_block(frames)]
    return "\n".join(out) + "\n"
