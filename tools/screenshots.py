"""Render the incident page and the fleet page of a replayed crash storm to PNG.

    python tools/screenshots.py                      # what `make screenshots` runs
    python tools/screenshots.py --out DIR --lang zh  # elsewhere, in Chinese

Replays every sample crash event into a fresh local store (the real pipeline on the
simulated instances), then adds a storm: copies of those reports on more instances over
the past weeks, and a burst of the el7 blk-mq NULL dereference in the last days (seeded,
so the pictures are the same every run). The kdump incident's page and the fleet page
are rendered with the package's own renderers and photographed by headless Chromium
(Debian's ``chromium``; nothing is downloaded) into ``docs/screenshots/incident.png``
and ``fleet.png``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))

from crashdiag.cloud.store import LocalStore  # noqa: E402
from crashdiag.reports.fleet import rebuild_fleet  # noqa: E402
from crashdiag.reports.html_report import render_html  # noqa: E402

CRASH_EVENTS = (
    "eventbridge-crash-kdump-executing.json",
    "eventbridge-crash-oom-messages.json",
    "cloudmonitor-crash-ubuntu-kdump-tools.json",
    "eventbridge-system-failure-bootloop.json",
    "eventbridge-crash-journal-only.json",
    "eventbridge-crash-big-messages.json",
)
INCIDENT = "incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-bp1crash0kdump01/"
STORM_DAY = dt.date(2026, 11, 26)  # the sample events' day
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1",
)


def replay_samples(store_dir: Path, lang: str) -> None:
    """The real pipeline on the sample events (report.json + report.html per incident)."""
    from crashdiag.replay import replay
    from crashdiag.settings import Settings

    # An empty environment: always the local store and the simulated instances. The boot
    # loop's agent never answers: a short wait gets to the serial console quickly.
    settings = Settings.from_env({}, store_dir=str(store_dir), instances_dir=str(ROOT / "events" / "instances"), lang=lang,
                                 collect_poll_seconds=0.05, collect_wait_seconds=2)
    for name in CRASH_EVENTS:
        replay((ROOT / "events" / name).read_bytes(), settings)
    store = LocalStore(store_dir)
    for key in store.list("incidents/"):
        if key.endswith("/report.json"):
            prefix = key[: -len("report.json")]
            raw = store.get(prefix + "crash.log") if store.exists(prefix + "crash.log") else None
            page = render_html(json.loads(store.get(key)), lang, raw)
            store.put(prefix + "report.html", page.encode("utf-8"), content_type="text/html; charset=utf-8")


def add_storm(store_dir: Path, seed: int = 7) -> int:
    """Copies of the replayed reports on 60 more instances over 30 days, and a burst of
    the blk-mq crash in the last four days. Returns how many reports were added."""
    store = LocalStore(store_dir)
    base = {}
    for key in store.list("incidents/"):
        if key.endswith("/report.json"):
            r = json.loads(store.get(key))
            base[r["diagnosis"]["kind"]] = r
    rnd = random.Random(seed)
    kinds = sorted(base)
    weights = {"null_deref": 3, "oom_panic": 4, "hung_task": 3, "list_corruption": 2, "other": 2, "vfs_no_root": 1}
    regions = ("cn-hangzhou", "cn-shanghai", "cn-beijing")
    added = 0

    def write(template: dict, day: dt.date, n: int) -> None:
        nonlocal added
        r = copy.deepcopy(template)
        inst = f"i-bp1storm{n:08d}"
        region = regions[n % len(regions)]
        hours = 10 if day == STORM_DAY else 24  # the sample events' day ends at their time, 10:00
        t = dt.datetime.combine(day, dt.time(rnd.randrange(hours), rnd.randrange(60), rnd.randrange(60)))
        inc = f"e-storm{added:06d}"
        r["incident"].update(instance_id=inst, region=region, id=inc, event_time=t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        store.put(f"incidents/{region}/{inst}/{inc}/report.json", json.dumps(r).encode(), content_type="application/json")
        added += 1

    for back in range(30, 0, -1):
        day = STORM_DAY - dt.timedelta(days=back)
        for _ in range(rnd.randrange(1, 6)):
            kind = rnd.choices(kinds, [weights.get(k, 1) for k in kinds])[0]
            write(base[kind], day, rnd.randrange(60))
    for back in range(3, -1, -1):  # the storm: a block-layer bug hitting an el7 fleet
        day = STORM_DAY - dt.timedelta(days=back)
        for _ in range(6 + 5 * (3 - back)):
            write(base["null_deref"], day, 100 + rnd.randrange(40))
    return added


def chromium_screenshot(url: str, png: Path, width: int = 1280, height: int = 2000) -> None:
    exe = shutil.which("chromium")
    if not exe:
        raise SystemExit("screenshots: chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="crashdiag-chromium-") as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}", url]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or not png.is_file():
        raise SystemExit(f"screenshots: chromium failed ({p.returncode}): {p.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="directory for incident.png and fleet.png")
    ap.add_argument("--lang", choices=("en", "zh"), default="en")
    ap.add_argument("--keep", default=None, help="also keep the generated store in this directory")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crashdiag-storm-") as tmp:
        store_dir = Path(a.keep) if a.keep else Path(tmp) / "store"
        replay_samples(store_dir, a.lang)
        added = add_storm(store_dir)
        store = LocalStore(store_dir)
        # "updated" half an hour after the last sample event: the same picture every run
        summary = rebuild_fleet(store, a.lang, now=dt.datetime.combine(STORM_DAY, dt.time(10, 30), dt.timezone.utc))
        chromium_screenshot((store_dir / INCIDENT / "report.html").resolve().as_uri(), out / "incident.png")
        chromium_screenshot((store_dir / "fleet" / "index.html").resolve().as_uri(), out / "fleet.png")
    print(f"{out / 'incident.png'}\n{out / 'fleet.png'}\n({summary['reports']} reports, {added} of them synthesized)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
