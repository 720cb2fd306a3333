"""The eight ways issue #14 found to lose an incident, each with the test named after it.

These drive the real pipeline over a LocalStore and the in-process simulated ECS (the
same model the ECS stand-in serves); faults are the provider's: a store whose write lands
but whose reply is lost, an invoker that FC refuses, a function killed between two writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crashdiag.cloud.invoke import InvokeError
from crashdiag.cloud.simulate import SimulatedCloud
from crashdiag.cloud.store import LocalStore, StoreUnavailable
from crashdiag.pipeline.stages import ClaimHeld, Pipeline, open_key
from crashdiag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
PREFIX = "incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-bp1crash0kdump01/"
REF = {"region": "cn-hangzhou", "instance_id": "i-bp1kdumpel7demo01", "incident_id": "e-bp1crash0kdump01"}


class Wall:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class Queue:
    """FC's async invocation queue: invocations are kept, the test runs them."""

    def __init__(self, refuse: int = 0) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.refuse = refuse

    def invoke_async(self, function: str, payload: bytes) -> None:
        if self.refuse:
            self.refuse -= 1
            raise InvokeError(f"async invocation of {function} failed (429)")
        self.calls.append((function, payload))


class LostReplies(LocalStore):
    """OSS where a conditional PUT lands but its reply is lost (the connection resets after
    the server wrote the object), for the keys named."""

    def __init__(self, root, keys_ending: tuple[str, ...]) -> None:
        super().__init__(root)
        self.keys_ending, self.lost = keys_ending, []

    def put(self, key, data, *, content_type="application/octet-stream", if_absent=False):
        super().put(key, data, content_type=content_type, if_absent=if_absent)
        if if_absent and key.endswith(self.keys_ending) and key not in self.lost:
            self.lost.append(key)
            raise StoreUnavailable(f"oss put {key!r}: request failed (ConnectionResetError)")


def event(name: str = "eventbridge-crash-kdump-executing.json", **changes) -> dict:
    ev = json.loads((EVENTS / name).read_text())
    (ev.get("data") or ev.get("content")).update(changes)
    return ev


@pytest.fixture
def wall() -> Wall:
    return Wall()


def make(tmp_path: Path, wall: Wall, store=None, invoker=None, **settings) -> Pipeline:
    s = Settings(collect_wait_seconds=30, collect_poll_seconds=0.5, collect_command_timeout=60, lang="en", **settings)
    cloud = SimulatedCloud.from_dir(EVENTS / "instances")
    return Pipeline(store or LocalStore(tmp_path / "store"), cloud, invoker if invoker is not None else Queue(), s,
                    clock=wall, sleep=wall.sleep, wall=wall)


def test_stale_collect_claim_makes_a_retry_fail_until_its_lease_ends_then_is_taken_over(tmp_path, wall):
    p = make(tmp_path, wall)
    p.ingest(json.dumps(event()))
    # collect claimed and died (timeout, OOM): its claim stays, with a lease
    p.claim(PREFIX, "collect", "req-dead", p.settings.collect_lease_seconds, p.settings.stage_max_attempts)
    with pytest.raises(ClaimHeld):  # FC's retry inside the lease fails: FC tries again later
        p.collect(dict(REF), owner="req-retry")
    assert not p.store.exists(f"{PREFIX}crash.log")
    wall.t += p.settings.collect_lease_seconds + 1
    result = p.collect(dict(REF), owner="req-retry")
    assert result["method"] == "kdump" and p.store.exists(f"{PREFIX}crash.log")
    assert [n for n, _ in p.claims(PREFIX, "collect")] == [1, 2]


def test_write_order_collect_json_without_crash_log_is_collected_again(tmp_path, wall):
    p = make(tmp_path, wall)
    p.ingest(json.dumps(event()))
    # an old build died between collect.json and crash.log
    p.store.put(f"{PREFIX}collect.json", json.dumps({"method": "kdump", "complete": True}).encode())
    result = p.collect(dict(REF), owner="req-2")
    assert result["method"] == "kdump" and p.store.exists(f"{PREFIX}crash.log")
    assert "collected" in p.states(PREFIX)


