"""Function Compute handler: timer trigger that rebuilds fleet/index.json and fleet/index.html.

Each run reads only the report.json objects that appeared since the last run (the index
remembers the rest), so it stays cheap however many reports the bucket holds. Links in
the page are presigned for the report link lifetime: the page is rebuilt every run, well
within it.
"""

from __future__ import annotations

import json
import logging

from crashdiag.fleet import rebuild_fleet
from crashdiag.runtime import build_store
from crashdiag.settings import Settings

logging.getLogger().setLevel(logging.INFO)


def handler(event, context):
    settings = Settings.from_env()
    store = build_store(settings)
    summary = rebuild_fleet(store, settings.lang, link=lambda key: store.url(key, settings.report_link_ttl))
    logging.info("fleet index: %s", summary)
    return json.dumps(summary)
