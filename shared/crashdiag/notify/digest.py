"""The daily digest to DingTalk: yesterday's crashes grouped by fingerprint, new ones
first (the data comes from reports.fleet.daily_digest).

Queued once per day, sent through the notifier like every robot message: a conditional
create of ``fleet/digests/<day>.json`` claims the day and holds the message, already cut
into parts that each fit one robot message; each part then has its own ledger
(``fleet/digests/<day>/pNN/notify/dingtalk/``) and takes a slot of the minute's budget,
waits out a throttle mark and is retried like an incident's card. What this call cannot
send now, the notify_flush timer sends later (``Notifier.flush_daily``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..settings import Settings
from . import content
from .messages import message_to_json

DAILY_CHANNELS = ("dingtalk",)  # the digest is a DingTalk message; email has every incident already


def daily_messages(digest: dict[str, Any], lang: str, links: dict[str, str], fits) -> list[dict[str, Any]]:
    """The day's digest as messages (JSON) that each ``fits`` one robot message: its groups
    halved until every part does, each part titled (n/of)."""
    day = digest["day"]

    def split(groups: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        if len(groups) <= 1 or fits(content.daily(digest, lang, f"digest-{day}", links=links, groups=groups, part=(1, 2))):
            return [groups]
        mid = len(groups) // 2
        return split(groups[:mid]) + split(groups[mid:])

    parts = split(list(digest["groups"]))
    out = []
    for k, groups in enumerate(parts, 1):
        ref = f"digest-{day}" if len(parts) == 1 else f"digest-{day}-p{k}"
        msg = content.daily(digest, lang, ref, links=links, groups=groups, part=(k, len(parts)))
        msg.mention = k == 1
        out.append(message_to_json(msg))
    return out


def send_daily_digest(store, settings: Settings, day: dt.date, *, notifier=None) -> dict[str, Any]:
    """Queue the digest of ``day`` (UTC) once and send what the robot's budget allows now;
    returns what was done."""
    from ..reports.fleet import daily_digest, load_fleet_index, report_page_key
    from . import build_notifier

    notifier = notifier or build_notifier(settings, store, outbox_dir=settings.outbox_dir)
    channels = [ch for ch in notifier.channels if ch.name in DAILY_CHANNELS]
    if not channels:
        return {"day": day.isoformat(), "status": "skipped", "detail": "no DingTalk robot configured"}
    key = f"fleet/digests/{day.isoformat()}.json"
    if notifier.store.get_json(key, immutable=True) is None:
        digest = daily_digest(load_fleet_index(store), day, settings.lang)
        links: dict[str, str] = {}
        for g in digest["groups"]:
            try:
                links[g["latest_key"]] = notifier.link(report_page_key(g["latest_key"]))
            except Exception:  # a store that cannot presign: the digest without that link
                continue
        fits = channels[0].fits
        doc = {"day": day.isoformat(), "at": notifier.now(), "crashes": digest["crashes"],
               "parts": daily_messages(digest, settings.lang, links, fits)}
        notifier.store.put(key, doc, if_absent=True)  # a racing run that wrote first: theirs stands
        notifier.store.put(f"notify/daily/{day.isoformat()}.json", {"day": day.isoformat()}, if_absent=True)
        notifier.flush_daily([day.isoformat()])
        return {"day": day.isoformat(), **notifier.daily_status(day.isoformat())}
    notifier.flush_daily([day.isoformat()])  # an earlier run queued it: send what is still owed
    status = notifier.daily_status(day.isoformat())
    return {"day": day.isoformat(), **status, "status": "already sent" if status["status"] == "sent" else f"already {status['status']}"}
