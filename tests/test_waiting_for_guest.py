"""An incident that waits for its guest while kdump saves a large dump (issue #17).

Whole pipeline in-process over the simulated instances: the capture outlasts several
function timeouts, the incident waits as a state (no function sleeps through it), the
reconciler comes back, and the report comes from vmcore-dmesg.txt; a hung capture ends at
its stall limit with a diagnosis from the console and the reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from crashdiag.cloud.store import LocalStore
from crashdiag.replay import SimulatedTime, _event_time, build_local_pipeline, replay
from crashdiag.reports.fleet import rebuild_fleet
from crashdiag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
LONG = EVENTS / "eventbridge-crash-capture-long.json"
PREFIX = "incidents/cn-hangzhou/i-bp1bigcapture0007/e-bp1capture0long7/"


def settings_for(tmp_path: Path, **over) -> Settings:
    instances = tmp_path / "instances"
    if not instances.exists():
        shutil.copytree(EVENTS / "instances", instances, symlinks=True, ignore=shutil.ignore_patterns("*.py"))
    return Settings(store_dir=str(tmp_path / "store"), instances_dir=str(instances), outbox_dir=str(tmp_path / "outbox"),
                    collect_poll_seconds=0.05, **over)


def test_a_waiting_incident_is_a_state_in_the_store_and_on_the_fleet_page(tmp_path):
    s = settings_for(tmp_path)
    payload = LONG.read_bytes()
    clock = SimulatedTime(_event_time(payload) + 60)
    p = build_local_pipeline(s, clock=clock)
    p.ingest(payload)
    store = LocalStore(s.store_dir)
    assert "waiting" in p.states(PREFIX) and not store.exists(f"{PREFIX}crash.log")
    w = json.loads(store.get(f"{PREFIX}waiting.json"))
    assert w["memory_gib"] == 512 and w["capture"]["phase"] in ("saving_vmcore", "capture_booting")
    assert w["instance_status"] == "Running" and w["agent_online"] is False
    marker = p.open_marker(PREFIX)
    assert marker["why"].startswith("waiting for the guest") and marker["next_check"] > clock()
    # the claim was released: a wait is not a dead attempt
    (claim,) = [c for _, c in p.claims(PREFIX, "collect")]
    assert claim["released"] is True
    assert clock() - (_event_time(payload) + 60) < 1  # nobody slept
    # people were told early, once per channel (the outbox stands in for both)
    early = sorted(f.name for f in (tmp_path / "outbox").iterdir())
    assert len(early) == 2 and all(".early" in n for n in early)
    page = (tmp_path / "store" / rebuild_fleet(store)["page"]).read_text()
    assert 'id="waiting"' in page and "i-bp1bigcapture0007" in page and "512 GB" in page


def test_a_capture_longer_than_several_timeouts_ends_with_vmcore_dmesg(tmp_path):
    s = settings_for(tmp_path)
    result = replay(LONG.read_bytes(), s)
    (inc,) = result["incidents"]
    assert inc["states"] == ["received", "collecting", "waiting", "collected", "diagnosed", "notified"]
    assert inc["waited"]["minutes"] >= 30 and inc["waited"]["checks"] > 3  # > several 600 s function timeouts
    rep = inc["diagnosis"]
    assert rep["collection"]["method"] == "kdump" and rep["diagnosis"]["kind"] == "null_deref"
    collect = json.loads((tmp_path / "store" / PREFIX / "collect.json").read_text())
    assert collect["waited"]["last_seen"].startswith("kdump is saving the vmcore")
    outbox = sorted(f.name for f in (tmp_path / "outbox").iterdir())
    # one early notice and one report per channel, whatever the number of checks
    assert len([n for n in outbox if ".early" in n]) == 2 and len([n for n in outbox if ".early" not in n]) == 2
    assert not LocalStore(s.store_dir).exists("open/cn-hangzhou/i-bp1bigcapture0007/e-bp1capture0long7.json")


def test_a_hung_capture_ends_with_the_console_and_the_reason(tmp_path):
    s = settings_for(tmp_path, collect_wait_seconds=60)
    result = replay((EVENTS / "eventbridge-crash-capture-hung.json").read_bytes(), s)
    (inc,) = result["incidents"]
    rep = inc["diagnosis"]
    assert rep["collection"]["method"] == "console"
    assert rep["diagnosis"]["kind"] == "null_deref"  # the panic was still on the console
    notes = " ".join(rep["collection"].get("notes") or [])
    assert "no progress" in notes and "hung" in notes


def test_a_capture_that_outlives_the_deadline_is_diagnosed_from_the_console(tmp_path):
    s = settings_for(tmp_path, guest_wait_minutes=30, capture_stall_minutes=10_000, collect_wait_seconds=60)
    result = replay(LONG.read_bytes(), s)
    (inc,) = result["incidents"]
    assert inc["diagnosis"]["collection"]["method"] == "console"
    assert "deadline" in " ".join(inc["diagnosis"]["collection"].get("notes") or [])


def test_the_early_notice_can_be_turned_off(tmp_path):
    s = settings_for(tmp_path, early_notice=False)
    replay(LONG.read_bytes(), s)
    assert not [f for f in (tmp_path / "outbox").iterdir() if ".early" in f.name]