def test_write_order_failed_collection_without_report_json_writes_it_on_retry(tmp_path, wall):
    p = make(tmp_path, wall)
    p.ecs.instances["i-bp1kdumpel7demo01"].error_code = "ClientNotResponse"
    p.ecs.instances["i-bp1kdumpel7demo01"].console = None
    p.ingest(json.dumps(event()))
    p.store.put(f"{PREFIX}collect.json", json.dumps({"failure": {"reason": "x", "advice": "y"}}).encode())
    p.collect(dict(REF), owner="req-2")
    report = json.loads(p.store.get(f"{PREFIX}report.json"))
    assert report["failure"]["reason"].startswith("no crash log could be collected")
    assert p.states(PREFIX)[-1] == "failed"


def test_claim_before_invoke_a_refused_invoke_is_started_by_the_next_delivery(tmp_path, wall):
    q = Queue(refuse=1)
    p = make(tmp_path, wall, invoker=q)
    with pytest.raises(InvokeError):  # raised after the batch, so EventBridge redelivers
        p.ingest(json.dumps(event()))
    assert p.store.exists(f"{PREFIX}event.json") and p.states(PREFIX) == []
    assert p.store.exists(open_key(PREFIX))  # and the reconciler knows of it meanwhile
    # the Executed event (or EventBridge's redelivery) is not a mere duplicate: it starts collect
    s = p.ingest(json.dumps(event("cloudmonitor-crash-kdump-executed.json")))
    assert s.resumed == [PREFIX] and [f for f, _ in q.calls] == ["collect"]
    assert p.states(PREFIX) == ["received"]
    s = p.ingest(json.dumps(event()))  # now it is one
    assert s.duplicates == [PREFIX] and len(q.calls) == 1


def test_ambiguous_conditional_create_reads_the_claim_back_and_goes_on(tmp_path, wall):
    store = LostReplies(tmp_path / "store", ("/event.json", "/claims/collect/001.json"))
    q = Queue()
    p = make(tmp_path, wall, store=store, invoker=q)
    s = p.ingest(json.dumps(event()))
    assert s.accepted == [PREFIX] and not s.duplicates  # our own write, not someone else's claim
    assert [f for f, _ in q.calls] == ["collect"]
    result = p.collect(dict(REF), owner="req-c")  # the claim's 409 was ours too: no "in progress"
    assert result["method"] == "kdump"
    assert store.lost == [f"{PREFIX}event.json", f"{PREFIX}claims/collect/001.json"]
    assert [n for n, _ in p.claims(PREFIX, "collect")] == [1]


def test_a_bad_event_costs_only_itself_not_the_batch(tmp_path, wall):
    q = Queue()
    p = make(tmp_path, wall, invoker=q)
    batch = [event(eventId="."), event(eventId=".."), event(eventId="e-good000001"),
             event(eventId="e-surrogate01"), event(eventId="e-good000002")]
    batch[3]["data"]["instanceName"] = "\ud800 lone"
    raw = json.dumps(batch)  # json keeps the lone surrogate as \\ud800
    s = p.ingest(raw)
    ok = {f"incidents/cn-hangzhou/i-bp1kdumpel7demo01/{e}/" for e in ("e-good000001", "e-good000002")}
    assert ok <= set(s.accepted)
    assert len(s.rejected) + len(s.accepted) == 5
    for r in s.rejected:  # every bad one recorded, saying why
        assert p.store.exists(r["record"]) and r["reason"]
    assert len([r for r in s.rejected if "." in r["reason"]]) >= 2


