"""Function Compute handler: ECS crash events in (EventBridge or CloudMonitor form)."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    # context.credentials: this invocation's STS credentials (absent in Python 3.12, where
    # the environment has them); a refused OSS request ends as one readable line
    pipeline = pipeline_for("ingest", credentials=getattr(context, "credentials", None))
    return json.dumps(run_stage("ingest", lambda: pipeline.ingest(event, owner=getattr(context, "request_id", None)).to_json()))
