"""Function Compute handler: timer (every 5 minutes): drive on incidents that stopped
short of a report and a notice (crashdiag.pipeline.reconcile)."""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.reconcile import Reconciler
from crashdiag.pipeline.runtime import pipeline_for, run_stage

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    pipeline = pipeline_for("reconcile", credentials=getattr(context, "credentials", None))
    return json.dumps(run_stage("reconcile", lambda: Reconciler(pipeline).run()))
