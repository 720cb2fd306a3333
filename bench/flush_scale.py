"""How long notify_flush takes to send 5,000 owed notices (issue #14), over real HTTP:
oss2 against the OSS stand-in, the outbox channels writing each message to a folder.

Setup: N incidents' report.json go through the notify trigger's real path with
NOTIFY_BURST 0 (a storm: every notice held for the flush). Then one flush, timed: it must
send them all (one digest per channel, split as the notifier splits) and settle every
notice, within notify_flush's Timeout (template.yml). Prints requests by kind and the
wall time; exits 1 when a notice is left owed or the flush outlasts the Timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "shared", ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


class Counted:
    """The store, counting requests by kind (what OSS would bill and log)."""

    def __init__(self, inner, latency: float = 0.0) -> None:
        self.inner, self.calls, self.latency = inner, Counter(), latency

    def __getattr__(self, name):
        fn = getattr(self.inner, name)
        if name in ("put", "get", "exists", "list", "delete"):
            def counted(*a, **k):
                self.calls[name] += 1
                if self.latency:
                    time.sleep(self.latency)  # a request's round trip (--latency-ms)
                return fn(*a, **k)
            return counted
        return fn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notices", type=int, default=5000)
    ap.add_argument("--store", choices=("oss", "local"), default="oss",
                    help="oss: oss2 over HTTP to the OSS stand-in; local: a LocalStore with --latency-ms per request")
    ap.add_argument("--latency-ms", type=float, default=10.0, help="with --store local: each request's round trip")
    a = ap.parse_args()
    import logging

    import yaml

    from crashdiag.cloud.credentials import Credentials
    from crashdiag.cloud.oss_store import OssStore
    from crashdiag.notify import build_notifier
    from crashdiag.settings import Settings
    from standins.oss import OssStandIn

    logging.getLogger("crashdiag").setLevel(logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    template = yaml.safe_load((ROOT / "template.yml").read_text(encoding="utf-8"))
    timeout = next(r["Properties"]["Timeout"] for r in template["Resources"].values()
                   if r["Type"] == "ALIYUN::FC::Function" and r["Properties"]["FunctionName"] == "notify_flush")
    oss = OssStandIn(keys={"flush": "flush"}, region="cn-hangzhou").start() if a.store == "oss" else None
    work = tempfile.TemporaryDirectory()
    try:
        if oss is not None:
            oss.create_bucket("flush-bench")
            store = Counted(OssStore.connect(oss.endpoint, "flush-bench", Credentials("flush", "flush"), region="cn-hangzhou"))
        else:
            from crashdiag.cloud.store import LocalStore

            store = Counted(LocalStore(Path(work.name) / "store"))
        with tempfile.TemporaryDirectory() as outbox:
            s = Settings(lang="en", notify_burst=0, outbox_dir=outbox)
            notifier = build_notifier(s, store, outbox_dir=outbox)

            def one(i: int) -> None:
                prefix = f"incidents/cn-hangzhou/i-flush{i:08d}/e-flush{i:08d}/"
                report = {"diagnosis": {"kind": "null_deref", "title": "NULL pointer dereference", "fingerprint": f"fp{i % 13}"},
                          "incident": {"instance_id": f"i-flush{i:08d}", "region": "cn-hangzhou"}}
                store.put(f"{prefix}report.json", json.dumps(report).encode())
                notifier.notify_report(f"{prefix}report.json")

            t0 = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, range(a.notices)))
            setup = time.perf_counter() - t0
            store.calls.clear()
            store.latency = a.latency_ms / 1000 if oss is None else 0.0
            t0 = time.perf_counter()
            summaries = notifier.flush()
            took = time.perf_counter() - t0
            calls = dict(store.calls)
            owed = len(store.list("notify/pending/"))
            messages = len(list(Path(outbox).iterdir()))
    finally:
        if oss is not None:
            oss.stop()
        work.cleanup()
    done = sum(1 for x in summaries if x["complete"] and x["told"])
    where = "OSS stand-in over HTTP" if oss is not None else f"LocalStore, {a.latency_ms:g} ms per request"
    print(f"| store | {where} |\n| notices owed | {a.notices} |\n| setup (notify trigger path) | {setup:.0f} s |\n| flush wall time | {took:.1f} s "
          f"(notify_flush Timeout {timeout} s) |\n| told and settled | {done} |\n| still owed after | {owed} |\n"
          f"| messages written | {messages} |\n| store requests in the flush | {sum(calls.values())} {calls} |")
    ok = done == a.notices and owed == 0 and took < timeout
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
