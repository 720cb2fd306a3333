"""Many regions and accounts, one store: two stacks (cn-hangzhou in one account, cn-shanghai
in another) write their incidents and audits into one central store, and one fleet view
shows both with region and account."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from crashdiag.cloud.ecs_fleet import SimulatedFleet
from crashdiag.cloud.store import LocalStore
from crashdiag.pipeline.audit import run_audit, store_results
from crashdiag.pipeline.runtime import build_store
from crashdiag.replay import replay
from crashdiag.reports.fleet import update_fleet_index
from crashdiag.reports.readiness import load_readiness
from crashdiag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INSTANCES = ROOT / "events" / "instances"
HZ, SH = ("cn-hangzhou", "1234567890123456"), ("cn-shanghai", "6543210987654321")


def central_store(tmp_path: Path) -> LocalStore:
    """What two stacks leave in one central store: an incident and a day's audit each."""
    store_dir = tmp_path / "central"
    for event, (_region, account) in (("eventbridge-crash-kdump-executing.json", HZ),
                                      ("eventbridge-crash-shanghai-second-account.json", SH)):
        settings = Settings.from_env({}, store_dir=str(store_dir), instances_dir=str(INSTANCES), lang="en",
                                     collect_poll_seconds=0.05, collect_wait_seconds=2, account_id=account)
        replay((ROOT / "events" / event).read_bytes(), settings)
    store = LocalStore(store_dir)
    fleet = SimulatedFleet.from_dir(str(INSTANCES))
    today = dt.datetime.now(dt.timezone.utc)
    for region, account in (HZ, SH):
        results = run_audit(fleet, region, fleet.list_instances(region, ("crashdiag:audit", "true")), account=account,
                            now=today, sleep=lambda _s: None, poll=0.0)
        store_results(store, results, today.strftime("%Y-%m-%d"), region, account)
    return store


def test_two_regions_and_two_accounts_in_one_store(tmp_path):
    store = central_store(tmp_path)
    index = update_fleet_index(store)
    rows = {r["instance"]: r for r in index["reports"].values()}
    assert rows["i-bp1kdumpel7demo01"]["region"] == "cn-hangzhou" and rows["i-bp1kdumpel7demo01"]["account"] == HZ[1]
    assert rows["i-uf6shanghai00007"]["region"] == "cn-shanghai" and rows["i-uf6shanghai00007"]["account"] == SH[1]
    view = load_readiness(store)
    assert view["regions"] == ["cn-hangzhou", "cn-shanghai"] and view["accounts"] == sorted([HZ[1], SH[1]])
    accounts = {r["instance_id"]: (r["region"], r["account"]) for r in view["instances"]}
    assert accounts["i-uf6shanghai00007"] == SH and accounts["i-bp1rdyhealthy001"] == HZ
    report = json.loads(store.get(next(k for k in store.list("incidents/cn-shanghai/") if k.endswith("report.json"))))
    assert report["incident"]["account"] == SH[1]


def test_a_central_bucket_in_another_region_is_reached_through_its_public_endpoint():
    creds = {"access_key_id": "id", "access_key_secret": "secret"}
    local = build_store(Settings.from_env({}, oss_bucket="central", region="cn-hangzhou", **creds))
    assert local.bucket.endpoint == "https://oss-cn-hangzhou-internal.aliyuncs.com"
    away = build_store(Settings.from_env({}, oss_bucket="central", region="cn-shanghai", oss_bucket_region="cn-hangzhou", **creds))
    assert away.bucket.endpoint == "https://oss-cn-hangzhou.aliyuncs.com"
    url = away.put_url("incidents/cn-shanghai/i-x/e-1/crash.log", 900)
    assert url.startswith("https://central.oss-cn-hangzhou.aliyuncs.com/")  # the guest in Shanghai can reach it
    assert "cn-hangzhou" in url  # signed V4 for the bucket's region
