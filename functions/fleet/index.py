"""Function Compute handler: timer triggers that rebuild fleet/index.json and
fleet/index.html, and (the daily trigger, payload {"digest": true}) send yesterday's
digest to DingTalk once; the weekly trigger (payload {"readiness": true}) sends the
fleet's readiness digest once per ISO week through the notification channels.

Each run reads only the report.json objects that appeared since the last run (the index
remembers the rest), so it stays cheap however many reports the bucket holds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from crashdiag.pipeline.runtime import run_stage, store_for
from crashdiag.reports.fleet import rebuild_fleet
from crashdiag.settings import Settings

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    settings = Settings.from_env()
    store = store_for(settings, credentials=getattr(context, "credentials", None))

    def run():
        summary = rebuild_fleet(store, settings.lang, link=lambda key: store.url(key, settings.report_link_ttl))
        logging.info("fleet index: %s", summary)
        if _wants_digest(event):
            from crashdiag.notify.digest import send_daily_digest

            yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
            summary["digest"] = send_daily_digest(store, settings, yesterday)
        if _wants_digest(event, "readiness"):
            from crashdiag.notify.readiness_digest import send_readiness_digest

            today = dt.datetime.now(dt.timezone.utc).date()
            summary["readiness_digest"] = send_readiness_digest(
                store, settings, today, page_url=store.url("fleet/index.html", settings.report_link_ttl))
        return summary

    return json.dumps(run_stage("fleet", run))


def _wants_digest(event, what: str = "digest") -> bool:
    """FC timer events carry the trigger's payload in "payload" (a string)."""
    try:
        data = json.loads(event) if isinstance(event, (bytes, str)) else event
        payload = data.get("payload") if isinstance(data, dict) else None
        payload = json.loads(payload) if isinstance(payload, str) and payload else payload
        return bool(isinstance(payload, dict) and payload.get(what))
    except (ValueError, TypeError):
        return False
