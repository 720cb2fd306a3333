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
