"""What a notification says, as data, and how it is written out for each medium.

A ``Message`` is a list of ``Block``s. A block's ``template`` is ours (a label or a
sentence from ``TEXT``); its ``params`` and ``lines`` are untrusted (they come from the
guest's log: titles, process and module names, log lines) and are escaped by the
renderer for its medium, through ``crashdiag.reports.escape``:

- DingTalk Markdown: ``md_inert``, the least escaping that keeps text inert there (below);
- plain text: ``plain``;
- HTML: ``h``.

The same blocks give the DingTalk card, the email's text part and its HTML part, so the
three say the same thing. Blocks marked ``email_only`` (evidence, call trace) are left
out of the card.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..reports.escape import h, plain

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "subject": "[crash] {instance}: {title}",
        "card_title": "[crash] {instance}: {title}",
        "early_title": "[crash] {instance}: crashed, waiting for the dump",
        "early_status": "Status",
        "early_waiting": "Crashed. kdump is saving a crash dump{memory}; the diagnosis follows when the instance is back.",
        "early_memory": " of {gib} GB of memory",
        "early_console": "Console",
        "early_deadline": "Waiting until",
        "instance": "Instance",
        "region": "Region",
        "time": "Time",
        "kind": "Kind",
        "cause": "Cause",
        "first_step": "First step",
        "fix": "Fix status",
        "suspect": "Suspect module",
        "confidence": "Confidence",
        "log": "Log obtained from",
        "report": "Full report",
        "link_note": "link valid for {days} days",
        "link_note_hours": "link valid for {hours} hours",
        "host": "The host failed (SystemFailure.Reboot): the guest may be innocent.",
        "no_rule": "No known issue matched this crash: see the full report.",
        "no_crash": "No crash report was found in the collected log.",
        "step_none": "Read the full report and the evidence lines.",
        "fix.affected": "affected: the running kernel predates the fix",
        "fix.fixed": "already fixed in the running kernel: look for another cause",
        "fix.unknown": "unknown",
        "fixw.affected": "affected",
        "fixw.fixed": "already fixed in the running kernel",
        "fixw.unknown": "unknown",
        "fix.none": "no fixed kernel version is known",
        "fixk.affected": "affected: the running kernel {release} predates the fix",
        "fixk.fixed": "the running kernel {release} already carries the fix: look for another cause",
        "conf.high": "high",
        "conf.medium": "medium",
        "conf.low": "low",
        "failed": "The crash log could not be collected: {reason}",
        "part": "{title} ({part}/{parts})",
        "none": "none",
        "complete": "complete",
        "partial": "partial",
        "uploaded": "uploaded log {source}",
        "evidence": "Evidence",
        "trace": "Call trace",
        "attached": "The crash log excerpt is attached.",
        "digest_subject": "[crash] {count} incidents, {groups} kind(s) of crash",
        "digest_title": "[crash] {count} incidents, {groups} kind(s) of crash",
        "digest_intro": "Many instances crashed within minutes: one message grouped by crash fingerprint instead of one per instance.",
        "group": "{count} × {title}",
        "fingerprint": "Fingerprint",
        "instances": "Instances",
        "repeats_heading": "Repeated crashes (same instance, same fingerprint, within 24 h)",
        "repeat_item": "{instance}: {title}: {count} more time(s), last at {last}",
        "followup_subject": "[crash] repeated crashes: {count} more on {instances} instance(s)",
        "followup_title": "[crash] repeated crashes: {count} more on {instances} instance(s)",
        "followup_intro": "These instances crashed again the way they already did in the last 24 hours: a count here instead of new pages.",
    },
    "zh": {
        "subject": "[宕机] {instance}：{title}",
        "card_title": "[宕机] {instance}：{title}",
        "early_title": "[宕机] {instance}：已宕机，正在等待转储完成",
        "early_status": "状态",
        "early_waiting": "实例已宕机，kdump 正在保存内存转储{memory}；实例恢复后将发送诊断结果。",
        "early_memory": "（内存 {gib} GB）",
        "early_console": "串口输出",
        "early_deadline": "最长等待至",
        "instance": "实例",
        "region": "地域",
        "time": "时间",
        "kind": "类型",
        "cause": "原因",
        "first_step": "第一步",
        "fix": "修复状态",
        "suspect": "可疑模块",
        "confidence": "可信度",
        "log": "日志来源",
        "report": "完整报告",
        "link_note": "链接 {days} 天内有效",
        "link_note_hours": "链接 {hours} 小时内有效",
        "host": "物理机故障（SystemFailure.Reboot）：实例内部可能没有问题。",
        "no_rule": "没有匹配到已知问题：请查看完整报告。",
        "no_crash": "采集到的日志中没有发现宕机报告。",
        "step_none": "请阅读完整报告和关键日志。",
        "fix.affected": "受影响：当前运行的内核早于修复版本",
        "fix.fixed": "当前运行的内核已包含修复：请排查其他原因",
        "fix.unknown": "未知",
        "fixw.affected": "受影响",
        "fixw.fixed": "当前运行的内核已包含修复",
        "fixw.unknown": "未知",
        "fix.none": "尚无已知的修复内核版本",
        "fixk.affected": "受影响：当前运行的内核 {release} 早于修复版本",
        "fixk.fixed": "当前运行的内核 {release} 已包含修复：请排查其他原因",
        "conf.high": "高",
        "conf.medium": "中",
        "conf.low": "低",
        "failed": "未能采集到宕机日志：{reason}",
        "part": "{title}（第 {part}/{parts} 条）",
        "none": "无",
        "complete": "完整",
        "partial": "不完整",
        "uploaded": "手动上传的日志 {source}",
        "evidence": "关键日志",
        "trace": "调用栈",
        "attached": "附件为宕机日志片段。",
        "digest_subject": "[宕机] {count} 个事件，{groups} 类宕机",
        "digest_title": "[宕机] {count} 个事件，{groups} 类宕机",
        "digest_intro": "多台实例在几分钟内相继宕机：按宕机指纹汇总为一条消息，而不是每台实例各发一条。",
        "group": "{count} × {title}",
        "fingerprint": "指纹",
        "instances": "实例",
        "repeats_heading": "重复宕机（同一实例、同一指纹、24 小时内）",
        "repeat_item": "{instance}：{title}：又发生 {count} 次，最近一次 {last}",
        "followup_subject": "[宕机] 重复宕机：{instances} 台实例又发生 {count} 次",
        "followup_title": "[宕机] 重复宕机：{instances} 台实例又发生 {count} 次",
        "followup_intro": "以下实例在 24 小时内以相同的方式再次宕机：这里只计数，不再逐条告警。",
    },
}


def text_for(lang: str) -> dict[str, str]:
    return TEXT.get(lang, TEXT["en"])


@dataclass(frozen=True)
class Block:
    """One line of a message.

    kind: title | field | text | note | heading | item | list | link | code.
    ``template`` is trusted text with ``{name}`` slots filled from ``params`` (untrusted);
    an item may end with a link (``url``, labelled ``note``);
    a field's label is ``template`` and its value ``params["value"]``; a list's values
    and a code block's lines are in ``lines`` (untrusted); a link's ``url`` is ours.
    """

    kind: str
    template: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    url: str = ""
    note: str = ""  # trusted, after a link or a list's overflow
    email_only: bool = False


@dataclass
class Message:
    subject: str  # a template, filled from subject_params
    subject_params: dict[str, Any]
    blocks: list[Block]
    ref: str  # stable id of what is told (notice or digest id): the email's Message-ID
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    mention: bool = True  # @ the configured people (the later parts of a split digest do not)


# -- escaping per medium ---------------------------------------------------------------------


# DingTalk's markdown subset (headings, quotes, bold/italic, links, images, lists:
# https://open.dingtalk.com/document/orgapp/robot-message-types-and-data-format) says
# nothing of backslash escapes, and a client that does not honour them shows the backslash.
# So only what can start markup inside a line is escaped: '\\', '_', '*', '`', '[' and ']'
# (a link or an image needs '['). The bridges that escape at all do these (Telegram-style
# legacy Markdown bridges exactly '_', '*', '`', '['; satorijs/satori's DingTalk adapter
# also the line-start markers and '(', which cannot act here). '<' and '>' become
# full-width (no tag, no autolink, whatever the renderer does with HTML), and so does the
# '&' of an HTML entity (no '&lt;img' turned back into a tag). Line-start markers ('#',
# '>', '-', '1.') cannot act: untrusted text is one line and never starts one.
_MD_INERT = re.compile(r"[\\_*`\[\]]")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def md_inert(value: object, limit: int = 500) -> str:
    """Untrusted text inline in a DingTalk markdown message: readable, and inert."""
    s = _MD_INERT.sub(lambda m: "\\" + m.group(0), plain(value, limit))
    return _ENTITY.sub("\uff06", s).replace("<", "\uff1c").replace(">", "\uff1e")


def _fill(template: str, params: dict[str, Any], esc) -> str:
    return template.format_map({k: esc(v) for k, v in params.items()})


def _safe_url(url: str) -> str:
    """Our own links (presigned OSS URLs, file:// for the local store), made safe to embed."""
    if not url.startswith(("https://", "http://", "file://")):
        return ""
    return quote(url, safe="/:?&=%#+,;@!$*'~.-_")


def message_to_json(msg: Message) -> dict[str, Any]:
    """A message as JSON, to be kept in the bucket and sent later (attachments left out)."""
    return {"subject": msg.subject, "subject_params": msg.subject_params, "ref": msg.ref, "mention": msg.mention,
            "blocks": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(b).items()} for b in msg.blocks]}


