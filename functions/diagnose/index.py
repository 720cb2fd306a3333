"""Function Compute handler: OSS object-created trigger on crash.log (and inbox/)."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.events import parse_oss_events
from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    pipeline = pipeline_for("diagnose", credentials=getattr(context, "credentials", None))

    def run():
        done = []
        for created in parse_oss_events(event):
            report = pipeline.diagnose(created.key)
            done.append({"key": created.key, "kind": report["diagnosis"]["kind"]})
        return done

    return json.dumps(run_stage("diagnose", run))
