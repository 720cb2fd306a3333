"""Function Compute handler: the daily readiness audit (timer trigger, off unless the
template's AuditEnabled is true).

Lists the region's running Linux instances (those tagged CRASHDIAG_AUDIT_TAG, or all),
runs the read-only audit script on up to 100 of them per RunCommand, and writes one
result per instance to audit/<date>/<region>/<instance-id>.json. The ECS client and the
store are built on first use and kept for the life of the instance.
"""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.audit import audit_from_settings, build_fleet_api
from crashdiag.pipeline.runtime import build_store
from crashdiag.settings import Settings

logging.getLogger().setLevel(logging.INFO)
_parts: dict = {}


def handler(event, context):
    settings = Settings.from_env()
    if not _parts:
        _parts["api"] = build_fleet_api(settings)
        _parts["store"] = build_store(settings)
    summary = audit_from_settings(settings, _parts["api"], _parts["store"])
    logging.info("readiness audit: %s", summary)
    return json.dumps(summary)
