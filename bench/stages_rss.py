"""Peak memory of each pipeline stage on a 200 MB log (issue #11: every stage and
`crashdiag report --html` under 200 MB peak on a 200 MB log).

Each stage runs in a fresh interpreter (``python bench/stages_rss.py --child STAGE ...``)
that reports its own peak RSS, so one stage's memory never counts for another:

- collect: the step that reads the guest's upload (``Pipeline.read_upload``, then the
  ``crash.log`` write, as ``Pipeline.collect`` does) with a 200 MB ``guest-upload.log``,
  over LOG_MAX_BYTES: head and tail windows of 64 MiB in all;
- collect, a 60 MB upload (under the cap: copied whole through a temporary file);
- diagnose of a 200 MB ``crash.log`` (an ``inbox/`` log, which collect does not cap);
- notify of that report (channels write to an outbox), which attaches the excerpt;
- ``crashdiag report --html`` on the 200 MB log;
- for comparison, the 200 MB object read whole with ``get``, as collect and diagnose
  did before.

The store is a LocalStore, and with ``--oss`` also oss2 over HTTP against the OSS
stand-in (run in this process, so its own memory is not counted).

    python bench/stages_rss.py [--oss]     # or: python bench/run.py stagesrss
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

MB = 1024 * 1024
TARGET_MB = 200
PREFIX = "incidents/cn-hangzhou/i-bp1benchrss0001/e-benchrss0001/"
INBOX = "inbox/bench-200MB.log"


def _store(spec: dict):
    from crashdiag.cloud.store import LocalStore

    if spec["kind"] == "local":
        return LocalStore(spec["root"])
    from crashdiag.cloud.credentials import Credentials
    from crashdiag.cloud.oss_store import OssStore

    return OssStore.connect(spec["endpoint"], spec["bucket"], Credentials(spec["key"], spec["secret"]),
                            region=spec["region"], timeout=60)


def child(stage: str, spec: dict) -> dict:
    """Run one stage here and return its peak RSS (KB) and wall time."""
    from crashdiag.pipeline.stages import Pipeline
    from crashdiag.settings import Settings

    settings = Settings(lang="en", outbox_dir=spec["outbox"])
    p = Pipeline(_store(spec), None, None, settings)
    t = time.perf_counter()
    detail: dict = {}
    if stage.startswith("collect"):
        prefix = spec["prefix"]
        result: dict = {"log": {"uploaded": "yes"}, "notes": [], "complete": True}
        upload = p.read_upload(prefix, result)
        assert upload is not None
        with upload:
            p._put(f"{prefix}crash.log", upload, content_type="text/plain; charset=utf-8")
        detail = {"uploaded": result["log"]["uploaded_bytes"], "kept": result["log"]["kept_bytes"]}
    elif stage == "whole":  # what collect and diagnose did before: the object read whole
        detail = {"bytes": len(p._get(INBOX))}
    elif stage == "diagnose":
        report = p.diagnose(INBOX)
        detail = {"kind": report["diagnosis"]["kind"]}
    elif stage == "notify":
        summary = p.notify(f"reports/{INBOX}/report.json")
        detail = {"channels": {k: v["status"] for k, v in summary["channels"].items()}}
    else:
        raise SystemExit(f"unknown stage {stage}")
    return {"rss_kb": _peak_kb(), "s": time.perf_counter() - t, **detail}


def _peak_kb() -> int:
    """This process's peak RSS since its exec: VmHWM. (getrusage's ru_maxrss keeps the
    high-water mark of the process image before exec, i.e. of the forked parent, which
    holds the OSS stand-in's objects.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _run_child(stage: str, spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", stage, json.dumps(spec)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{stage} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _place(spec: dict, key: str, path: Path) -> None:
    """Put a big file into the store without holding it: a link (local) or a streamed PUT."""
    if spec["kind"] == "local":
        dest = Path(spec["root"]) / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.unlink()
        try:
            os.link(path, dest)
        except OSError:
            shutil.copyfile(path, dest)
    else:
        with path.open("rb") as f:
            _store(spec).put(key, f)