def run_queue(p: Pipeline, q: Queue, owner: str = "req-q") -> None:
    """Run what FC has queued (collect, diagnose, notify), as FC would; the OSS triggers of
    crash.log and report.json fire when those objects appear."""
    while q.calls:
        function, payload = q.calls.pop(0)
        body = json.loads(payload)
        if function == "collect":
            p.collect(body, owner=owner)
            prefix = f"incidents/{body['region']}/{body['instance_id']}/{body['incident_id']}/"
            if p.store.exists(f"{prefix}crash.log"):
                q.calls.append(("diagnose", json.dumps({"key": f"{prefix}crash.log"}).encode()))
            elif p.store.exists(f"{prefix}report.json"):
                q.calls.append(("notify", json.dumps({"key": f"{prefix}report.json"}).encode()))
        elif function == "diagnose":
            p.diagnose(body["key"], owner=owner)
            q.calls.append(("notify", json.dumps({"key": body["key"].replace("crash.log", "report.json")}).encode()))
        elif function == "notify":
            p.notify(body["key"])


def test_diagnose_that_never_finishes_ends_in_a_failure_report_that_is_told(tmp_path, wall):
    from crashdiag.pipeline.reconcile import Reconciler

    q = Queue()
    p = make(tmp_path, wall, invoker=q, outbox_dir=str(tmp_path / "outbox"))
    p.ingest(json.dumps(event()))
    p.collect(dict(REF), owner="req-c")
    q.calls.clear()
    rec = Reconciler(p, workers=2)
    # every diagnose dies (out of memory on a hostile log): FC's try and two retries claim and die
    for n in range(p.settings.stage_max_attempts):
        p.claim(PREFIX, "diagnose", f"req-d{n}", p.settings.diagnose_lease_seconds, p.settings.stage_max_attempts)
        wall.t += p.settings.diagnose_lease_seconds + 1
    wall.t += p.settings.ingest_deadline
    summary = rec.run()
    assert summary["actions"] == {"failed (diagnose)": 1}
    report = json.loads(p.store.get(f"{PREFIX}report.json"))
    assert report["failure"]["reason"].startswith("diagnosis did not finish after 4 attempts")
    assert p.store.exists(f"{PREFIX}crash.log")  # the log is kept for a human
    p.notify(f"{PREFIX}report.json")  # the report.json trigger
    assert "notified" in p.states(PREFIX) and not p.store.exists(open_key(PREFIX))
    sent = sorted(x.name.split(".")[-1] for x in (tmp_path / "outbox").iterdir())
    assert sent == ["eml", "json"]  # told once per channel


def test_stale_collect_claim_with_no_retry_left_is_restarted_by_the_reconciler(tmp_path, wall):
    from crashdiag.pipeline.reconcile import Reconciler

    q = Queue()
    p = make(tmp_path, wall, invoker=q, outbox_dir=str(tmp_path / "outbox"))
    p.ingest(json.dumps(event()))
    q.calls.clear()  # collect ran, claimed, died; FC's retries all found the live lease and failed
    p.claim(PREFIX, "collect", "req-dead", p.settings.collect_lease_seconds, p.settings.stage_max_attempts)
    rec = Reconciler(p, workers=2)
    wall.t += p.settings.ingest_deadline + 1
    assert rec.run()["actions"] == {"collect running": 1}  # the lease is live: come back when it ends
    assert not q.calls
    wall.t += p.settings.collect_lease_seconds
    assert rec.run()["actions"] == {"restarted collect": 1}
    run_queue(p, q)
    assert json.loads(p.store.get(f"{PREFIX}report.json"))["diagnosis"]["kind"] == "null_deref"
    assert p.states(PREFIX)[-1] == "notified" and not p.store.exists(open_key(PREFIX))
    assert rec.run() == {"open": 0, "due": 0, "actions": {}}


