"""Collect against Cloud Assistant as documented: the 24 KB command budget, every
documented ErrorCode's next step, a command that lands before the crash reboot, Windows
instances and instances in another region.

The fast tests drive ``Collector`` over ``SimulatedCloud`` in-process (the provider model
the HTTP stand-in also answers with); the end-to-end ones go through the world (real SDK,
real HTTP, the real guest script).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import string

import pytest
from fixtures_world import EVENTS, INSTANCES, FakeClock, event, instances, report_of, world  # noqa: F401

from crashdiag.cloud.ecs import COMMAND_LIMIT, command_size
from crashdiag.cloud.simulate import ERROR_STATUS, SimulatedCloud
from crashdiag.pipeline.collect import (
    COMMAND_MARGIN,
    MAX_RUNS,
    MAX_UPLOAD_URL,
    NEXT_STEP,
    WINDOWS_NOTICE,
    Collector,
    guest_command,
    worst_case_command_size,
)
from crashdiag.pipeline.wording import FAILURE, NEXT_STEP_ZH
from crashdiag.settings import Settings
from fixtures_oss import oss_standin, oss_store  # noqa: F401

REGION = "cn-hangzhou"
KDUMP01 = "i-bp1kdumpel7demo01"
CRASH_REBOOT = 1795730401  # the sample events' executeStartTime, 2026-11-26T10:00:01Z
SETTINGS = Settings(collect_wait_seconds=600, collect_poll_seconds=2.0, collect_command_timeout=60, lang="en")


def collector(cloud: SimulatedCloud, settings: Settings = SETTINGS) -> tuple[Collector, FakeClock]:
    clock = FakeClock()
    return Collector(cloud, settings, clock, clock.sleep), clock


def collect(cloud: SimulatedCloud, instance: str = KDUMP01, uploads: list | None = None, **kw) -> dict:
    c, _ = collector(cloud, **kw)

    def upload(ttl: int, public: bool = False) -> str | None:
        if uploads is not None:
            uploads.append((ttl, public))
        return None

    return c.collect(REGION, instance, CRASH_REBOOT - 3600, upload, boot_after=CRASH_REBOOT)


@pytest.fixture
def cloud(instances) -> SimulatedCloud:  # noqa: F811
    return SimulatedCloud.from_dir(instances)


def run_commands(cloud: SimulatedCloud) -> int:
    return sum(1 for action, _ in cloud.calls if action == "RunCommand")


# --- RunCommand's 24 KB: content and parameters, base64 ------------------------------------------


def test_worst_case_command_fits_with_margin():
    """The sent script plus the longest parameters the guest accepts (a 4,096-byte URL: a V4
    presigned URL with an STS token is 2-3 KB) leaves COMMAND_MARGIN of the 24 KB unused."""
    worst = worst_case_command_size()
    assert worst + COMMAND_MARGIN <= COMMAND_LIMIT, f"{worst} + {COMMAND_MARGIN} > {COMMAND_LIMIT}"
    # the readable file would not fit at all: the packing is what makes room
    from crashdiag.pipeline.collect import SCRIPT_PATH

    assert len(base64.b64encode(SCRIPT_PATH.read_bytes())) > COMMAND_LIMIT - 4096


def test_worst_case_command_is_accepted_by_the_standin(world):  # noqa: F811
    url = "https://bucket.oss-cn-hangzhou.aliyuncs.com/k?" + "x" * (MAX_UPLOAD_URL - 60)
    url = url[:MAX_UPLOAD_URL]
    params = {"since": "999999999999", "max_bytes": "999999", "upload_url": url}
    content = base64.b64encode(guest_command().encode()).decode()
    assert command_size(content, params) <= COMMAND_LIMIT - COMMAND_MARGIN
    invoke = world.pipeline.ecs.run_command(REGION, KDUMP01, guest_command(), params, 60)
    assert invoke and world.ecs_server.calls("RunCommand")[-1].status == 200


def test_an_upload_url_longer_than_the_guest_takes_is_not_sent(cloud):
    c, _ = collector(cloud)
    long_url = "https://b.oss-cn-hangzhou-internal.aliyuncs.com/k?x-oss-security-token=" + "A" * 5000
    result = c.collect(REGION, KDUMP01, 0, lambda ttl, public=False: long_url, boot_after=CRASH_REBOOT)
    assert result["method"] == "kdump"
    assert any("over the 4096 the guest accepts" in n for n in result["notes"])


# --- every documented ErrorCode has a next step -------------------------------------------------------


def test_every_code_the_simulator_knows_has_a_next_step():
    assert set(ERROR_STATUS) <= set(NEXT_STEP)


@pytest.mark.parametrize("code", sorted(c for c, (step, _, _) in NEXT_STEP.items() if step == "rerun"))
def test_transient_codes_wait_and_run_again(code, cloud):
    cloud.instances[KDUMP01].runs = [code, "ok"]
    result = collect(cloud)
    assert result["method"] == "kdump" and result["failure"] is None
    assert run_commands(cloud) == 2
    first = result["attempts"][0]
    assert first["error"] == code and first["status"] == ERROR_STATUS[code]
    assert any("running the script again" in n for n in result["notes"])


def test_a_guest_that_keeps_restarting_is_tried_a_bounded_number_of_times(cloud):
    cloud.instances[KDUMP01].runs = ["InstanceRestarted"]
    result = collect(cloud)
    assert run_commands(cloud) == MAX_RUNS
    assert result["failure"] and "restarted while the script ran (Terminated InstanceRestarted)" in result["failure"]["reason"]
    assert any("gave up running the script again" in n for n in result["notes"])


@pytest.mark.parametrize("code", sorted(c for c, (step, _, _) in NEXT_STEP.items() if step == "console"))
def test_codes_the_guest_cannot_get_past_fall_back_to_the_console(code, cloud):
    inst = cloud.instances[KDUMP01]
    inst.runs = [code]
    inst.console = b"[  100.000000] Kernel panic - not syncing: sysrq triggered crash\n"
    result = collect(cloud)
    assert run_commands(cloud) == 1
    assert result["method"] == "console"
    why = NEXT_STEP[code][1]
    assert any(why in n and code in n for n in result["notes"])


def test_security_group_denial_says_what_to_open(cloud):
    cloud.instances[KDUMP01].runs = ["SecurityGroupRuleDenied"]
    result = collect(cloud)  # no console log on this instance: a failure that says why
    assert "a security group rule denies access to Cloud Assistant" in result["failure"]["reason"]
    assert "security group" in result["failure"]["advice"]


@pytest.mark.parametrize("code", sorted(c for c, (step, _, _) in NEXT_STEP.items() if step == "gone"))
def test_codes_for_a_vanished_instance_end_with_the_reason(code, cloud):
    cloud.instances[KDUMP01].runs = [code]
    result = collect(cloud)
    assert run_commands(cloud) == 1
    assert result["method"] is None and NEXT_STEP[code][1] in result["failure"]["reason"]
    assert ("GetInstanceConsoleOutput", KDUMP01) not in cloud.calls


def test_timeout_is_a_status_and_falls_back(cloud):
    cloud.instances[KDUMP01].runs = ["ExecutionTimeout"]
    result = collect(cloud)
    assert result["attempts"][0]["status"] == "Timeout"
    assert "ran past its timeout" in result["failure"]["reason"]


def test_unpack_failure_falls_back_to_the_console(cloud, tmp_path, monkeypatch):
    """A guest without base64 and gzip: the simulator's shell finds neither on its PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "cat", "ls", "grep", "sed", "head"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    result = collect(cloud)
    assert any("could not unpack the collection script" in n for n in result["notes"])
    assert result["failure"] and "could not unpack" in result["failure"]["reason"]