def _peak_rss(cmd: list[str]) -> int:
    from run import peak_rss_of

    return peak_rss_of(cmd)


def run(oss: bool = False) -> list[tuple[str, str, str, str]]:
    from run import OUT, make_log

    from corpus import load_case

    crash = load_case(sorted((ROOT / "tests" / "cases" / "seed").glob("*.txt"))[8]).log  # as run.py's 'rss' part
    huge = make_log(OUT / "kernel-200MB.log", 200 * MB, crash)
    mid = make_log(OUT / "kernel-60MB.log", 60 * MB, crash)
    base = _peak_rss([sys.executable, "-c", "pass"])
    ref = f"python -c pass {base / 1024:.0f} MB"
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, r: dict, extra: str = "") -> None:
        mb = r["rss_kb"] / 1024
        verdict = "PASS" if mb < TARGET_MB else "FAIL"
        rows.append((what, f"{mb:.0f} MB, {r['s']:.1f} s", ref, f"{verdict}: target < {TARGET_MB} MB" + extra))

    stores = ["local"] + (["oss"] if oss else [])
    for kind in stores:
        with tempfile.TemporaryDirectory(prefix="crashdiag-bench-") as tmp:
            standin = None
            if kind == "local":
                spec = {"kind": "local", "root": f"{tmp}/store"}
                label = "local store"
            else:
                from standins.oss import OssStandIn

                standin = OssStandIn(keys={"bench-key": "bench-secret"}).start()
                standin.create_bucket("bench")
                spec = {"kind": "oss", "endpoint": standin.endpoint, "bucket": "bench", "key": "bench-key",
                        "secret": "bench-secret", "region": standin.region}
                label = "OSS stand-in"
            spec["outbox"] = f"{tmp}/outbox"
            try:
                _place(spec, f"{PREFIX}guest-upload.log", huge)
                r = _run_child("collect", {**spec, "prefix": PREFIX})
                row(f"peak RSS, collect reads a 200 MB guest upload, {label}", r,
                    f"; kept {r['kept'] / MB:.0f} of {r['uploaded'] / MB:.0f} MB (head + tail)")
                mid_prefix = PREFIX.replace("e-benchrss0001", "e-benchrss0002")
                _place(spec, f"{mid_prefix}guest-upload.log", mid)
                r = _run_child("collect-60", {**spec, "prefix": mid_prefix})
                row(f"peak RSS, collect reads a 60 MB guest upload, {label}", r, "; under LOG_MAX_BYTES: kept whole")
                _place(spec, INBOX, huge)
                r = _run_child("whole", spec)
                rows.append((f"peak RSS, the 200 MB log read whole as collect and diagnose did before, {label}",
                             f"{r['rss_kb'] / 1024:.0f} MB, {r['s']:.1f} s", ref, "for comparison: what the stages no longer do"))
                r = _run_child("diagnose", spec)
                row(f"peak RSS, diagnose a 200 MB crash log, {label}", r, f"; kind {r['kind']}")
                r = _run_child("notify", spec)
                row(f"peak RSS, notify of that report, excerpt attached, {label}", r)
            finally:
                if standin is not None:
                    standin.stop()
    page = OUT / "kernel-200MB.html"
    html_kb = _peak_rss([sys.executable, "-m", "crashdiag.cli", "report", "--html", str(page), str(huge)])
    mb = html_kb / 1024
    rows.append(("peak RSS, crashdiag report --html on the 200 MB log", f"{mb:.0f} MB", ref,
                 f"{'PASS' if mb < TARGET_MB else 'FAIL'}: target < {TARGET_MB} MB (was 625 MB: the page decoded the whole log)"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs=2, metavar=("STAGE", "SPEC"), help=argparse.SUPPRESS)
    ap.add_argument("--oss", action="store_true", help="also over the OSS stand-in")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1]))))
        return 0
    os.environ["PYTHONPATH"] = str(ROOT / "shared") + os.pathsep + os.environ.get("PYTHONPATH", "")
    for r in run(args.oss):
        print(" | ".join(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
