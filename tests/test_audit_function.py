"""The audit function end to end: the real ECS SDK over real HTTP against the ECS stand-in
(ACS3 signatures, DescribeInstances with a tag filter, RunCommand on many instances, paged
DescribeInvocationResults), the real audit script on the simulated instances, results
written to the OSS stand-in through oss2."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("alibabacloud_ecs20140526")

from crashdiag.cloud.ecs import CloudError  # noqa: E402
from crashdiag.cloud.ecs_fleet import SdkFleetApi, SimulatedFleet  # noqa: E402
from crashdiag.pipeline.audit import audit_command, audit_region  # noqa: E402
from fixtures_oss import ACCESS_KEY_ID, ACCESS_KEY_SECRET, oss_standin, oss_store  # noqa: E402, F401
from standins.ecs import STANDIN_KEY_ID, STANDIN_SECRET  # noqa: E402
from standins.ecs_fleet import EcsFleetStandIn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INSTANCES = ROOT / "events" / "instances"
REGION = "cn-hangzhou"
TAGGED = {"i-bp1rdyhealthy001", "i-bp1rdynockmem003", "i-bp1rdyoompanic04", "i-bp1rdyoldkern005"}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fleet(tmp_path) -> SimulatedFleet:
    d = tmp_path / "instances"
    shutil.copytree(INSTANCES, d, symlinks=True, ignore=shutil.ignore_patterns("*.py"))
    return SimulatedFleet.from_dir(str(d))


def load_handler():
    """functions/audit/index.py, loaded afresh (its clients are cached per module)."""
    spec = importlib.util.spec_from_file_location("audit_index", ROOT / "functions" / "audit" / "index.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sdk(server: EcsFleetStandIn) -> SdkFleetApi:
    return SdkFleetApi(access_key_id=STANDIN_KEY_ID, access_key_secret=STANDIN_SECRET, endpoint=server.endpoint,
                       protocol="http", attempts=3, deadline=300.0, backoff_initial=0.01, backoff_max=0.05, read_timeout=120.0)


def test_the_audit_function_audits_tagged_instances_through_the_sdk(fleet, oss_standin, oss_store, monkeypatch):  # noqa: F811
    # the handler caches its store in the runtime module, as FC keeps it per instance: give
    # this test a cache of its own so no other test meets this stack's bucket
    from crashdiag.pipeline import runtime

    monkeypatch.setattr(runtime, "_cache", {})
    # one account's key signs both the ECS and the OSS requests, as the function's role would
    with EcsFleetStandIn(fleet, access_keys={ACCESS_KEY_ID: ACCESS_KEY_SECRET}) as server:
        monkeypatch.setenv("ECS_ENDPOINT", f"http://{server.endpoint}")
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCOUNT_ID", "1234567890123456")
        monkeypatch.setenv("CRASHDIAG_REGION", REGION)
        monkeypatch.setenv("CRASHDIAG_AUDIT_TAG", "crashdiag:audit=true")
        monkeypatch.setenv("OSS_BUCKET", oss_store.bucket.bucket_name)
        monkeypatch.setenv("OSS_ENDPOINT", oss_standin.endpoint)
        monkeypatch.delenv("CRASHDIAG_INSTANCES_DIR", raising=False)
        summary = json.loads(load_handler().handler(b'{"payload": ""}', None))

        assert summary == {"region": REGION, "instances": 4, "ready": 3, "exposed": 1, "written": 4}
        listed = server.calls("DescribeInstances")
        assert listed and listed[0].params["Tag.1.Key"] == "crashdiag:audit" and listed[0].params["Tag.1.Value"] == "true"
        assert listed[0].params["Status"] == "Running"
        runs = server.calls("RunCommand")
        assert len(runs) == 1  # one call for all four instances
        assert {v for k, v in runs[0].params.items() if k.startswith("InstanceId.")} == TAGGED
        assert runs[0].params["Name"] == "crashdiag-audit" and "Parameters" not in runs[0].params

    keys = [k for k in oss_store.list("audit/") if not k.startswith("audit/summary/")]
    assert len(oss_store.list("audit/summary/")) == 1  # one summary for the region and account
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == sorted(f"{i}.json" for i in TAGGED)
    assert all(k.split("/")[2] == REGION for k in keys)
    old = json.loads(oss_store.get(next(k for k in keys if "oldkern" in k)))
    assert old["account"] == "1234567890123456" and old["ready"] is True
    assert [e["rule"] for e in old["exposed"]] == ["blk-mq-timeout-null-deref"]
    nomem = json.loads(oss_store.get(next(k for k in keys if "nockmem" in k)))
    assert nomem["ready"] is False and {c["id"]: c["status"] for c in nomem["checks"]}["crashkernel"] == "fail"


def test_many_instances_go_in_calls_of_at_most_100(tmp_path, oss_store):  # noqa: F811
    base = tmp_path / "many"
    healthy = INSTANCES / "i-bp1rdyhealthy001"
    meta = json.loads((healthy / "instance.json").read_text())
    for n in range(110):
        d = base / f"i-many{n:04d}"
        d.mkdir(parents=True)
        (d / "instance.json").write_text(json.dumps(meta | {"name": f"many-{n}"}))
        (d / "root").symlink_to(healthy / "root")
    (base / "i-windows0001").mkdir()
    (base / "i-windows0001" / "instance.json").write_text(json.dumps(meta | {"os_type": "windows"}))
    fleet = SimulatedFleet.from_dir(str(base))
    with EcsFleetStandIn(fleet) as server:
        api = sdk(server)
        instances = api.list_instances(REGION)
        assert len(instances) == 110  # Windows left out; pages of 100 followed by NextToken
        assert len(server.calls("DescribeInstances")) == 2
        summary = audit_region(api, oss_store, REGION, sleep=lambda _s: None, poll=0.0)
        # one invocation per distinct ClientToken: under load the SDK may resend a call whose
        # reply was slow, and the stand-in (like ECS) answers the resend with the same InvokeId
        calls = {r.params.get("ClientToken"): r for r in server.calls("RunCommand")}
        sizes = [sum(1 for k in r.params if k.startswith("InstanceId.")) for r in calls.values()]
        assert sorted(sizes, reverse=True) == [100, 10]
        assert summary["ready"] == 110 and summary["written"] == 110
        # the cloud's own limit, as the stand-in enforces it, and our refusal before sending
        with pytest.raises(CloudError, match="100"):
            api.run_command_many(REGION, [i.instance_id for i in instances[:101]], audit_command(), 60)
        client = api._client(REGION)
        from alibabacloud_ecs20140526 import models

        with pytest.raises(Exception) as exc:
            client.run_command(models.RunCommandRequest(region_id=REGION, type="RunShellScript", command_content="true",
                                                        instance_id=[i.instance_id for i in instances[:101]]))
        assert "InstanceIds.ExceedLimit" in str(exc.value)


def test_an_offline_agent_is_recorded_not_lost(fleet, oss_store):  # noqa: F811
    with EcsFleetStandIn(fleet) as server:
        summary = audit_region(sdk(server), oss_store, REGION, sleep=lambda _s: None, poll=0.0)
    # every Linux fixture instance of the region (events/instances/ has a Windows one, which the
    # audit leaves out, and a Shanghai one)
    assert summary["instances"] == sum(1 for i in fleet.cloud.instances.values()
                                       if i.os_type.lower() != "windows" and i.region == REGION)
    boot = json.loads(oss_store.get(next(k for k in oss_store.list("audit/") if "bootloop" in k)))
    assert boot["ready"] is False and "ClientNotRunning" in boot["error"]
