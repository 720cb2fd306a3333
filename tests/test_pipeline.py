"""The pipeline end to end over real SDK clients and real HTTP on 127.0.0.1:

- OSS: ``oss2`` against moto's S3 server behind the OSS dialect shim;
- ECS: ``alibabacloud-ecs20140526`` against the OpenAPI stand-in, which checks ACS3
  signatures and runs the real collection script on simulated instances;
- FC: ``aliyun-fc2`` against a stand-in that queues the async invocation and then runs
  the collect stage, as FC would.

Waits inside the collect stage use a fake clock (its sleep moves time forward), so a
"never returns to Running" scenario takes milliseconds, not ten minutes.
"""

from __future__ import annotations

import json
import shutil

import pytest
from fixtures_world import EVENTS, event, instances, report_of, world  # noqa: F401

from crashdiag.cloud.credentials import Credentials
from crashdiag.cloud.invoke import Fc2Invoker
from fixtures_oss import oss_standin, oss_store  # noqa: F401


def test_kdump_crash_end_to_end(world):
    summary = world.ingest(event("eventbridge-crash-kdump-executing.json"))
    [prefix] = summary.accepted
    assert prefix == "incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-bp1crash0kdump01/"
    [inv] = world.fc.invocations
    assert (inv.service, inv.function, inv.invocation_type) == ("ecs-crashdiag", "collect", "Async")
    assert world.pipeline.states(prefix) == ["received", "collecting", "collected", "diagnosed"]
    crash = world.store.get(f"{prefix}crash.log")
    kdump_file = next((world.instances / "i-bp1kdumpel7demo01" / "root" / "var" / "crash").rglob("vmcore-dmesg.txt"))
    assert crash == kdump_file.read_bytes()
    collect = json.loads(world.store.get(f"{prefix}collect.json"))
    assert collect["method"] == "kdump" and collect["complete"] is True
    assert collect["context"]["kdump_active"] == "active"
    rep = report_of(world, prefix)
    assert rep["schema_version"] == 1
    assert rep["diagnosis"]["kind"] == "null_deref"
    assert rep["diagnosis"]["rule"]["id"] == "blk-mq-timeout-null-deref"
    assert rep["diagnosis"]["fix_status"] == "affected"
    md = world.store.get(f"{prefix}report.md").decode()
    assert "blk\\_mq\\_rq\\_timed\\_out" in md or "blk_mq_rq_timed_out" in md
    # The real SDK went through the signed API: every call verified.
    actions = [r.action for r in world.ecs_server.calls()]
    assert {"DescribeInstanceStatus", "DescribeCloudAssistantStatus", "RunCommand", "DescribeInvocationResults"} <= set(actions)
    assert all(r.status == 200 for r in world.ecs_server.calls())


def test_duplicate_and_out_of_order_deliveries_make_one_incident(world):
    a = world.ingest(event("cloudmonitor-crash-kdump-executed.json"))  # Executed arrives first
    b = world.ingest(event("eventbridge-crash-kdump-executing.json"))
    c = world.ingest(event("eventbridge-crash-kdump-executing.json"))  # redelivery
    assert len(a.accepted) == 1 and b.duplicates == a.accepted and c.duplicates == a.accepted
    assert len(world.fc.invocations) == 1
    prefix = a.accepted[0]
    statuses = sorted(k.rsplit("/", 1)[1] for k in world.store.list(f"{prefix}events/"))
    assert statuses == ["Executed.json", "Executing.json"]
    assert world.ecs_server.count("RunCommand") == 1


def test_retried_collect_resumes_instead_of_redoing(world):
    [prefix] = world.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    ref = {"region": "cn-hangzhou", "instance_id": "i-bp1kdumpel7demo01", "incident_id": "e-bp1crash0kdump01"}
    again = world.pipeline.collect(ref)  # FC retries the async invocation after a timeout
    assert again["method"] == "kdump"
    assert world.ecs_server.count("RunCommand") == 1
    assert world.pipeline.diagnose(f"{prefix}crash.log")["diagnosis"]["kind"] == "null_deref"


