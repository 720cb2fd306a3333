"""Function Compute handler: collect one incident's crash log (invoked asynchronously)."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    pipeline = pipeline_for("collect", credentials=getattr(context, "credentials", None))
    result = run_stage("collect", lambda: pipeline.collect(event))
    if "refused" in result:
        return json.dumps(result)
    return json.dumps({"method": result.get("method"), "complete": result.get("complete"), "failure": result.get("failure")})