# --- the instance during Executing: a command can land before the reboot ------------------------------


def test_a_command_that_lands_before_the_reboot_is_run_again(cloud):
    cloud.instances[KDUMP01].runs = ["pre-reboot", "ok"]
    result = collect(cloud)
    assert run_commands(cloud) == 2
    assert result["method"] == "kdump" and result["context"]["boot_time"] == "1795730461"
    assert any("ran in the boot before the crash" in n for n in result["notes"])


def test_a_guest_stuck_before_the_reboot_is_not_taken_for_the_crash(cloud):
    cloud.instances[KDUMP01].runs = ["pre-reboot"]
    result = collect(cloud)
    assert run_commands(cloud) == MAX_RUNS
    assert result["failure"] and "boot before the crash" in result["failure"]["reason"]
    assert result["log"] == {}  # nothing from the earlier boot was kept


def test_without_an_event_start_time_any_boot_is_taken(cloud):
    cloud.instances[KDUMP01].runs = ["pre-reboot", "ok"]
    c, _ = collector(cloud)
    result = c.collect(REGION, KDUMP01, 0, lambda ttl, public=False: None)
    assert run_commands(cloud) == 1 and result["method"] == "kdump"


# --- a Chinese deployment says why in Chinese -------------------------------------------------------

ZH = dataclasses.replace(SETTINGS, lang="zh")
CJK = re.compile(r"[\u4e00-\u9fff]")


