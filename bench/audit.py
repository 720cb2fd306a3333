"""Readiness audit figures: `python bench/audit.py`.

- the guest audit script's wall time on a fixture tree, under each installed shell
  (what one instance costs Cloud Assistant), and the size of its output;
- judging one instance's facts (parse + checks + exposure against the catalogue);
- the fleet's readiness view over 10,000 audited instances: writing the per-region
  summaries, then load_readiness (what the fleet function does every 15 minutes),
  with its time and the objects it reads.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))

from crashdiag.cloud.store import LocalStore  # noqa: E402
from crashdiag.pipeline.audit import AUDIT_SCRIPT_PATH, store_results  # noqa: E402
from crashdiag.reports.readiness import judge, load_readiness, parse_audit_output  # noqa: E402

TREE = ROOT / "events" / "instances" / "i-bp1rdyoldkern005" / "root"


def script_times(shell: list[str], n: int = 20) -> tuple[float, int]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "CRASHDIAG_ROOT": str(TREE)}
    text = AUDIT_SCRIPT_PATH.read_bytes()
    times, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        p = subprocess.run([*shell, "-s"], input=text, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t)
        size = len(p.stdout)
    return statistics.median(times), size


def main() -> int:
    rows = []
    for name, argv in {"sh": ["sh"], "dash": ["dash"], "busybox sh": ["busybox", "sh"], "bash --posix": ["bash", "--posix"]}.items():
        if shutil.which(argv[0]):
            t, size = script_times(argv)
            rows.append((f"audit script, {name} (median of 20)", f"{t * 1000:.1f} ms", f"{size} bytes of output"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "CRASHDIAG_ROOT": str(TREE)}
    out = subprocess.run(["sh", "-s"], input=AUDIT_SCRIPT_PATH.read_bytes(), capture_output=True, env=env, check=True).stdout
    facts = parse_audit_output(out)
    judge(facts, instance_id="i-warm")  # loads the catalogue once
    t = time.perf_counter()
    for i in range(1000):
        judge(parse_audit_output(out), instance_id=f"i-{i}")
    rows.append(("judge one instance (parse, checks, exposure)", f"{(time.perf_counter() - t):.2f} ms", "mean of 1000"))

    base = judge(facts, instance_id="i-x", region="cn-hangzhou", account="1")
    with tempfile.TemporaryDirectory() as d:
        store = LocalStore(d)
        day = dt.date(2026, 11, 29).isoformat()
        t = time.perf_counter()
        for region in range(20):
            for account in range(5):
                results = [base | {"instance_id": f"i-r{region}a{account}n{n}", "region": f"cn-r{region}", "account": f"{account:016d}"}
                           for n in range(100)]
                store_results(store, results, day, f"cn-r{region}", f"{account:016d}")
        write = time.perf_counter() - t
        reads = []
        orig_get = store.get

        def counting_get(key: str) -> bytes:
            reads.append(key)
            return orig_get(key)

        store.get = counting_get  # type: ignore[method-assign]
        t = time.perf_counter()
        view = load_readiness(store, day)
        load = time.perf_counter() - t
        assert view["audited"] == 10_000
        rows.append(("write 10,000 results + 100 summaries (local store)", f"{write:.2f} s", ""))
        rows.append(("load_readiness over 10,000 instances", f"{load * 1000:.0f} ms", f"{len(reads)} objects read"))
    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>10}  {r[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
