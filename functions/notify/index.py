"""Function Compute handler: OSS object-created trigger on report.json: DingTalk + email."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.events import parse_oss_events
from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    pipeline = pipeline_for("notify", credentials=getattr(context, "credentials", None))

    def run():
        done = []
        for created in parse_oss_events(event):
            summary = pipeline.notify(created.key)
            done.append({"key": created.key, "told": summary["told"],
                         "channels": {name: c["status"] for name, c in summary["channels"].items()}})
        return done

    return json.dumps(run_stage("notify", run))