def fields_of(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_failure_wording_has_chinese_with_the_english_fields():
    for key, words in FAILURE.items():
        assert set(words) == {"en", "zh"} and CJK.search(words["zh"]), key
        assert fields_of(words["zh"]) <= fields_of(words["en"]), key  # zh may leave one out (the Windows notice)
    assert set(NEXT_STEP_ZH) == set(NEXT_STEP)
    assert all(CJK.search(why) and (CJK.search(advice) or not NEXT_STEP[code][2])
               for code, (why, advice) in NEXT_STEP_ZH.items())


@pytest.mark.parametrize("code", sorted(NEXT_STEP))
def test_a_chinese_deployment_gives_the_reason_and_advice_in_chinese(code, cloud):
    cloud.instances[KDUMP01].runs = [code]  # no console log on this instance: every code ends as a failure
    failure = collect(cloud, settings=ZH)["failure"]
    _, why, advice = NEXT_STEP[code]
    assert failure and NEXT_STEP_ZH[code][0] in failure["reason"] and code in failure["reason"]
    assert why not in failure["reason"] and CJK.search(failure["advice"])
    assert not advice or advice not in failure["advice"]
    assert "enable kdump" not in failure["advice"] and "nothing can be collected" not in failure["advice"]


@pytest.mark.parametrize("code", ["InstanceRestarted", "ClientNetworkBlocked"])
def test_a_chinese_deployment_notes_a_retry_and_the_console_fallback_in_chinese(code, cloud):
    inst = cloud.instances[KDUMP01]
    inst.runs = [code]
    inst.console = b"[  100.000000] Kernel panic - not syncing: sysrq triggered crash\n"
    result = collect(cloud, settings=ZH)
    assert result["method"] == "console"
    mentions = [n for n in result["notes"] if NEXT_STEP_ZH[code][0] in n]
    assert mentions and all(CJK.search(n.replace(NEXT_STEP_ZH[code][0], "")) for n in mentions)
    assert not any("running the script again" in n or "read from the serial console" in n for n in result["notes"])


@pytest.mark.parametrize("name", ["eventbridge-crash-capture-hung.json", "eventbridge-crash-capture-long.json",
                                  "eventbridge-system-failure-bootloop.json",
                                  "eventbridge-crash-shanghai-second-account.json"])
def test_a_chinese_deployment_writes_its_collection_notes_in_chinese(name, tmp_path):
    """A wait for the capture, a hung capture, the console fallback, a guest without a boot
    time: each replayed in zh leaves notes, and every note is Chinese (the capture's phase too)."""
    from fixtures_world import replay_events

    store = replay_events(tmp_path, name, lang="zh")
    (key,) = [k for k in store.list("incidents/") if k.endswith("/collect.json")]
    notes = json.loads(store.get(key))["notes"]
    assert notes and all(CJK.search(n) for n in notes), notes
    assert not any(re.search(r"\b(?:the|is|was|for|while)\b", n) for n in notes), notes


def test_a_chinese_deployment_names_windows_in_chinese(cloud):
    failure = collect(cloud, "i-bp1windows00007", settings=ZH)["failure"]
    assert failure["reason"].startswith("Windows 实例") and "WinDbg" in failure["advice"]
    assert WINDOWS_NOTICE not in failure["reason"] and "read the crash dump" not in failure["advice"]


# --- Windows ----------------------------------------------------------------------------------------


def test_windows_instance_is_recorded_not_run(cloud):
    result = collect(cloud, "i-bp1windows00007")
    assert result["failure"]["reason"].startswith(WINDOWS_NOTICE)
    assert result["notice"] == WINDOWS_NOTICE and result["instance"]["os_type"] == "windows"
    assert run_commands(cloud) == 0


def test_windows_event_replays_to_a_recorded_failure(world):  # noqa: F811
    summary = world.ingest(event("eventbridge-crash-windows.json"))
    [prefix] = summary.accepted
    assert world.pipeline.states(prefix)[-1] == "failed"
    collect_json = json.loads(world.store.get(f"{prefix}collect.json"))
    assert collect_json["failure"]["reason"].startswith(WINDOWS_NOTICE)
    assert world.ecs_server.count("RunCommand") == 0 and world.ecs_server.count("DescribeInstances") == 1
    rep = report_of(world, prefix)
    assert WINDOWS_NOTICE in json.dumps(rep)
    assert rep["incident"]["instance_name"] == "win-07"  # from DescribeInstances


# --- an instance in another region ----------------------------------------------------------------


def test_same_region_signs_the_internal_upload(cloud):
    uploads: list = []
    collect(cloud, uploads=uploads, settings=Settings(**{**SETTINGS.__dict__, "region": REGION}))
    assert uploads == [(SETTINGS.upload_url_ttl, False)]


def test_other_region_asks_for_a_public_upload_or_says_why_not(cloud):
    uploads: list = []
    settings = Settings(**{**SETTINGS.__dict__, "region": "cn-shanghai"})
    result = collect(cloud, uploads=uploads, settings=settings)
    assert uploads == [(SETTINGS.upload_url_ttl, True)]
    assert result["method"] == "kdump"  # the excerpt still came back
    assert any("out of its reach" in n and "not the whole log" in n for n in result["notes"])


def test_events_directory_has_the_windows_sample():
    ev = json.loads((EVENTS / "eventbridge-crash-windows.json").read_text())
    meta = json.loads((INSTANCES / ev["data"]["instanceId"] / "instance.json").read_text())
    assert meta["os_type"] == "windows"


def test_other_region_uploads_through_the_public_endpoint(cloud, oss_standin):  # noqa: F811
    """The store signs the guest's PUT for the bucket's public endpoint (here the stand-in
    stands for it); the guest's curl uploads the whole log through it, V4-verified."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    from crashdiag.cloud.oss_store import OssStore
    from fixtures_oss import CREDENTIALS
    from fixtures_oss import REGION as BUCKET_REGION

    name = "crashdiag-test-xregion"
    oss_standin.create_bucket(name)
    internal = "https://oss-cn-shanghai-internal.aliyuncs.com"  # unreachable from here, as from another region
    store = OssStore.connect(internal, name, CREDENTIALS, region=BUCKET_REGION, timeout=10,
                             public_endpoint=oss_standin.endpoint)
    key = f"incidents/{REGION}/{KDUMP01}/e-x/guest-upload.log"
    settings = Settings(**{**SETTINGS.__dict__, "region": "cn-shanghai"})
    c, _ = collector(cloud, settings)
    result = c.collect(REGION, KDUMP01, 0,
                       lambda ttl, public=False: store.put_url_public(key, ttl) if public else store.put_url(key, ttl),
                       boot_after=CRASH_REBOOT)
    assert result["log"]["uploaded"] == "yes"
    assert any("public endpoint" in n for n in result["notes"])
    kdump = next((INSTANCES / KDUMP01 / "root" / "var" / "crash").rglob("vmcore-dmesg.txt")).read_bytes()
    reader = OssStore.connect(oss_standin.endpoint, name, CREDENTIALS, region=BUCKET_REGION, timeout=10)
    assert reader.get(key) == kdump
    assert "-internal.aliyuncs.com/" in store.put_url(key, 60)  # the internal one stays for same-region guests


def test_public_endpoint_is_derived_from_the_internal_one():
    from crashdiag.cloud.oss_store import public_endpoint_of

    assert public_endpoint_of("https://oss-cn-hangzhou-internal.aliyuncs.com") == "https://oss-cn-hangzhou.aliyuncs.com"
    assert public_endpoint_of("https://oss-cn-hangzhou.aliyuncs.com") is None
    assert public_endpoint_of("http://127.0.0.1:9000") is None
