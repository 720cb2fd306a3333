"""The weekly readiness digest: how many instances would leave a usable crash log, the
most common problems with their fix, and the instances still on a kernel a known issue
affects, sent through the configured channels (DingTalk robot, email; the outbox when a
channel is not configured). Once per ISO week: a conditional create of
``fleet/digests/readiness-<year>-W<week>.json`` claims the week before anything is sent.

The text is built as ``messages.Block``s: our sentences are the templates, everything
that came from a guest (instance names, kernel releases, check details, fixes) goes in
``params``/``lines`` and is escaped per medium by the renderers.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..cloud.store import AlreadyExists
from ..settings import Settings
from .messages import Block, Message

TEXT = {
    "en": {
        "subject": "[readiness] {ready} of {audited} instances ready for the next crash",
        "intro": "Audit of {day}: {ready} of {audited} instances would leave a usable crash log (kdump armed, memory "
                 "reserved, room for the dump); {exposed} run a kernel that a known issue affects.",
        "scope": "Regions: {regions}; accounts: {accounts}.",
        "problems": "Most common problems",
        "problem": "{status} {id} on {count} instance(s): {detail} Fix: {fix}",
        "problem_nofix": "{status} {id} on {count} instance(s): {detail}",
        "exposed": "Exposed to known issues",
        "issue": "{rule} on {count} instance(s): {title}. Upgrade the kernel to {upgrade}.",
        "instances": "Instances",
        "none": "Every audited instance is ready and on a kernel with every known fix.",
        "page": "Fleet page",
    },
    "zh": {
        "subject": "[就绪巡检] {audited} 台实例中 {ready} 台已为下次宕机做好准备",
        "intro": "{day} 的巡检：{audited} 台实例中有 {ready} 台宕机时能留下可用的日志（kdump 已就绪、预留了内存、"
                 "有空间保存转储）；{exposed} 台运行的内核受已知问题影响。",
        "scope": "地域：{regions}；账号：{accounts}。",
        "problems": "最常见的问题",
        "problem": "{status} {id}：{count} 台实例。{detail} 修复：{fix}",
        "problem_nofix": "{status} {id}：{count} 台实例。{detail}",
        "exposed": "受已知问题影响",
        "issue": "{rule}：{count} 台实例，{title}。请将内核升级到 {upgrade}。",
        "instances": "实例",
        "none": "所有巡检过的实例都已就绪，且内核已包含所有已知修复。",
        "page": "总览页面",
    },
}
PROBLEMS_SHOWN = 8
ISSUES_SHOWN = 10


def readiness_message(view: dict[str, Any], lang: str = "en", page_url: str | None = None) -> Message:
    """The digest of a merged readiness view (``reports.readiness.load_readiness``)."""
    T = TEXT.get(lang, TEXT["en"])
    counts = {"ready": view["ready"], "audited": view["audited"], "exposed": view["exposed_instances"], "day": view["day"]}
    blocks = [Block("title", T["subject"], counts), Block("text", T["intro"], counts)]
    if view.get("regions") or view.get("accounts"):
        blocks.append(Block("text", T["scope"], {"regions": ", ".join(view.get("regions") or []) or "-",
                                                 "accounts": ", ".join(view.get("accounts") or []) or "-"}))
    problems = view.get("problems") or []
    if problems:
        blocks.append(Block("heading", T["problems"]))
        for p in problems[:PROBLEMS_SHOWN]:
            params = {"status": p["status"].upper(), "id": p["id"], "count": p["count"], "detail": p.get("detail", ""),
                      "fix": p.get("fix", "")}
            blocks.append(Block("item", T["problem"] if p.get("fix") else T["problem_nofix"], params))
    exposed = view.get("exposed") or []
    if exposed:
        blocks.append(Block("heading", T["exposed"]))
        for g in exposed[:ISSUES_SHOWN]:
            blocks.append(Block("item", T["issue"], {"rule": g["rule"], "count": g["count"], "title": g.get("title", ""),
                                                     "upgrade": ", ".join(g.get("upgrade_to") or []) or "?"}))
            blocks.append(Block("list", T["instances"], lines=tuple(i["instance_id"] for i in g["instances"][:10])))
    if not problems and not exposed:
        blocks.append(Block("text", T["none"]))
    if page_url:
        blocks.append(Block("link", T["page"], url=page_url))
    return Message(T["subject"], counts, blocks, ref=f"readiness-{view['day']}")


def week_of(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def send_readiness_digest(store: Any, settings: Settings, day: dt.date, *, channels: list | None = None,
                          page_url: str | None = None) -> dict[str, Any]:
    """Send the readiness digest once for the ISO week of ``day``; returns what was done."""
    from ..reports.readiness import load_readiness

    week = week_of(day)
    view = load_readiness(store, day.isoformat())
    if view is None:
        return {"week": week, "status": "skipped", "detail": "no audit results: is the audit function enabled?"}
    key = f"fleet/digests/readiness-{week}.json"
    claim = {"week": week, "at": dt.datetime.now(dt.timezone.utc).isoformat(), "state": "sending"}
    try:
        store.put(key, json.dumps(claim).encode(), content_type="application/json", if_absent=True)
    except AlreadyExists:
        return {"week": week, "status": "already sent"}
    if channels is None:
        from . import build_channels

        channels = build_channels(settings, outbox_dir=settings.outbox_dir)
    msg = readiness_message(view, settings.lang, page_url)
    outcomes = {}
    for ch in channels:
        out = ch.deliver(msg)
        outcomes[ch.name] = out.to_json()
    result = {"week": week, "status": "sent" if channels else "skipped", "ready": view["ready"], "audited": view["audited"],
              "outcomes": outcomes}
    store.put(f"fleet/digests/readiness-{week}.sent.json", json.dumps(result).encode(), content_type="application/json")
    return result