def test_journal_only_instance(world):
    [prefix] = world.ingest(event("eventbridge-crash-journal-only.json")).accepted
    rep = report_of(world, prefix)
    assert rep["collection"]["method"] == "journal"
    assert rep["diagnosis"]["kind"] == "list_corruption"
    assert rep["diagnosis"]["rule"]["id"] == "cgroup-css-release-list-del"


def test_boot_loop_with_agent_offline_falls_back_to_the_serial_console(world):
    [prefix] = world.ingest(event("eventbridge-system-failure-bootloop.json")).accepted
    rep = report_of(world, prefix)
    assert rep["collection"]["method"] == "console" and rep["collection"]["complete"] is False
    assert rep["incident"]["host_failure"] is True
    assert rep["diagnosis"]["kind"] == "vfs_no_root"
    # one look for a kdump capture under way when the agent is first seen offline (none:
    # a boot loop), one for the log after the wait for the agent
    assert world.ecs_server.count("GetInstanceConsoleOutput") == 2
    assert world.ecs_server.count("RunCommand") == 0
    assert "waiting" not in world.pipeline.states(prefix)


def test_instance_that_never_returns_to_running(world):
    meta_path = world.instances / "i-bp1kdumpel7demo01" / "instance.json"
    world.cloud.instances["i-bp1kdumpel7demo01"].statuses = ["Starting"]
    assert meta_path.exists()
    [prefix] = world.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    collect = json.loads(world.store.get(f"{prefix}collect.json"))
    assert collect["attempts"][0]["step"] == "wait_running"
    # No console capture on this instance: the incident fails, saying why and what to do.
    world.cloud.instances["i-bp1kdumpel7demo01"].console = None
    [prefix2] = world.ingest(event("eventbridge-crash-kdump-executing.json", eventId="e-bp1another000001")).accepted
    states = world.pipeline.states(prefix2)
    assert states[-1] == "failed"
    failed = json.loads(world.store.get(f"{prefix2}state/90-failed.json"))
    assert "did not return to Running" in failed["reason"] and "kdump" in failed["advice"]


def test_released_instance_is_a_recorded_failure(world):
    [prefix] = world.ingest(event("eventbridge-crash-kdump-executing.json", instanceId="i-bp1gone00000001")).accepted
    failed = json.loads(world.store.get(f"{prefix}state/90-failed.json"))
    assert "no longer exists" in failed["reason"]


def test_log_larger_than_the_output_limit_arrives_whole_through_the_presigned_upload(world, oss_standin):
    if not (shutil.which("curl") or shutil.which("wget")):
        pytest.skip("neither curl nor wget on this machine: the guest cannot upload")
    [prefix] = world.ingest(event("eventbridge-crash-big-messages.json")).accepted
    # the guest's curl PUT went through the stand-in's V4 check (its presigned URL), as did
    # every call of ours (headers); nothing was signed V1
    guest_put = [i for i, r in enumerate(oss_standin.requests) if r.startswith("PUT ") and "guest-upload.log" in r]
    assert guest_put and oss_standin.signed[guest_put[0]] == "V4-query"
    assert set(oss_standin.signed) == {"V4-header", "V4-query"}
    collect = json.loads(world.store.get(f"{prefix}collect.json"))
    assert collect["log"]["uploaded"] == "yes" and collect["complete"] is True
    whole = (world.instances / "i-bp1bigmessages06" / "root" / "var" / "log" / "messages").read_bytes()
    assert len(whole) > 1_000_000
    assert world.store.get(f"{prefix}crash.log") == whole
    assert report_of(world, prefix)["diagnosis"]["kind"] == "hung_task"


def test_log_larger_than_the_output_limit_without_upload_is_a_windowed_excerpt(world):
    world.store.put_url = lambda key, ttl: None  # a store that cannot presign (like the local one)
    [prefix] = world.ingest(event("eventbridge-crash-big-messages.json")).accepted
    collect = json.loads(world.store.get(f"{prefix}collect.json"))
    assert collect["complete"] is False and collect["log"]["complete"] == "no"
    assert len(world.store.get(f"{prefix}crash.log")) < 200_000
    assert report_of(world, prefix)["diagnosis"]["kind"] == "hung_task"


