"""Readable text for a terminal from a classification result."""

from __future__ import annotations

from typing import Any

_LABELS = {
    "en": {
        "kind": "kind", "title": "title", "rule": "known issue", "cause": "cause", "remedy": "remedy",
        "suspect": "suspect module", "fix": "fix status", "kernel": "kernel", "task": "task",
        "confidence": "confidence", "evidence": "evidence", "knob": "config knob", "none": "no crash found in this log",
        "reports": "reports in log", "check": "check",
    },
    "zh": {
        "kind": "类型", "title": "标题", "rule": "已知问题", "cause": "原因", "remedy": "处理建议",
        "suspect": "可疑模块", "fix": "修复状态", "kernel": "内核", "task": "进程",
        "confidence": "可信度", "evidence": "关键日志", "knob": "相关配置", "none": "日志中未发现宕机",
        "reports": "日志中的报告", "check": "检查命令",
    },
}


def _clean(s: object) -> str:
    """Log text is untrusted: drop control characters so it cannot drive the terminal."""
    return "".join(ch if ch.isprintable() or ch == " " else "?" for ch in str(s))


def render_terminal(result: dict[str, Any], lang: str = "en") -> str:
    L = _LABELS.get(lang, _LABELS["en"])
    if result["kind"] == "none":
        return L["none"]
    out = [f"{L['kind']}: {result['kind']}", f"{L['title']}: {_clean(result['title'])}"]
    crash = result.get("crash") or {}
    k = result.get("kernel") or {}
    if k.get("release"):
        out.append(f"{L['kernel']}: {_clean(k['release'])}" + (f" ({k['stream']})" if k.get("stream") else ""))
    if crash.get("comm"):
        out.append(f"{L['task']}: {_clean(crash['comm'])} pid {crash.get('pid')} cpu {crash.get('cpu')}")
    out.append(f"{L['confidence']}: {result['confidence']}" + (
        f" ({'; '.join(result['confidence_reasons'])})" if result.get("confidence_reasons") else ""))
    mods = result.get("modules") or {}
    if mods.get("suspect"):
        out.append(f"{L['suspect']}: {_clean(mods['suspect'])} - {_clean(mods.get('suspect_reason') or '')}")
    if result.get("config_knob"):
        out.append(f"{L['knob']}: {result['config_knob']}")
    rule = result.get("rule")
    if rule:
        out.append(f"{L['rule']}: {rule['id']} [{rule['category']}] {rule['title']}")
        out.append(f"{L['cause']}: {rule['cause']}")
        out.append(f"{L['remedy']}:")
        out.extend(f"  {i}. {s}" for i, s in enumerate(rule["remedy_steps"], 1))
        if rule.get("check_commands"):
            out.append(f"{L['check']}: " + " ; ".join(rule["check_commands"]))
    if result.get("fix_status"):
        out.append(f"{L['fix']}: {result['fix_status']} - {_clean(result.get('fix_detail') or '')}")
    if result.get("evidence"):
        out.append(f"{L['evidence']}:")
        out.extend(f"  | {_clean(e)[:200]}" for e in result["evidence"])
    if len(result.get("reports", [])) > 1:
        out.append(f"{L['reports']}: {len(result['reports'])}")
        out.extend(f"  - {r['kind']}: {_clean(r['title'])}" for r in result["reports"][:10])
    return "\n".join(out)
