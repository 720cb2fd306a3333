"""The fleet index and page: incremental over many reports, and the daily digest."""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fixtures_world import replay_events

from crashdiag.cloud.store import LocalStore, StoreUnavailable
from crashdiag.reports.fleet import (
    HTML_KEY,
    INDEX_KEY,
    daily_digest,
    index_row,
    is_report_key,
    rebuild_fleet,
    render_fleet_html,
    update_fleet_index,
)
from crashdiag.reports.html_report import CSP

ROOT = Path(__file__).resolve().parents[1]
KDUMP = "incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-bp1crash0kdump01/report.json"
NOW = dt.datetime(2026, 11, 27, 3, 0, 0, tzinfo=dt.timezone.utc)
EVENTS = ("eventbridge-crash-kdump-executing.json", "eventbridge-crash-oom-messages.json",
          "cloudmonitor-crash-ubuntu-kdump-tools.json", "eventbridge-crash-journal-only.json", "oss-object-created-inbox.json")


class CountingStore:
    """The store interface over a LocalStore, counting reads; ``unavailable`` keys fail
    the way OSS does on a 5xx."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.gets: list[str] = []
        self.puts: list[str] = []
        self.unavailable: set[str] = set()

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        if key in self.unavailable:
            raise StoreUnavailable(key)
        return self.inner.get(key)

    def put(self, key: str, data: bytes, **kw) -> None:
        self.puts.append(key)
        self.inner.put(key, data, **kw)

    def __getattr__(self, name: str):  # everything else: the inner store's own
        return getattr(self.inner, name)

    def put_url(self, key: str, ttl: int) -> str | None:
        return None


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, dict]:
    """Real report.json objects from the replayed sample events, by kind."""
    store = replay_events(tmp_path_factory.mktemp("samples"), *EVENTS)
    out = {}
    for key in store.list("incidents/"):
        if key.endswith("/report.json"):
            r = json.loads(store.get(key))
            # The Ubuntu sample is a null_deref too (its known issue implies the kind).
            out["ubuntu" if r["incident"]["instance_id"] == "i-bp1ubuntu0000003" else r["diagnosis"]["kind"]] = r
    assert {"null_deref", "oom_panic", "ubuntu", "list_corruption"} <= set(out)
    return out


def variant(report: dict, instance: str, when: str, incident: str, kernel: str | None = None, **diag) -> dict:
    r = copy.deepcopy(report)
    r["incident"].update(instance_id=instance, id=incident, event_time=when)
    if kernel:
        r["diagnosis"]["kernel"]["release"] = kernel
    r["diagnosis"].update(diag)
    return r


def put_report(store, r: dict) -> str:
    inc = r["incident"]
    key = f"incidents/{inc['region']}/{inc['instance_id']}/{inc['id']}/report.json"
    store.put(key, json.dumps(r).encode(), content_type="application/json")
    return key


def index_of(rows: dict[str, dict]) -> dict:
    return {"version": 1, "updated": "2026-11-27T03:00:00Z", "reports": rows, "stats": {}}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_strict_page(page: str) -> None:
    head = page[: page.index("</head>")]
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#x27;")}">' in head
    assert head.index("Content-Security-Policy") < head.index("<style>")
    p = Tags()
    p.feed(page)
    assert not {t for t, _ in p.tags} & {"script", "img", "iframe", "object", "link", "embed", "form", "base"}
    assert not any(k.startswith("on") or k == "src" for _, a in p.tags for k in a)
    assert "url(" not in page and "@import" not in page


# --- the index ------------------------------------------------------------------------------


def test_index_from_replayed_incidents_and_inbox(tmp_path):
    local = replay_events(tmp_path / "s", *EVENTS)
    store = CountingStore(local)
    index = update_fleet_index(store, now=NOW)
    keys = sorted(index["reports"])
    assert len(keys) == 5 and all(is_report_key(k) for k in keys)
    assert "reports/inbox/vmcore-dmesg-sample.txt/report.json" in keys
    assert index["stats"] == {"listed": 5, "read": 5, "dropped": 0, "deferred": 0, "errors": 0}
    row = index["reports"][KDUMP]
    assert row == row | {"instance": "i-bp1kdumpel7demo01", "region": "cn-hangzhou", "time": "2026-11-26T10:00:01Z",
                         "kind": "null_deref", "rule": "blk-mq-timeout-null-deref",
                         "category": "kernel_bug", "fix_status": "affected", "upgrade_to": "3.10.0-1160.88.1.el7",
                         "kernel": "3.10.0-1160.80.1.el7.x86_64", "method": "kdump", "complete": True}
    inbox = index["reports"]["reports/inbox/vmcore-dmesg-sample.txt/report.json"]
    assert "instance" not in inbox and inbox["time_source"] == "indexed" and inbox["time"] == "2026-11-27T03:00:00Z"
    assert json.loads(local.get(INDEX_KEY)) == index
    assert len(local.get(INDEX_KEY)) < 5 * 800  # small rows
    # nothing new: the second run reads the index and nothing else, and writes nothing
    store.gets.clear()
    store.puts.clear()
    again = update_fleet_index(store, now=NOW + dt.timedelta(hours=1))
    assert store.gets == [INDEX_KEY] and store.puts == []
    assert again["reports"] == index["reports"] and again["stats"]["read"] == 0


def test_ten_thousand_reports_second_update_reads_only_new_ones(tmp_path, samples):
    local = LocalStore(tmp_path / "big")
    kinds = sorted(samples)
    start = dt.datetime(2026, 9, 28, tzinfo=dt.timezone.utc)
    for i in range(10_000):
        when = start + dt.timedelta(minutes=(i * 613) % (60 * 24 * 60))
        r = variant(samples[kinds[i % len(kinds)]], f"i-bp1fleet{i % 2500:05d}", when.strftime("%Y-%m-%dT%H:%M:%SZ"), f"e-{i:06d}")
        put_report(local, r)
    store = CountingStore(local)
    t0 = time.perf_counter()
    index = update_fleet_index(store, now=NOW)
    first = time.perf_counter() - t0
    assert len(index["reports"]) == 10_000 and len(store.gets) == 10_001  # the index (missing) + every report
    size = len(local.get(INDEX_KEY))
    assert size / 10_000 < 700, size  # about 630 bytes a row with its key
    for i in range(25):
        put_report(local, variant(samples["oom_panic"], f"i-bp1late{i:05d}", "2026-11-27T01:00:00Z", f"e-late{i:03d}"))
    store.gets.clear()
    t0 = time.perf_counter()
    index = update_fleet_index(store, now=NOW)
    second = time.perf_counter() - t0
    assert store.gets[0] == INDEX_KEY and len(store.gets) == 26
    assert sorted(store.gets[1:]) == sorted(k for k in index["reports"] if "/i-bp1late" in k)
    assert index["stats"]["read"] == 25 and len(index["reports"]) == 10_025
    assert second < first
    t0 = time.perf_counter()
    page = render_fleet_html(index, "en")
    assert time.perf_counter() - t0 < 10
    assert len(page) < 3_000_000
    assert_strict_page(page)
    assert "200 more instances" not in page and "2325 more instances not shown." in page


def test_unreadable_deferred_and_deleted_reports(tmp_path, samples):
    local = LocalStore(tmp_path / "s")
    good = put_report(local, variant(samples["null_deref"], "i-bp1good", "2026-11-20T01:00:00Z", "e-1"))
    flaky = put_report(local, variant(samples["oom_panic"], "i-bp1flaky", "2026-11-21T01:00:00Z", "e-2"))
    bad = "incidents/cn-hangzhou/i-bp1bad/e-3/report.json"
    local.put(bad, b"{not json")
    local.put("incidents/cn-hangzhou/i-bp1good/e-1/report.md", b"# md")
    local.put("incidents/cn-hangzhou/report.json", b"{}")  # not at an incident's depth
    store = CountingStore(local)
    store.unavailable.add(flaky)
    index = update_fleet_index(store, now=NOW)
    assert set(index["reports"]) == {good, bad}
    assert index["reports"][bad]["error"].startswith("unreadable report.json")
    assert index["stats"] == {"listed": 3, "read": 2, "dropped": 0, "deferred": 1, "errors": 1}
    store.unavailable.clear()
    store.gets.clear()
    index = update_fleet_index(store, now=NOW)
    assert store.gets == [INDEX_KEY, flaky]  # the broken one is not read again
    (tmp_path / "s" / good).unlink()
    index = update_fleet_index(store, now=NOW)
    assert set(index["reports"]) == {flaky, bad} and index["stats"]["dropped"] == 1
    page = render_fleet_html(index, "en")
    assert "1 report objects could not be read." in page
    # an index of another version (or garbage) is rebuilt from the reports
    local.put(INDEX_KEY, b'{"version": 99, "reports": {}}')
    assert len(update_fleet_index(store, now=NOW)["reports"]) == 2
    local.put(INDEX_KEY, b"garbage")
    assert len(update_fleet_index(store, now=NOW)["reports"]) == 2


# --- the page -------------------------------------------------------------------------------


def test_fleet_page_chart_issues_fingerprints_and_instances(samples):
    nd, oom, ubu = samples["null_deref"], samples["oom_panic"], samples["ubuntu"]
    reports = {
        # still on the affected el7 kernel: counted
        "a1": variant(nd, "i-bp1aaa", "2026-11-20T01:00:00Z", "e-a1"),
        "a2": variant(nd, "i-bp1aaa", "2026-11-25T01:00:00Z", "e-a2"),
        # crashed on the affected kernel, since seen on another kernel: upgraded, not counted
        "b1": variant(nd, "i-bp1bbb", "2026-11-21T01:00:00Z", "e-b1"),
        "b2": variant(oom, "i-bp1bbb", "2026-11-26T05:00:00Z", "e-b2", kernel="3.10.0-1160.90.1.el7.x86_64"),
        "c1": variant(ubu, "i-bp1ccc", "2026-11-26T06:00:00Z", "e-c1"),
        "d1": variant(oom, "i-bp1ddd", "2026-08-01T06:00:00Z", "e-d1"),  # outside the chart's 30 days
    }
    rows = {f"incidents/cn-hangzhou/{r['incident']['instance_id']}/{r['incident']['id']}/report.json": index_row(r, NOW)
            for r in reports.values()}
    page = render_fleet_html(index_of(rows), "en")
    assert_strict_page(page)
    chart = page[page.index("<svg"):page.index("</svg>")]
    titles = re.findall(r"<title>(\d{4}-\d\d-\d\d) (\w+) \([^)]*\): (\d+)</title>", chart)
    assert sorted(titles) == sorted([("2026-11-20", "null_deref", "1"), ("2026-11-25", "null_deref", "1"),
                                     ("2026-11-21", "null_deref", "1"), ("2026-11-26", "oom_panic", "1"),
                                     ("2026-11-26", "null_deref", "1")]), titles
    assert chart.count("<rect ") == 5 and "2026-08-01" not in chart
    issues = page[page.index('id="issues"'):page.index('id="top"')]
    rows_html = re.findall(r"<tr><td class=\"t\"><code>([\w-]+)</code>.*?</tr>", issues)
    assert rows_html == ["blk-mq-timeout-null-deref", "ubuntu-tcp-openreq-child-null-deref"]
    blk = issues[issues.index("blk-mq-timeout-null-deref"):issues.index("ubuntu-tcp-openreq-child-null-deref")]
    assert '<span class="badge bad">1</span>' in blk and "<b>3.10.0-1160.88.1.el7</b>" in blk and "i-bp1" not in blk
    top = page[page.index('id="top"'):page.index('id="instances"')]
    assert re.search(r'<td class="num"><b>3</b></td><td><code class="nowrap">null_deref</code>', top)
    assert "2026-11-20 01:00:00" in top and "2026-11-25 01:00:00" in top  # first and last seen
    inst = page[page.index('id="instances"'):]
    assert inst.index("i-bp1ccc") < inst.index("i-bp1bbb") < inst.index("i-bp1aaa") < inst.index("i-bp1ddd")
    assert "<summary>2 crashes</summary>" in inst
    assert 'href="../incidents/cn-hangzhou/i-bp1aaa/e-a2/report.html"' in inst
    linked = render_fleet_html(index_of(rows), "zh", link=lambda key: "https://example.invalid/" + key + "?sig=a&b=c")
    assert 'href="https://example.invalid/incidents/cn-hangzhou/i-bp1aaa/e-a2/report.html?sig=a&amp;b=c"' in linked
    assert "宕机总览" in linked and '<html lang="zh-CN">' in linked


def test_empty_store_page(tmp_path):
    store = LocalStore(tmp_path / "empty")
    summary = rebuild_fleet(store, "en", now=NOW)
    assert summary["reports"] == 0
    page = store.get(HTML_KEY).decode()
    assert_strict_page(page)
    assert "No report in the store yet." in page
    assert store.exists(INDEX_KEY)


def test_hostile_rows_stay_text(samples):
    r = variant(samples["null_deref"], "i-bp1evil", "2026-11-26T01:00:00Z", "e-evil")
    r["incident"]["instance_name"] = "<img src=x onerror=alert(1)>"
    r["diagnosis"]["title"] = "<script>document.title='pwned'</script> in [x](http://evil)"
    rows = {"incidents/cn-hangzhou/i-bp1evil/e-evil/report.json": index_row(r, NOW)}
    page = render_fleet_html(index_of(rows), "en")
    assert_strict_page(page)
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page and "&lt;img src=x" in page
    md = daily_digest(index_of(rows), "2026-11-26", "en")["markdown"]
    assert not re.search(r"(?<!\\)[<>]", md), md
    assert "\\<script\\>document" in md and "\\[x\\]\\(http\\://evil\\)" in md


# --- the digest -----------------------------------------------------------------------------


def test_daily_digest_new_fingerprints_first(samples):
    nd, oom = samples["null_deref"], samples["oom_panic"]
    rs = [variant(oom, "i-bp1old01", "2026-11-20T03:00:00Z", "e-1"),
          variant(oom, "i-bp1old01", "2026-11-26T03:00:00Z", "e-2"),
          variant(oom, "i-bp1old02", "2026-11-26T04:00:00Z", "e-3"),
          variant(oom, "i-bp1old03", "2026-11-26T05:00:00Z", "e-4"),
          variant(nd, "i-bp1new01", "2026-11-26T06:00:00Z", "e-5"),
          variant(nd, "i-bp1new01", "2026-11-27T06:00:00Z", "e-6")]
    rows = {f"incidents/cn-hangzhou/{r['incident']['instance_id']}/{r['incident']['id']}/report.json": index_row(r, NOW) for r in rs}
    d = daily_digest(index_of(rows), dt.date(2026, 11, 26), "en", link=lambda k: "https://x.invalid/" + k + "?a=(1)")
    assert (d["day"], d["crashes"], d["instances"], d["new_fingerprints"]) == ("2026-11-26", 4, 4, 1)
    assert [(g["kind"], g["count"], g["new"]) for g in d["groups"]] == [("null_deref", 1, True), ("oom_panic", 3, False)]
    assert d["groups"][1]["first_seen"] == "2026-11-20"
    assert d["groups"][0]["upgrade_to"] == "3.10.0-1160.88.1.el7"
    md = d["markdown"]
    assert md.startswith("## ECS crash digest for 2026\\-11\\-26\n")
    assert md.index("### New") < md.index("blk\\_mq\\_rq\\_timed\\_out") < md.index("### Seen before") < md.index("panic\\_on\\_oom")
    assert "3 crashes on 3 instances" in md and "upgrade to 3\\.10\\.0\\-1160\\.88\\.1\\.el7" in md
    assert "(https://x.invalid/incidents/cn-hangzhou/i-bp1new01/e-5/report.html?a=%281%29)" in md
    zh = daily_digest(index_of(rows), "2026-11-26", "zh")
    assert "宕机日报" in zh["title"] and "新出现" in zh["markdown"] and "](" not in zh["markdown"]
    empty = daily_digest(index_of(rows), "2026-11-01", "en")
    assert empty["crashes"] == 0 and empty["groups"] == [] and "No instance crashed on 2026\\-11\\-01" in empty["markdown"]


# --- the function and the command -------------------------------------------------------------


def test_fleet_function_handler(tmp_path, monkeypatch):
    replay_events(tmp_path / "s", "eventbridge-crash-kdump-executing.json")
    for name in ("OSS_BUCKET", "CRASHDIAG_LANG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRASHDIAG_STORE_DIR", str(tmp_path / "s"))
    spec = importlib.util.spec_from_file_location("fleet_index", ROOT / "functions" / "fleet" / "index.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = json.loads(mod.handler(b"{}", None))
    assert out["reports"] == 1 and out["read"] == 1 and out["page"] == HTML_KEY
    page = (tmp_path / "s" / HTML_KEY).read_text()
    assert (tmp_path / "s" / "incidents").resolve().as_uri() in page  # links made by the store
    assert json.loads(mod.handler(b"{}", None))["read"] == 0


def test_cli_fleet(tmp_path):
    replay_events(tmp_path / "s", "eventbridge-crash-kdump-executing.json", "eventbridge-crash-oom-messages.json")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shared"))
    env.pop("CRASHDIAG_LANG", None)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "crashdiag.cli", "fleet", *args], capture_output=True, text=True, env=env, cwd=ROOT)

    p = run("--store", str(tmp_path / "s"), "--out", str(tmp_path / "o"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("2 reports (2 new)")
    page = (tmp_path / "o" / "index.html").read_text()
    assert_strict_page(page)
    assert "i-bp1kdumpel7demo01" in page and "i-bp1oompanic0002" in page
    assert run("--store", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--lang", "zh").stdout.strip().endswith("(0 new)")
    assert "宕机总览" in (tmp_path / "o" / "index.html").read_text()
    p = run("--store", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "no such store" in p.stderr


def test_daily_digest_reaches_the_robot_once(tmp_path):
    """The fleet function's daily run: yesterday's crashes grouped by fingerprint, posted to
    a DingTalk stand-in that checks the signature; a second run for the same day sends nothing."""
    import datetime as dt
    import json as _json

    from crashdiag.notify.digest import send_daily_digest
    from crashdiag.replay import build_local_pipeline
    from crashdiag.reports.fleet import update_fleet_index
    from crashdiag.settings import Settings
    from standins.dingtalk import DingTalkStandIn

    root = Path(__file__).resolve().parents[1]
    settings = Settings(store_dir=str(tmp_path / "store"), instances_dir=str(root / "events" / "instances"),
                        collect_poll_seconds=0.01)
    pipeline = build_local_pipeline(settings)
    for name in ("eventbridge-crash-kdump-executing.json", "eventbridge-crash-journal-only.json"):
        pipeline.ingest((root / "events" / name).read_bytes())
    update_fleet_index(pipeline.store)
    index = _json.loads(pipeline.store.get("fleet/index.json"))
    day = dt.date.fromisoformat(str(next(iter(index["reports"].values()))["time"])[:10])
    with DingTalkStandIn(secret="SECdigest-secret", keyword="crash") as robot:
        s = Settings(dingtalk_webhook=robot.webhook, dingtalk_secret=robot.secret, dingtalk_keyword="crash")
        first = send_daily_digest(pipeline.store, s, day)
        again = send_daily_digest(pipeline.store, s, day)
        assert first["status"] == "sent" and again["status"] == "already sent"
        [text] = robot.texts()
    assert "blk" in text and "css" in text and "crash" in text


def test_a_forged_newest_report_cannot_rewrite_what_a_group_says_about_the_fix(samples):
    """Three instances crash on the affected el7 kernel; then one guest writes a log that
    claims a fixed kernel (or an affected one with another target) with the same
    fingerprint. The group keeps saying affected, upgrade to the real target for three of
    its four instances: each instance speaks for its own kernel only."""
    nd = samples["null_deref"]
    target = "3.10.0-1160.88.1.el7"
    genuine = [variant(nd, f"i-bp1real0{n}", f"2026-11-26T0{n}:00:00Z", f"e-{n}") for n in (1, 2, 3)]
    assert all(index_row(r, NOW)["upgrade_to"] == target for r in genuine)
    fixed = variant(nd, "i-bp1evil01", "2026-11-26T09:00:00Z", "e-9", kernel="3.10.0-1160.99.1.el7",
                    fix_status="fixed", fix_detail="the running kernel carries the fix")
    elsewhere = variant(nd, "i-bp1evil02", "2026-11-26T09:30:00Z", "e-10", kernel="3.10.0-1.el7",
                        fix_status="affected", fix_detail="affected (el7 9.9.9-evil.el7)")
    for forged, want in ((fixed, f"{target} (3/4)"), (elsewhere, f"{target} (3/4), 9.9.9-evil.el7 (1/4)")):
        rows = {f"incidents/cn-hangzhou/{r['incident']['instance_id']}/{r['incident']['id']}/report.json": index_row(r, NOW)
                for r in (*genuine, forged)}
        d = daily_digest(index_of(rows), "2026-11-26", "en")
        [g] = d["groups"]
        assert g["latest_key"].endswith(f"/{forged['incident']['id']}/report.json")  # the forged report is the newest
        assert (g["fix_status"], g["upgrade_to"]) == ("affected", want)
        assert "upgrade to " + target.replace(".", "\\.").replace("-", "\\-") in d["markdown"]
        page = render_fleet_html(index_of(rows), "en")
        assert f"Upgrade to {want}" in page
