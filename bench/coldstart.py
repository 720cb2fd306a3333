"""Cold start of one Function Compute handler, run in a fresh interpreter by bench/run.py.

    python bench/coldstart.py <function>

Imports the handler module, then builds what its first invocation builds (store, ECS
client, FC client) against unreachable endpoints: nothing is sent. Prints import time,
ready time and peak RSS as JSON. For the functions that write pages (diagnose: the
incident page; fleet: fleet/index.html) it then renders a first page and adds how long
that took and the peak RSS after it: page code and its template engine load on first use.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(function: str) -> None:
    t0 = time.perf_counter()
    sys.path[:0] = [str(ROOT / "functions" / function), str(ROOT / "shared")]
    import index  # noqa: F401 - the handler module, as FC imports it

    t1 = time.perf_counter()
    from crashdiag.pipeline.runtime import pipeline_for
    from crashdiag.settings import Settings

    env = {
        "OSS_BUCKET": "bench-bucket", "OSS_ENDPOINT": "http://127.0.0.1:9", "CRASHDIAG_REGION": "cn-hangzhou",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "bench", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench",
        "CRASHDIAG_FC_ENDPOINT": "http://127.0.0.1:9", "ECS_ENDPOINT": "http://127.0.0.1:9",
    }
    env.update({"DINGTALK_WEBHOOK": "http://127.0.0.1:9/robot/send?access_token=bench", "SMTP_HOST": "127.0.0.1",
                "MAIL_TO": "bench@example.com"})
    settings = Settings.from_env(env)
    if function == "fleet":
        from crashdiag.pipeline.runtime import build_store
        from crashdiag.reports.fleet import render_fleet_html  # noqa: F401 - what the timer run imports

        build_store(settings)
        return _report(t0, t1, _first_fleet_page)
    stage = {"on_ecs_event": "ingest", "notify_flush": "notify"}.get(function, function)
    p = pipeline_for(stage, settings)
    if stage == "collect":
        p.ecs._client("cn-hangzhou")  # the SDK client the first RunCommand needs
    if stage == "ingest" and p.invoker is not None:
        p.invoker.client  # noqa: B018 - the fc2 client the first async invoke needs
    if stage == "diagnose":
        from crashdiag.classifier.catalogue import load_catalogue

        load_catalogue()
        import crashdiag.classifier.classify  # noqa: F401

        return _report(t0, t1, _first_incident_page)
    if stage == "notify":
        import crashdiag.notify.content  # noqa: F401
        import crashdiag.reports.html_report  # noqa: F401 - the card links report.html; content renders from report.json
    _report(t0, t1)


def _first_incident_page() -> float:
    """Seconds to render the first incident page (the report is built beforehand, untimed)."""
    from crashdiag.reports.report import build_report

    log = (ROOT / "tests" / "cases" / "seed" / "09-blk-mq-timeout-null-deref.txt").read_bytes()
    report = build_report(log, {"method": "kdump", "complete": True}, "en", source="bench")
    t = time.perf_counter()
    from crashdiag.reports.html_report import render_html

    render_html(report, "en", log)
    return time.perf_counter() - t


def _first_fleet_page() -> float:
    """Seconds to render fleet/index.html from a small index (no store involved)."""
    rows = {f"incidents/cn-hangzhou/i-bench{i}/e-{i}/report.json": {
        "time": f"2026-11-2{i}T01:00:00Z", "instance": f"i-bench{i}", "region": "cn-hangzhou", "kind": "null_deref",
        "title": "BUG: unable to handle kernel NULL pointer dereference in blk_mq_rq_timed_out",
        "fingerprint": "5f9192bddf08b23e", "rule": "blk-mq-timeout-null-deref", "category": "kernel_bug",
        "fix_status": "affected", "upgrade_to": "3.10.0-1160.88.1.el7", "kernel": "3.10.0-1160.80.1.el7.x86_64"}
        for i in range(1, 6)}
    index = {"version": 1, "updated": "2026-11-26T02:00:00Z", "reports": rows, "stats": {}}
    t = time.perf_counter()
    from crashdiag.reports.fleet import render_fleet_html

    render_fleet_html(index, "en")
    return time.perf_counter() - t


def _report(t0: float, t1: float, first_page: Callable[[], float] | None = None) -> None:
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"import_s": t1 - t0, "ready_s": t2 - t0, "rss_kb": rss, "ecs_sdk": "alibabacloud_ecs20140526" in sys.modules}
    if first_page is not None:
        out["page_s"] = first_page()
        out["page_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
