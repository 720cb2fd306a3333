"""Function Compute handler: collect one incident's crash log (invoked asynchronously)."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    pipeline = pipeline_for("collect", credentials=getattr(context, "credentials", None))
    # The request id owns the stage's claim; FC keeps it across the async retries of one invocation.
    result = run_stage("collect", lambda: pipeline.collect(event, owner=getattr(context, "request_id", None)))
    if "refused" in result:
        return json.dumps(result)
    return json.dumps({"method": result.get("method"), "complete": result.get("complete"), "failure": result.get("failure")})
