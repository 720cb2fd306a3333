"""Cold start of one Function Compute handler, run in a fresh interpreter by bench/run.py.

    python bench/coldstart.py <function>

Imports the handler module, then builds what its first invocation builds (store, ECS
client, FC client) against unreachable endpoints: nothing is sent. Prints import time,
ready time and peak RSS as JSON.
"""

from __future__ import annotations

import json
import resource
import sys
import time
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
        return _report(t0, t1)
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
    if stage == "notify":
        import crashdiag.notify.content  # noqa: F401
        import crashdiag.reports.html_report  # noqa: F401 - the card links report.html; content renders from report.json
    _report(t0, t1)


def _report(t0: float, t1: float) -> None:
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"import_s": t1 - t0, "ready_s": t2 - t0, "rss_kb": rss, "ecs_sdk": "alibabacloud_ecs20140526" in sys.modules}))


if __name__ == "__main__":
    main(sys.argv[1])
