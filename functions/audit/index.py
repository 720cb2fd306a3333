"""Function Compute handler: the daily readiness audit (a timer trigger that exists only
when the template's AuditEnabled is true).

Lists the region's running Linux instances (those tagged CRASHDIAG_AUDIT_TAG, or all),
runs the read-only audit script on up to 100 of them per RunCommand, and writes one result
per instance to audit/<date>/<region>/<instance-id>.json plus the run's summary. The ECS
client and the store are built on first use and kept for the life of the instance; the
credentials they sign with are the invocation's (context.credentials), read per request.
"""

from __future__ import annotations

import json
import logging

from crashdiag.pipeline.audit import audit_from_settings, build_fleet_api
from crashdiag.pipeline.runtime import refresh_credentials, run_stage, store_for
from crashdiag.settings import Settings

logging.getLogger().setLevel(logging.INFO)
_parts: dict = {}


def handler(event, context):
    settings = Settings.from_env()
    store = store_for(settings, credentials=getattr(context, "credentials", None))
    if "api" not in _parts:
        _parts["api"] = build_fleet_api(settings, credentials=refresh_credentials(getattr(context, "credentials", None), settings))

    def run():
        summary = audit_from_settings(settings, _parts["api"], store)
        logging.info("readiness audit: %s", summary)
        return summary

    return json.dumps(run_stage("audit", run))
