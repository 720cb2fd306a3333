"""Function Compute handler: collect one incident's crash log (invoked asynchronously)."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.runtime import pipeline_for

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    result = pipeline_for("collect").collect(event)
    return json.dumps({"method": result.get("method"), "complete": result.get("complete"), "failure": result.get("failure")})
