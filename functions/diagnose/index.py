"""Function Compute handler: OSS object-created trigger on crash.log (and inbox/)."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.events import keys_of_trigger
from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    pipeline = pipeline_for("diagnose", credentials=getattr(context, "credentials", None))
    owner = getattr(context, "request_id", None)  # owns the diagnosis claim (docs/PIPELINE.md)

    def run():
        done = []
        for key in keys_of_trigger(event):  # the OSS trigger, or the reconciler's {"key": ...}
            report = pipeline.diagnose(key, owner=owner)
            done.append({"key": key, "kind": (report.get("diagnosis") or {}).get("kind")})
        return done

    return json.dumps(run_stage("diagnose", run))
