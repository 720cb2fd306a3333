"""Messages from reports: one incident's card, a storm digest, a follow-up of repeats."""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from typing import Any, BinaryIO

from ..reports.escape import plain
from .messages import Block, Message, text_for

CAUSE_LIMIT = 320
EXCERPT_BYTES = 64 * 1024

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def short_cause(text: str, limit: int = CAUSE_LIMIT) -> str:
    """The cause in one or two sentences."""
    parts = [p for p in _SENTENCE_END.split(plain(text, 4000)) if p.strip()]
    out = ""
    for p in parts[:2]:
        joined = (out + (" " if out and not out.endswith(("。", "！", "？")) else "") + p.strip())
        if len(joined) > limit and out:
            break
        out = joined
    return plain(out or text, limit)


def _collection_label(method: str | None, lang: str) -> str:
    from ..reports.report import _COLLECTION  # the report's own wording for how the log came

    if not method:
        return text_for(lang)["none"]
    return _COLLECTION.get(lang, _COLLECTION["en"]).get(method, method)


def who(notice: dict[str, Any]) -> str:
    """How an incident is named in a message: its instance, or the uploaded log's name."""
    if notice.get("instance_id"):
        return notice["instance_id"] + (f" ({notice['instance_name']})" if notice.get("instance_name") else "")
    return notice.get("source_name") or "?"


