"""Faults injected into the stand-ins: every incident still ends once, as a report or as
a recorded failure that says why (issue: reliability under faults)."""

from __future__ import annotations

import json
import threading

from fixtures_world import event, instances, report_of, world  # noqa: F401

from crashdiag.pipeline.stages import ClaimHeld
from fixtures_oss import oss_standin, oss_store  # noqa: F401

KDUMP = "i-bp1kdumpel7demo01"
BOOTLOOP = "i-bp1bootloop00004"
REF = {"region": "cn-hangzhou", "instance_id": KDUMP, "incident_id": "e-bp1crash0kdump01"}


def collect_json(w, prefix: str) -> dict:
    return json.loads(w.store.get(f"{prefix}collect.json"))


def ends_once(w, prefix: str) -> str:
    """The incident's last state, after checking it reached exactly one ending."""
    states = w.pipeline.states(prefix)
    assert states[0] == "received" and states.count("failed") <= 1
    assert ("diagnosed" in states) != ("failed" in states), states  # a failure has a report too, but no diagnosis
    return states[-1]


def test_delivery_timeout_falls_back_to_the_console(world):
    world.cloud.instances[BOOTLOOP].agent_online = True
    world.cloud.instances[BOOTLOOP].error_code = "DeliveryTimeout"
    [prefix] = world.ingest(event("eventbridge-system-failure-bootloop.json")).accepted
    c = collect_json(world, prefix)
    assert c["method"] == "console"
    assert any(a.get("error") == "DeliveryTimeout" for a in c["attempts"])
    assert ends_once(world, prefix) == "diagnosed"


def test_execution_timeout_with_no_usable_output_falls_back(world):
    world.cloud.instances[BOOTLOOP].agent_online = True
    world.cloud.instances[BOOTLOOP].error_code = "ExecutionTimeout"
    [prefix] = world.ingest(event("eventbridge-system-failure-bootloop.json")).accepted
    assert collect_json(world, prefix)["method"] == "console"


def test_invocation_that_stays_running_forever_is_bounded(world):
    world.cloud.instances[BOOTLOOP].agent_online = True
    world.cloud.instances[BOOTLOOP].running_polls = 10**9
    [prefix] = world.ingest(event("eventbridge-system-failure-bootloop.json")).accepted
    c = collect_json(world, prefix)
    assert any(a.get("error") == "invocation never finished" for a in c["attempts"])
    assert c["method"] == "console"
    polls = world.ecs_server.count("DescribeInvocationResults")
    assert 3 <= polls < 200  # backoff, not a hot loop


def test_nothing_to_collect_is_a_recorded_failure_with_advice(world):
    world.cloud.instances[KDUMP].error_code = "ClientNotResponse"
    world.cloud.instances[KDUMP].console = None
    [prefix] = world.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    assert ends_once(world, prefix) == "failed"
    failed = json.loads(world.store.get(f"{prefix}state/90-failed.json"))
    assert "no crash log could be collected" in failed["reason"] and failed["advice"]


def test_instance_released_mid_collection(world):
    world.ecs_server.inject("RunCommand", None, "InvalidInstanceId.NotFound", 404)
    world.ecs_server.inject("GetInstanceConsoleOutput", None, "InvalidInstanceId.NotFound", 404)
    [prefix] = world.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    assert ends_once(world, prefix) == "failed"
    failed = json.loads(world.store.get(f"{prefix}state/90-failed.json"))
    assert "InvalidInstanceId.NotFound" in failed["reason"]


def test_connection_reset_and_slow_reply_are_retried(world):
    world.ecs_server.reset_connection("RunCommand", 1)
    world.ecs_server.delay("DescribeInvocationResults", 1.5, times=1)
    world.pipeline.ecs.read_timeout = 0.5
    world.pipeline.ecs._clients.clear()
    [prefix] = world.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    assert report_of(world, prefix)["diagnosis"]["kind"] == "null_deref"
    # The retried RunCommand carried the same ClientToken: the guest ran the script once.
    assert sum(1 for c in world.cloud.calls if c[0] == "RunCommand") == 1


def test_two_invocations_for_one_incident_at_once(world):
    world.pipeline.invoker = None  # ingest only; the two "FC invocations" are ours
    [prefix] = world.pipeline.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    world.cloud.instances[KDUMP].running_polls = 2
    results, held = [], []

    def run():
        try:
            results.append(world.pipeline.collect(dict(REF)))
        except ClaimHeld as exc:  # the loser fails, so FC retries it later (not a silent success)
            held.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and len(held) == 1 and results[0]["method"] == "kdump"
    assert sum(1 for c in world.cloud.calls if c[0] == "RunCommand") == 1
    assert world.store.exists(f"{prefix}crash.log")


def test_a_retry_after_a_timeout_resumes(world):
    """FC killed collect halfway (after the claim, before crash.log): the retry, once the
    claim is older than a whole collection, takes over and finishes."""
    world.pipeline.invoker = None
    [prefix] = world.pipeline.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    stale = {"stage": "collect", "owner": "a-dead-invocation", "token": "t", "at": 0, "lease_until": 1}
    world.store.put(f"{prefix}claims/collect/001.json", json.dumps(stale).encode(), if_absent=True)
    result = world.pipeline.collect(dict(REF))
    assert result["method"] == "kdump"
    world.pipeline.diagnose(f"{prefix}crash.log")
    assert ends_once(world, prefix) == "diagnosed"


def test_oss_failing_for_good_raises_for_fc_to_retry(world, oss_standin):  # noqa: F811
    """A store that stays down is not swallowed: the invocation fails, FC retries it and
    finally hands it to the on-failure destination (template.yml)."""
    import pytest

    from crashdiag.cloud.store import StoreUnavailable

    oss_standin.fail_next(50, status=503)
    with pytest.raises(StoreUnavailable):
        world.pipeline.ingest(event("eventbridge-crash-kdump-executing.json"))


def test_a_failed_collection_still_gets_a_report_that_says_why(world):
    world.cloud.instances[KDUMP].error_code = "ClientNotResponse"
    world.cloud.instances[KDUMP].console = None
    [prefix] = world.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    rep = report_of(world, prefix)
    assert rep["failure"]["reason"].startswith("no crash log could be collected") and rep["failure"]["advice"]
    assert rep["diagnosis"]["kind"] == "none" and rep["incident"]["instance_id"] == KDUMP
    assert b"no crash log could be collected" in world.store.get(f"{prefix}report.md")
    assert world.store.exists(f"{prefix}report.html")