def test_ecs_throttling_and_5xx_are_retried(world):
    world.ecs_server.inject("DescribeInstanceStatus", 2, "Throttling.User")
    world.ecs_server.inject("RunCommand", 1, "ServiceUnavailable", 503)
    [prefix] = world.ingest(event("eventbridge-crash-kdump-executing.json")).accepted
    assert report_of(world, prefix)["diagnosis"]["kind"] == "null_deref"
    statuses = [r.status for r in world.ecs_server.calls("DescribeInstanceStatus")]
    assert statuses[:3] == [400, 400, 200]


def test_cloud_assistant_failing_for_good_falls_back_to_the_console(world):
    world.ecs_server.inject("RunCommand", None, "ServiceUnavailable", 503)
    [prefix] = world.ingest(event("eventbridge-system-failure-bootloop.json")).accepted
    assert report_of(world, prefix)["collection"]["method"] == "console"


def test_oss_5xx_is_retried(world, oss_standin):  # noqa: F811
    oss_standin.fail_next(2, status=503)
    summary = world.ingest(event("eventbridge-crash-journal-only.json"))
    assert len(summary.accepted) == 1
    assert report_of(world, summary.accepted[0])["diagnosis"]["kind"] == "list_corruption"


def test_fc_refusing_the_async_invocation_surfaces_an_error(world):
    from crashdiag.cloud.invoke import InvokeError

    world.pipeline.invoker.client  # noqa: B018 - build the fc2 client before breaking the endpoint
    world.pipeline.invoker = Fc2Invoker("http://127.0.0.1:9", "ecs-crashdiag", Credentials("k", "s"), timeout=1)
    world.pipeline.invoker._client = None
    import fc2.client as fc2client

    saved = fc2client.retries
    fc2client.retries = 0  # aliyun-fc2 retries 5 times with backoff by itself; keep the test short
    try:
        with pytest.raises(InvokeError) as err:
            world.ingest(event("eventbridge-crash-kdump-executing.json"))
    finally:
        fc2client.retries = saved
    assert "s" not in str(err.value).split("(")[0].split()  # no secret in the message


def test_malformed_and_skipped_events_are_recorded_not_raised(world):
    s = world.ingest((EVENTS / "malformed-not-json.json").read_bytes())
    assert len(s.rejected) == 1 and world.store.exists(s.rejected[0]["record"])
    s = world.ingest(event("eventbridge-not-crash-maintenance.json"))
    assert s.skipped and not s.accepted and not world.fc.invocations


def test_inbox_object_is_diagnosed(world):
    log = (EVENTS / "logs" / "vmcore-dmesg-sample.txt").read_bytes()
    world.store.put("inbox/from-a-user.txt", log)
    rep = world.pipeline.diagnose("inbox/from-a-user.txt")
    assert rep["diagnosis"]["rule"]["id"] == "blk-mq-timeout-null-deref"
    assert world.store.exists("reports/inbox/from-a-user.txt/report.md")


def test_the_command_sent_fits_cloud_assistant_and_behaves_like_the_file(instances):
    import base64

    from crashdiag.cloud.simulate import run_guest_script, substitute_parameters
    from crashdiag.pipeline.collect import COMMAND_LIMIT, SCRIPT_PATH, guest_command

    sent = guest_command()
    assert len(base64.b64encode(sent.encode())) <= COMMAND_LIMIT
    params = {"since": "0", "max_bytes": "20000", "upload_url": ""}
    root = instances / "i-bp1kdumpel7demo01" / "root"
    full = run_guest_script(substitute_parameters(SCRIPT_PATH.read_text(), params), root)
    short = run_guest_script(substitute_parameters(sent, params), root)
    assert full[1] == short[1] == 0
    assert full[0] == short[0] and b"CRASHDIAG-END" in short[0]