def early_card(notice: dict[str, Any], waiting: dict[str, Any], lang: str) -> Message:
    """The notice sent before the diagnosis: the instance crashed and kdump is saving its
    dump, which can take long on a large instance; the report follows."""
    import datetime as dt

    T = text_for(lang)
    name = who(notice)
    gib = waiting.get("memory_gib")
    memory = T["early_memory"].format(gib=gib) if gib else ""
    blocks = [Block("title", T["early_title"], {"instance": name})]
    blocks.append(Block("field", T["instance"], {"value": name}))
    blocks.append(Block("field", T["region"], {"value": notice.get("region") or ""}))
    blocks.append(Block("field", T["time"], {"value": notice.get("event_time") or ""}))
    blocks.append(Block("field", T["early_status"], {"value": T["early_waiting"].format(memory=memory)}))
    capture = waiting.get("capture") or {}
    if waiting.get("reason") and waiting.get("lang", "en") == lang:  # collect's words, when in this language
        blocks.append(Block("field", T["early_console"], {"value": plain(str(waiting["reason"]), 200)}))
    elif capture.get("percent") is not None:
        blocks.append(Block("field", T["early_console"], {"value": f"makedumpfile {float(capture['percent']):.0f}%"}))
    if waiting.get("deadline"):
        at = dt.datetime.fromtimestamp(float(waiting["deadline"]), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        blocks.append(Block("field", T["early_deadline"], {"value": at}))
    return Message(T["early_title"], {"instance": name}, blocks, f"{notice['id']}")


def _fix_text(d: dict[str, Any], T: dict[str, str], lang: str) -> str:
    """The fix status in the message's language. The classifier's ``fix_detail`` is English
    prose: English messages quote it, others say the same from the status and the running
    kernel (the fixed version is in the first step and the full report)."""
    status = d.get("fix_status")
    if not status:
        return T["fix.none"]
    if lang == "en" and d.get("fix_detail"):
        return f"{T.get(f'fixw.{status}', status)}: {d['fix_detail']}"
    release = (d.get("kernel") or {}).get("release")
    if release and f"fixk.{status}" in T:
        return T[f"fixk.{status}"].format(release=plain(release, 100))
    return T.get(f"fix.{status}", str(status))


def _link_note(ttl: int, T: dict[str, str]) -> str:
    if ttl >= 2 * 86400:
        return T["link_note"].format(days=ttl // 86400)
    return T["link_note_hours"].format(hours=max(1, ttl // 3600))


def card(notice: dict[str, Any], report: dict[str, Any], lang: str, *, link: str, link_ttl: int,
         excerpt: tuple[str, bytes] | None = None) -> Message:
    """One incident: the card DingTalk shows, and the email (which adds evidence and trace)."""
    T = text_for(lang)
    d = report.get("diagnosis") or {}
    inc = report.get("incident") or {}
    col = report.get("collection") or {}
    name = who(notice)
    rule = d.get("rule") or None
    blocks = [Block("title", T["card_title"], {"instance": name, "title": d.get("title") or d.get("kind")})]
    if inc.get("instance_id"):
        blocks.append(Block("field", T["instance"], {"value": name}))
        blocks.append(Block("field", T["region"], {"value": inc.get("region") or ""}))
        blocks.append(Block("field", T["time"], {"value": inc.get("event_time") or notice.get("event_time") or ""}))
    blocks.append(Block("field", T["kind"], {"value": d.get("kind")}))
    failure = report.get("failure") or None
    if failure:  # the log could not be collected: say why and what to do
        cause = T["failed"].format(reason=failure["reason"]) if failure.get("reason") else T["no_crash"]
        step = failure.get("advice") or T["step_none"]
    elif d.get("kind") == "none":
        cause, step = T["no_crash"], T["step_none"]
    elif rule:
        cause = short_cause(rule.get("cause") or "")
        steps = rule.get("remedy_steps") or [s for s in str(rule.get("remedy") or "").splitlines() if s.strip()]
        step = steps[0] if steps else T["step_none"]
    else:
        cause, step = T["no_rule"], T["step_none"]
    blocks.append(Block("field", T["cause"], {"value": cause}))
    blocks.append(Block("field", T["first_step"], {"value": step}))
    blocks.append(Block("field", T["fix"], {"value": _fix_text(d, T, lang)}))
    mods = d.get("modules") or {}
    suspect = mods.get("suspect")
    # the classifier says why a module is suspect in English: other languages name the module only
    why = mods.get("suspect_reason") if lang == "en" else None
    blocks.append(Block("field", T["suspect"], {"value": f"{suspect} ({why})" if suspect and why else suspect or T["none"]}))
    confidence = d.get("confidence")
    blocks.append(Block("field", T["confidence"], {"value": T.get(f"conf.{confidence}", confidence) if confidence else T["none"]}))
    method = col.get("method")
    how = T["uploaded"].format(source=plain(notice.get("source_name") or "", 200)) if method == "inbox" else _collection_label(method, lang)
    blocks.append(Block("field", T["log"], {"value": f"{how} ({T['complete'] if col.get('complete') else T['partial']})"}))
    if inc.get("host_failure"):
        blocks.append(Block("note", T["host"]))
    if link:
        blocks.append(Block("link", T["report"], url=link, note=_link_note(link_ttl, T)))
    if d.get("evidence"):
        blocks.append(Block("code", T["evidence"], lines=tuple(str(x) for x in d["evidence"][:40]), email_only=True))
    if d.get("call_trace"):
        frames = tuple(("  " if f.get("reliable") else "? ") + str(f.get("function")) + (f" [{f['module']}]" if f.get("module") else "")
                       for f in d["call_trace"][:40])
        blocks.append(Block("code", T["trace"], lines=frames, email_only=True))
    attachments = []
    if excerpt:
        blocks.append(Block("text", T["attached"], email_only=True))
        attachments.append(excerpt)
    return Message(T["subject"], {"instance": name, "title": d.get("title") or d.get("kind")}, blocks, notice["id"], attachments)


def _numbered(template: str, T: dict[str, str], part: tuple[int, int] | None) -> str:
    """A title template with "(part/parts)" when a digest goes out in several messages."""
    return T["part"].replace("{title}", template) if part and part[1] > 1 else template


def digest(fresh: list[tuple[dict[str, Any], dict[str, Any] | None]], repeats: list[dict[str, Any]], lang: str, ref: str,
           part: tuple[int, int] | None = None) -> Message:
    """Many incidents in one message: fresh ones grouped by fingerprint (with the cause and
    first step of the group's first report, and every instance), then repeats as counts.
    ``part``: (n, of) when this is one of several messages of one digest."""
    T = text_for(lang)
    groups: OrderedDict[str, list[tuple[dict, dict | None]]] = OrderedDict()
    for notice, rep in fresh:
        groups.setdefault(notice.get("fingerprint") or f"kind:{notice.get('kind')}", []).append((notice, rep))
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    if not fresh:
        return followup(repeats, lang, ref, part)
    count = len(fresh) + len(repeats)
    params = {"count": count, "groups": len(groups), "part": (part or (1, 1))[0], "parts": (part or (1, 1))[1]}
    blocks = [Block("title", _numbered(T["digest_title"], T, part), params), Block("text", T["digest_intro"])]
    for fp, members in ordered:
        first_notice, first_report = members[0]
        d = (first_report or {}).get("diagnosis") or {}
        rule = d.get("rule") or None
        blocks.append(Block("heading", T["group"], {"count": len(members), "title": first_notice.get("title") or first_notice.get("kind")}))
        blocks.append(Block("field", T["kind"], {"value": first_notice.get("kind")}))
        if not fp.startswith("kind:"):
            blocks.append(Block("field", T["fingerprint"], {"value": fp}))
        if rule:
            blocks.append(Block("field", T["cause"], {"value": short_cause(rule.get("cause") or "")}))
            steps = rule.get("remedy_steps") or []
            if steps:
                blocks.append(Block("field", T["first_step"], {"value": steps[0]}))
        elif d.get("kind") == "none":
            blocks.append(Block("field", T["cause"], {"value": T["no_crash"]}))
        # every instance is named: a digest too big for one robot message is split, not cut
        blocks.append(Block("list", T["instances"], lines=tuple(who(n) for n, _ in members)))
    if repeats:
        blocks.append(Block("heading", T["repeats_heading"]))
        blocks += _repeat_items(repeats, T)
    return Message(_numbered(T["digest_subject"], T, part), params, blocks, ref)


def followup(repeats: list[dict[str, Any]], lang: str, ref: str, part: tuple[int, int] | None = None) -> Message:
    T = text_for(lang)
    instances = {n.get("instance_id") for n in repeats}
    params = {"count": len(repeats), "instances": len(instances), "part": (part or (1, 1))[0], "parts": (part or (1, 1))[1]}
    blocks = [Block("title", _numbered(T["followup_title"], T, part), params), Block("text", T["followup_intro"])]
    blocks += _repeat_items(repeats, T)
    return Message(_numbered(T["followup_subject"], T, part), params, blocks, ref)


def _repeat_items(repeats: list[dict[str, Any]], T: dict[str, str]) -> list[Block]:
    by: OrderedDict[tuple[str, str], list[dict]] = OrderedDict()
    for n in sorted(repeats, key=lambda n: n.get("created_at", 0)):
        by.setdefault((who(n), n.get("fingerprint") or ""), []).append(n)
    return [Block("item", T["repeat_item"], {"instance": name, "title": ns[-1].get("title") or ns[-1].get("kind"), "count": len(ns),
                                              "last": ns[-1].get("event_time") or ns[-1].get("created_iso") or ""})
            for (name, _), ns in by.items()]


def daily(digest: dict[str, Any], lang: str, ref: str, *, links: dict[str, str] | None = None,
          groups: list[dict[str, Any]] | None = None, part: tuple[int, int] | None = None) -> Message:
    """The daily digest (``reports.fleet.daily_digest``'s data) as a message: the same blocks
    and escaping as every other message, so it can be split and sent through the notifier.
    ``groups``: the part of the day's groups this message carries; ``links``: fingerprint
    group's latest report key -> the URL people open."""
    from ..reports.fleet import DIGEST_LABELS, _words  # the fleet page's own wording for the digest

    D = DIGEST_LABELS.get(lang, DIGEST_LABELS["en"])
    T = text_for(lang)
    groups = digest["groups"] if groups is None else groups
    day = str(digest["day"])
    params = {"day": day, "part": (part or (1, 1))[0], "parts": (part or (1, 1))[1]}
    title = _numbered(D["title"], T, part)
    blocks = [Block("title", title, params)]
    if not digest["groups"]:
        blocks.append(Block("text", D["none"], {"day": day}))
        return Message(title, params, blocks, ref)
    counts = _words(lang, crashes=digest["crashes"], instances=digest["instances"], new=digest["new_fingerprints"])
    blocks.append(Block("text", D["summary"].format(**counts)))
    for heading, new in ((D["new"], True), (D["seen"], False)):
        part_groups = [g for g in groups if bool(g.get("new")) == new]
        if not part_groups:
            continue
        blocks.append(Block("heading", heading))
        for g in part_groups:
            insts = list(g.get("instances") or [])
            text = "{title} ({kind}): " + D["on"].format(**_words(lang, n=int(g.get("count") or 0), m=len(insts)))
            item = {"title": g.get("title") or g.get("kind"), "kind": g.get("kind")}
            if insts:
                text += ": {instances}" + (f" +{len(insts) - 5}" if len(insts) > 5 else "")
                item["instances"] = ", ".join(insts[:5])
            if g.get("rule"):
                text += f" · {D['rule']} {{rule}}"
                item["rule"] = g["rule"]
            if g.get("fix_status") == "affected" and g.get("upgrade_to"):
                text += f" · {D['upgrade']} {{upgrade}}"
                item["upgrade"] = g["upgrade_to"]
            if not g.get("new") and g.get("first_seen"):
                text += f" · {D['first']} {{first}}"
                item["first"] = g["first_seen"]
            url = (links or {}).get(str(g.get("latest_key") or ""), "")
            blocks.append(Block("item", text, item, url=url, note=D["report"] if url else ""))
    return Message(title, params, blocks, ref)


def excerpt_of(log: bytes, report: dict[str, Any], name: str) -> tuple[str, bytes]:
    """A window of the crash log around its first crash report, at most EXCERPT_BYTES."""
    start, end = excerpt_range(io.BytesIO(log), len(log), report)
    return name, log[start:end]


EXCERPT_LEAD = 4096  # the excerpt starts this far above the first evidence line found
_SCAN = 4 * 1024 * 1024


def excerpt_range(fh: BinaryIO, size: int, report: dict[str, Any]) -> tuple[int, int]:
    """Where the excerpt of a ``size``-byte log lies, as (start, end) byte offsets: the whole
    log when it fits in EXCERPT_BYTES; else EXCERPT_BYTES from a little above the first
    occurrence of the first evidence line found in it (the log's end when none is), cut at
    line ends. ``fh`` (seekable) is read in pieces: memory stays near one piece."""
    if size <= EXCERPT_BYTES:
        return 0, size
    d = report.get("diagnosis") or {}
    probes = [p for p in (str(x).strip().encode("utf-8", "replace")[:120] for x in d.get("evidence") or []) if len(p) >= 12]
    pos = _first_found(fh, probes)
    start = max(0, size - EXCERPT_BYTES) if pos < 0 else max(0, pos - EXCERPT_LEAD)
    end = min(size, start + EXCERPT_BYTES)
    fh.seek(start)
    window = fh.read(end - start)
    first = 0
    if start:
        nl = window.find(b"\n")
        if nl >= 0:
            first = nl + 1
    cut = window.rfind(b"\n", first)
    last = len(window)
    if cut > first and end < size:
        last = cut + 1
    return start + first, start + last


def _first_found(fh: BinaryIO, probes: list[bytes]) -> int:
    """The offset of the first occurrence of the first of ``probes`` (in their order) that
    occurs in ``fh``, or -1; one pass in _SCAN pieces overlapping by a probe's length."""
    if not probes:
        return -1
    found: dict[int, int] = {}
    keep = max(len(p) for p in probes) - 1
    fh.seek(0)
    base, carry = 0, b""
    while True:
        chunk = fh.read(_SCAN)
        if not chunk:
            break
        buf = carry + chunk
        for i, probe in enumerate(probes):
            if i not in found:
                at = buf.find(probe)
                if at >= 0:
                    found[i] = base + at
        if 0 in found:
            break  # the first probe wins wherever the others are
        carry = buf[-keep:] if keep else b""
        base += len(buf) - len(carry)
    return found[min(found)] if found else -1


def evidence_excerpt(report: dict[str, Any], name: str) -> tuple[str, bytes]:
    d = report.get("diagnosis") or {}
    return name, ("\n".join(str(x) for x in d.get("evidence") or []) + "\n").encode("utf-8", "replace")
