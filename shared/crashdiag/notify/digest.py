"""The daily digest to DingTalk: yesterday's crashes grouped by fingerprint, new ones
first (the text comes from fleet.daily_digest). Sent once per day: a conditional create
of fleet/digests/<day>.json claims the day before anything is posted."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..cloud.store import AlreadyExists
from ..settings import Settings


def send_daily_digest(store, settings: Settings, day: dt.date, *, robot=None, outbox=None) -> dict[str, Any]:
    """Post the digest of ``day`` (UTC) once; returns what was done."""
    from ..reports.fleet import daily_digest, load_fleet_index

    key = f"fleet/digests/{day.isoformat()}.json"
    digest = daily_digest(load_fleet_index(store), day, settings.lang,
                          link=lambda k: store.url(k, settings.report_link_ttl))
    claim = {"day": day.isoformat(), "at": dt.datetime.now(dt.timezone.utc).isoformat(), "state": "sending"}
    try:
        store.put(key, json.dumps(claim).encode(), content_type="application/json", if_absent=True)
    except AlreadyExists:
        return {"day": day.isoformat(), "status": "already sent"}
    text = digest["markdown"]
    if settings.dingtalk_keyword and settings.dingtalk_keyword not in text:
        text = f"{text}\n\n{settings.dingtalk_keyword}"  # the robot's security keyword
    body = {"msgtype": "markdown", "markdown": {"title": digest["title"], "text": text}}
    if robot is None and settings.dingtalk_webhook:
        from .dingtalk import DingTalkRobot

        robot = DingTalkRobot(settings.dingtalk_webhook, settings.dingtalk_secret)
    if robot is not None:
        outcome = robot.post(body).to_json()
    elif outbox is not None or settings.outbox_dir:
        from .channels import Outbox

        path = (outbox or Outbox(settings.outbox_dir)).write(f"digest-{day.isoformat()}.dingtalk.json",
                                                            json.dumps(body, ensure_ascii=False, indent=2).encode())
        outcome = {"outcome": "outbox", "artifact": path}
    else:
        outcome = {"outcome": "skipped", "detail": "no DingTalk robot configured"}
    result = {"day": day.isoformat(), "status": outcome.get("outcome"), "outcome": outcome, "crashes": digest.get("crashes")}
    store.put(f"fleet/digests/{day.isoformat()}.sent.json", json.dumps(result).encode(), content_type="application/json")
    return result
