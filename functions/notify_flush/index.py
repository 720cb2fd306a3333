"""Function Compute handler: timer (every minute): send the digests, retries and follow-ups
the notification outbox still owes."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.runtime import pipeline_for

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    summaries = pipeline_for("notify").flush_notifications()
    return json.dumps([{"incident": s["incident"], "told": s["told"],
                        "channels": {name: c["status"] for name, c in s["channels"].items()}} for s in summaries])