def test_claim_before_invoke_refused_for_good_is_started_by_the_reconciler(tmp_path, wall):
    from crashdiag.pipeline.reconcile import Reconciler

    q = Queue(refuse=1)
    p = make(tmp_path, wall, invoker=q, outbox_dir=str(tmp_path / "outbox"))
    with pytest.raises(InvokeError):
        p.ingest(json.dumps(event()))  # and EventBridge's redeliveries never came
    wall.t += p.settings.ingest_deadline + 1
    assert Reconciler(p, workers=2).run()["actions"] == {"started collect": 1}
    run_queue(p, q)
    assert p.states(PREFIX)[-1] == "notified"


class Counting(LocalStore):
    """A LocalStore that counts requests by kind and prefix, like OSS's access log would."""

    def __init__(self, root) -> None:
        super().__init__(root)
        from collections import Counter

        self.calls: Counter = Counter()

    def list(self, prefix):
        self.calls["list " + prefix.split("/")[0] + ("/pending" if prefix.startswith("notify/pending") else "")] += 1
        return super().list(prefix)

    def get(self, key):
        self.calls["get"] += 1
        return super().get(key)

    def put(self, key, data, **kw):
        self.calls["put"] += 1
        return super().put(key, data, **kw)


def owed_notices(tmp_path: Path, wall: Wall, n: int, **settings):
    from crashdiag.notify import build_notifier

    store = Counting(tmp_path / "store")
    s = Settings(lang="en", notify_burst=0, outbox_dir=str(tmp_path / "outbox"), **settings)  # a storm: all held for the flush
    notifier = build_notifier(s, store, outbox_dir=s.outbox_dir, now=wall, sleep=wall.sleep)
    for i in range(n):
        prefix = f"incidents/cn-hangzhou/i-flush{i:08d}/e-flush{i:08d}/"
        report = {"diagnosis": {"kind": "null_deref", "title": "NULL pointer dereference", "fingerprint": f"fp{i % 7}"},
                  "incident": {"instance_id": f"i-flush{i:08d}", "region": "cn-hangzhou"}}
        store.put(f"{prefix}report.json", json.dumps(report).encode())
        notifier.notify_report(f"{prefix}report.json")
    return store, notifier


def test_flush_at_scale_lists_the_outbox_once_and_tells_every_owed_notice(tmp_path, wall):
    n = 600
    store, notifier = owed_notices(tmp_path, wall, n)
    store.calls.clear()
    wall.t += 61
    summaries = notifier.flush()
    assert len(summaries) == n and all(s["complete"] and s["told"] for s in summaries)
    assert store.calls["list notify/pending"] == 1  # one listing, not one per day and channel
    per_notice = (store.calls["get"] + store.calls["put"] + store.calls["list incidents"]) / n
    assert per_notice < 20, store.calls
    assert sorted(p.suffix for p in (tmp_path / "outbox").iterdir()) == [".eml", ".json"]  # one digest per channel
    store.calls.clear()
    assert notifier.flush() == [] and store.calls["list notify/pending"] == 1 and store.calls["get"] == 0  # nothing owed now
    assert store.list("notify/pending/") == []  # settled pointers are dropped


def test_flush_at_scale_a_notice_owed_for_days_gets_a_last_attempt_then_a_record(tmp_path, wall):
    from crashdiag.notify.notifier import OUTBOX_DAYS

    # a robot nobody answers (connection refused): every attempt fails, none counts against the
    # (huge) attempt budget in time
    store, notifier = owed_notices(tmp_path, wall, 3, notify_max_attempts=1000, notify_timeout=1.0,
                                   dingtalk_webhook="http://127.0.0.1:9/robot/send?access_token=nobody")
    wall.t += OUTBOX_DAYS * 86400 + 1
    summaries = notifier.flush()
    assert len(summaries) == 3
    for s in summaries:
        robot, mail = s["channels"]["dingtalk"], s["channels"]["email"]
        assert robot["status"] == "gave_up" and robot["done"]["detail"].startswith("expired: still unsent after 2 days")
        assert robot["attempts"][-1]["outcome"] == "failed"  # the last attempt is on the record
        assert mail["status"] == "sent"
        assert s["complete"] and s["told"]
