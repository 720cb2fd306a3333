"""Function Compute handler: timer (every minute): send the digests, retries and follow-ups
the notification outbox still owes."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    pipeline = pipeline_for("notify", credentials=getattr(context, "credentials", None))

    def run():
        return [{"incident": s["incident"], "told": s["told"],
                 "channels": {name: c["status"] for name, c in s["channels"].items()}}
                for s in pipeline.flush_notifications()]

    return json.dumps(run_stage("notify_flush", run))
