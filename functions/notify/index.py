"""Function Compute handler: OSS object-created trigger on report.json: DingTalk + email."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.events import keys_of_trigger
from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    pipeline = pipeline_for("notify", credentials=getattr(context, "credentials", None))

    def run():
        done = []
        for key in keys_of_trigger(event):  # the OSS trigger, or the reconciler's {"key": ...}
            summary = pipeline.notify(key)
            done.append({"key": key, "told": summary["told"],
                         "channels": {name: c["status"] for name, c in summary["channels"].items()}})
        return done

    return json.dumps(run_stage("notify", run))