def message_from_json(doc: dict[str, Any]) -> Message:
    blocks = [Block(**{**b, "lines": tuple(b.get("lines") or ())}) for b in doc.get("blocks") or []]
    return Message(str(doc.get("subject") or ""), dict(doc.get("subject_params") or {}), blocks, str(doc.get("ref") or ""),
                   mention=bool(doc.get("mention", True)))


def subject_text(msg: Message) -> str:
    return plain(_fill(msg.subject, msg.subject_params, lambda v: plain(v, 150)), 250)


def _json_len(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (UTF-8, with its escapes)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def markdown_parts(msg: Message) -> list[str]:
    """The DingTalk markdown of each block (email-only blocks left out)."""
    out: list[str] = []
    for b in msg.blocks:
        if b.email_only:
            continue
        if b.kind == "title":
            out.append("### " + _fill(b.template, b.params, md_inert))
        elif b.kind == "field":
            out.append(f"**{b.template}**: {md_inert(b.params.get('value'))}")
        elif b.kind == "text":
            out.append(_fill(b.template, b.params, md_inert))
        elif b.kind == "note":
            out.append("> " + _fill(b.template, b.params, md_inert))
        elif b.kind == "heading":
            out.append("#### " + _fill(b.template, b.params, md_inert))
        elif b.kind == "item":
            url = _safe_url(b.url)
            out.append("- " + _fill(b.template, b.params, md_inert) + (f" · [{b.note}]({url})" if url else ""))
        elif b.kind == "list":
            out.append(f"**{b.template}**: " + ", ".join(md_inert(v, 100) for v in b.lines) + (f" {b.note}" if b.note else ""))
        elif b.kind == "link":
            url = _safe_url(b.url)
            if url:
                out.append(f"[{b.template}]({url})" + (f" ({b.note})" if b.note else ""))
    return out


def to_markdown(msg: Message, *, keyword: str = "", at_mobiles: tuple[str, ...] = (),
                limit_bytes: int | None = None) -> tuple[str, str]:
    """(title, text) of a DingTalk markdown message. The keyword is in the text as typed
    (the robot looks for it there) and in the title. With ``limit_bytes`` (what title and
    text may take inside the JSON body), the blocks that do not fit are left out and an
    ellipsis says so; the keyword and the mentions never are."""
    out = markdown_parts(msg)
    title = subject_text(msg)
    keyword = plain(keyword, 200).strip()
    if keyword and keyword not in title:
        title = f"{title} {keyword}"
    tail = ([keyword] if keyword else []) + ([" ".join(f"@{m}" for m in at_mobiles)] if at_mobiles else [])
    if limit_bytes is not None:
        room = limit_bytes - _json_len(title) - sum(_json_len(t) + 4 for t in tail) - _json_len("…") - 4
        kept, used = [], 0
        for part in out:
            used += _json_len(part) + 4  # and the blank line ("\n\n") that joins it
            if used > room:
                kept.append("…")
                break
            kept.append(part)
        out = kept
    return title, "\n\n".join(out + tail)


def to_text(msg: Message) -> str:
    out: list[str] = []
    for b in msg.blocks:
        if b.kind == "title":
            t = _fill(b.template, b.params, plain)
            out += [t, "=" * min(len(t), 72), ""]
        elif b.kind == "field":
            out.append(f"{b.template}: {plain(b.params.get('value'))}")
        elif b.kind in ("text", "note"):
            out += ["", _fill(b.template, b.params, plain)]
        elif b.kind == "heading":
            out += ["", _fill(b.template, b.params, plain)]
        elif b.kind == "item":
            url = _safe_url(b.url)
            out.append("  - " + _fill(b.template, b.params, plain) + (f" ({b.note}: {url})" if url else ""))
        elif b.kind == "list":
            out.append(f"{b.template}: " + ", ".join(plain(v, 100) for v in b.lines) + (f" {b.note}" if b.note else ""))
        elif b.kind == "link":
            url = _safe_url(b.url)
            if url:
                out += ["", f"{b.template}: {url}" + (f" ({b.note})" if b.note else "")]
        elif b.kind == "code":
            out += ["", f"{b.template}:"] + [f"    {plain(line, 300)}" for line in b.lines]
    return "\n".join(out).strip() + "\n"


def card_text(msg: Message) -> str:
    """The DingTalk card (no email-only blocks) as plain text, for a terminal."""
    return to_text(Message(msg.subject, msg.subject_params, [b for b in msg.blocks if not b.email_only], msg.ref))


def to_html(msg: Message, lang: str) -> str:
    body: list[str] = []
    items: list[str] = []

    def close_items() -> None:
        if items:
            body.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for b in msg.blocks:
        if b.kind != "item":
            close_items()
        if b.kind == "title":
            body.append(f"<h2>{_fill(b.template, b.params, h)}</h2>")
        elif b.kind == "field":
            body.append(f"<p><b>{h(b.template)}</b>: {h(b.params.get('value'))}</p>")
        elif b.kind == "text":
            body.append(f"<p>{_fill(b.template, b.params, h)}</p>")
        elif b.kind == "note":
            body.append(f"<blockquote>{_fill(b.template, b.params, h)}</blockquote>")
        elif b.kind == "heading":
            body.append(f"<h3>{_fill(b.template, b.params, h)}</h3>")
        elif b.kind == "item":
            url = _safe_url(b.url)
            items.append(_fill(b.template, b.params, h) + (f' · <a href="{h(url)}">{h(b.note)}</a>' if url else ""))
        elif b.kind == "list":
            body.append(f"<p><b>{h(b.template)}</b>: " + ", ".join(h(v, 100) for v in b.lines) + (f" {h(b.note)}" if b.note else "") + "</p>")
        elif b.kind == "link":
            url = _safe_url(b.url)
            if url:
                body.append(f'<p><a href="{h(url)}">{h(b.template)}</a>' + (f" ({h(b.note)})" if b.note else "") + "</p>")
        elif b.kind == "code":
            body.append(f"<h3>{h(b.template)}</h3><pre>" + "\n".join(h(line, 300) for line in b.lines) + "</pre>")
    close_items()
    return (f'<!DOCTYPE html>\n<html lang="{h(lang)}"><head><meta charset="utf-8"><title>{h(subject_text(msg))}</title></head>\n'
            '<body style="font-family: sans-serif">\n' + "\n".join(body) + "\n</body></html>\n")
