"""Function Compute handler: ECS crash events in (EventBridge or CloudMonitor form)."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.runtime import pipeline_for

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    summary = pipeline_for("ingest").ingest(event)
    return json.dumps(summary.to_json())
