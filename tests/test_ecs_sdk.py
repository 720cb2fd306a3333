"""SdkEcsApi drives the REAL ECS SDK client against the ECS stand-in (real HTTP, real
ACS3 signatures), which answers from a SimulatedCloud built in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

pytest.importorskip("alibabacloud_ecs20140526")
pytest.importorskip("tenacity")

from crashdiag.cloud.ecs import OUTPUT_LIMIT, CloudError  # noqa: E402
from crashdiag.cloud.ecs_sdk import SdkEcsApi  # noqa: E402
from crashdiag.cloud.simulate import SimulatedCloud  # noqa: E402
from standins.ecs import STANDIN_KEY_ID, STANDIN_SECRET, EcsStandIn, verify_acs3  # noqa: E402

REGION = "cn-hangzhou"
WEB = "i-web01"  # agent online, a kdump log, a console log; Starting then Running
DB = "i-db02"  # agent offline
SECURITY_TOKEN = "sts-token-Pq7Yv2Lk-do-not-leak"
CRASH = "[  102.345678] Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled\n"
SCRIPT = 'echo since={{since}}; cat "$CRASHDIAG_ROOT/var/crash/x/vmcore-dmesg.txt"'

_raised: list[BaseException] = []  # every CloudError the tests saw, checked for leaks at the end


def _instance(
    base: Path, instance_id: str, meta: dict, files: dict[str, str], console: bytes | None = None
) -> None:
    d = base / instance_id
    (d / "root").mkdir(parents=True)
    (d / "instance.json").write_text(json.dumps(meta))
    for rel, text in files.items():
        p = d / "root" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    if console is not None:
        (d / "console.log").write_bytes(console)


@pytest.fixture
def cloud(tmp_path: Path) -> SimulatedCloud:
    base = tmp_path / "instances"
    _instance(
        base,
        WEB,
        {
            "region": REGION,
            "name": "web-01",
            "status": ["Starting", "Running"],
            "agent_online": True,
        },
        {"var/crash/x/vmcore-dmesg.txt": CRASH},
        console=b"\x1b[0mSeaBIOS\r\n[    0.000000] Linux version 5.10.134-16.al8.x86_64\r\n"
        + CRASH.encode(),
    )
    _instance(base, DB, {"region": REGION, "name": "db-02", "agent_online": False}, {})
    return SimulatedCloud.from_dir(base)


@pytest.fixture
def ecs(cloud: SimulatedCloud, monkeypatch: pytest.MonkeyPatch):
    # darabonba reads HTTP(S)_PROXY itself and ignores NO_PROXY: keep 127.0.0.1 direct.
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with EcsStandIn(cloud, security_tokens={}) as server:
        yield server


def make_api(server: EcsStandIn, **kw) -> SdkEcsApi:
    opts = dict(
        access_key_id=STANDIN_KEY_ID,
        access_key_secret=STANDIN_SECRET,
        endpoint=server.endpoint,
        protocol="http",
        connect_timeout=1.0,
        read_timeout=2.0,
        attempts=4,
        deadline=5.0,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    opts.update(kw)
    return SdkEcsApi(**opts)


def expect_error(fn, *args) -> CloudError:
    with pytest.raises(CloudError) as info:
        fn(*args)
    _raised.append(info.value)
    return info.value


# -- happy paths ---------------------------------------------------------------------------


def test_instance_status_follows_the_instance(ecs: EcsStandIn) -> None:
    api = make_api(ecs)
    assert api.instance_status(REGION, WEB) == "Starting"
    assert api.instance_status(REGION, WEB) == "Running"
    assert api.instance_status(REGION, WEB) == "Running"
    rec = ecs.calls("DescribeInstanceStatus")[0]
    assert rec.status == 200
    assert rec.params["InstanceId.1"] == WEB and rec.params["RegionId"] == REGION
    assert rec.method == "POST" and rec.body == b""


def test_unknown_instance_is_none(ecs: EcsStandIn) -> None:
    api = make_api(ecs)
    assert api.instance_status(REGION, "i-nothere") is None  # absent from the list
    assert api.instance_status("cn-beijing", WEB) is None  # other region
    ecs.inject("DescribeInstanceStatus", 1, "InvalidInstanceId.NotFound")  # the error form
    assert api.instance_status(REGION, WEB) is None
    assert ecs.calls("DescribeInstanceStatus")[-1].status == 404


def test_cloud_assistant_status(ecs: EcsStandIn) -> None:
    api = make_api(ecs)
    assert api.cloud_assistant_online(REGION, WEB) is True
    assert api.cloud_assistant_online(REGION, DB) is False
    err = expect_error(api.cloud_assistant_online, REGION, "i-nothere")
    assert err.code == "InvalidInstanceId.NotFound" and not err.retryable
    assert ecs.count("DescribeCloudAssistantStatus") == 3  # the 404 was not retried


def test_run_command_parameters_reach_the_script(ecs: EcsStandIn, cloud: SimulatedCloud) -> None:
    api = make_api(ecs)
    invoke_id = api.run_command(REGION, WEB, SCRIPT, {"since": "1700000000"}, 60)
    assert invoke_id.startswith("t-")
    rec = ecs.calls("RunCommand")[0]
    assert rec.params["Type"] == "RunShellScript"
    assert rec.params["ContentEncoding"] == "Base64"
    assert rec.params["EnableParameter"] == "True"  # the SDK sends str(bool)
    assert json.loads(rec.params["Parameters"]) == {"since": "1700000000"}
    assert rec.params["InstanceId.1"] == WEB and rec.params["Timeout"] == "60"
    assert rec.params["ClientToken"]
    assert "{{since}}" not in rec.raw_query  # the script travels base64-encoded

    result = api.invocation_result(REGION, invoke_id, WEB)
    assert result.finished and result.status == "Success"
    assert result.exit_code == 0 and result.error_code is None and result.dropped == 0
    assert result.output == b"since=1700000000\n" + CRASH.encode()
    rec = ecs.calls("DescribeInvocationResults")[0]
    assert rec.params["ContentEncoding"] == "Base64"
    assert ("RunCommand", WEB) in cloud.calls


def test_invocation_still_running_then_done(ecs: EcsStandIn, cloud: SimulatedCloud) -> None:
    cloud.instances[WEB].running_polls = 2
    api = make_api(ecs)
    invoke_id = api.run_command(REGION, WEB, "echo hi", {}, 30)
    assert "EnableParameter" not in ecs.calls("RunCommand")[0].params
    states = [api.invocation_result(REGION, invoke_id, WEB) for _ in range(3)]
    assert [s.status for s in states] == ["Running", "Running", "Success"]
    assert not states[0].finished and states[2].output == b"hi\n"


def test_nonzero_exit(ecs: EcsStandIn) -> None:
    api = make_api(ecs)
    invoke_id = api.run_command(REGION, WEB, "echo partial; exit 3", {}, 30)
    r = api.invocation_result(REGION, invoke_id, WEB)
    assert (r.status, r.exit_code, r.error_code, r.output) == (
        "Failed",
        3,
        "ExitCodeNonzero",
        b"partial\n",
    )


def test_unknown_invoke_id(ecs: EcsStandIn) -> None:
    err = expect_error(make_api(ecs).invocation_result, REGION, "t-bogus", WEB)
    assert err.code == "InvalidInvokeId.NotFound" and not err.retryable


def test_agent_offline_gives_client_not_running(ecs: EcsStandIn) -> None:
    api = make_api(ecs)
    invoke_id = api.run_command(REGION, DB, SCRIPT, {"since": "1"}, 60)
    r = api.invocation_result(REGION, invoke_id, DB)
    assert r.status == "Aborted" and r.error_code == "ClientNotRunning"  # not sent: Aborted
    assert r.error_info == "the aliyun service is not running on the instance"
    assert r.exit_code is None and r.output == b""


CUT_SCRIPT = "printf HEAD; head -c 30000 /dev/zero | tr '\\000' A; printf TAIL"


def test_agent_keeps_the_tail_of_a_quick_commands_output(ecs: EcsStandIn) -> None:
    """Nothing streamed before the end (a quick command): the last 12,000 bytes
    (basetask.go getReportString; simulate.agent_output_cut)."""
    api = make_api(ecs)
    r = api.invocation_result(REGION, api.run_command(REGION, WEB, CUT_SCRIPT, {}, 60), WEB)
    assert r.status == "Success" and OUTPUT_LIMIT == 24 * 1024
    assert len(r.output) == 12000 and r.dropped == 30008 - 12000
    assert r.output.endswith(b"ATAIL") and b"HEAD" not in r.output


def test_agent_keeps_head_and_tail_of_a_long_commands_output(ecs: EcsStandIn, cloud: SimulatedCloud) -> None:
    """Three ticks streamed 6,144 bytes as running output: those, then the tail."""
    cloud.instances[WEB].agent_head = 6144
    api = make_api(ecs)
    r = api.invocation_result(REGION, api.run_command(REGION, WEB, CUT_SCRIPT, {}, 60), WEB)
    assert len(r.output) == 12000 and r.dropped == 30008 - 12000
    assert r.output.startswith(b"HEADAAA") and r.output.endswith(b"ATAIL")
    assert r.output == (b"HEAD" + b"A" * 29996 + b"TAIL")[:6144] + (b"HEAD" + b"A" * 30000 + b"TAIL")[-(12000 - 6144):]


def test_instance_info_says_the_os_type(ecs: EcsStandIn, cloud: SimulatedCloud) -> None:
    api = make_api(ecs)
    info = api.instance_info(REGION, WEB)
    assert info is not None and (info.os_type, info.name, info.windows) == ("linux", "web-01", False)
    cloud.instances[DB].os_type = "windows"
    info = api.instance_info(REGION, DB)
    assert info is not None and info.windows and info.os_name.startswith("Windows")
    assert api.instance_info(REGION, "i-nosuch") is None
    assert json.loads(ecs.calls("DescribeInstances")[0].params["InstanceIds"]) == [WEB]


def test_shell_script_on_windows_is_not_applicable(ecs: EcsStandIn, cloud: SimulatedCloud) -> None:
    cloud.instances[WEB].os_type = "windows"
    api = make_api(ecs)
    r = api.invocation_result(REGION, api.run_command(REGION, WEB, SCRIPT, {"since": "1"}, 60), WEB)
    assert (r.status, r.error_code) == ("Invalid", "CommandNotApplicable")


@pytest.mark.parametrize("code", sorted(__import__("crashdiag.cloud.simulate", fromlist=["x"]).ERROR_STATUS))
def test_every_documented_error_code_comes_back_with_its_status(code: str, ecs: EcsStandIn, cloud: SimulatedCloud) -> None:
    from crashdiag.cloud.simulate import ERROR_STATUS

    cloud.instances[WEB].runs = [code, "ok"]
    api = make_api(ecs)
    r = api.invocation_result(REGION, api.run_command(REGION, WEB, SCRIPT, {"since": "1"}, 60), WEB)
    assert (r.status, r.error_code) == (ERROR_STATUS[code], code) and r.finished
    r = api.invocation_result(REGION, api.run_command(REGION, WEB, SCRIPT, {"since": "2"}, 60), WEB)
    assert (r.status, r.error_code) == ("Success", None)  # the next run lands


def test_console_output(ecs: EcsStandIn) -> None:
    raw = make_api(ecs).console_output(REGION, WEB)
    assert (
        raw is not None and raw.startswith(b"\x1b[0mSeaBIOS\r\n") and raw.endswith(CRASH.encode())
    )
    clean = make_api(ecs, console_remove_symbols=True).console_output(REGION, WEB)
    assert clean is not None and clean.startswith(b"SeaBIOS\n") and b"\x1b" not in clean
    assert ecs.calls("GetInstanceConsoleOutput")[1].params["RemoveSymbols"] == "True"
    assert make_api(ecs).console_output(REGION, DB) is None  # no console.log


def test_script_too_large_is_refused_locally(ecs: EcsStandIn) -> None:
    err = expect_error(make_api(ecs).run_command, REGION, WEB, "#" * 20000, {}, 60)
    assert err.code == "InvalidParameter.CommandContent" and not err.retryable
    # 16,000 bytes of script fit alone (21,336 in base64) but not with a 4 KB parameter
    make_api(ecs).run_command(REGION, WEB, "#" * 16000, {}, 60)
    err = expect_error(make_api(ecs).run_command, REGION, WEB, "#" * 16000, {"u": "x" * 4000}, 60)
    assert err.code == "InvalidParameter.CommandContent" and "parameters" in err.message
    assert ecs.count("RunCommand") == 1


def test_standin_counts_parameters_in_the_24k(ecs: EcsStandIn) -> None:
    """The stand-in, like RunCommand, adds the base64 parameters to the base64 content:
    sent straight through the SDK client, past our own check."""
    import base64

    from alibabacloud_ecs20140526 import models

    client = make_api(ecs)._client(REGION)
    content = base64.b64encode(b"#" * 16000 + b"{{u}}").decode()

    def run(value: str):
        return client.run_command(models.RunCommandRequest(
            region_id=REGION, type="RunShellScript", command_content=content, content_encoding="Base64",
            instance_id=[WEB], enable_parameter=True, parameters={"u": value}, timeout=60))

    assert run("x" * 100).body.invoke_id
    with pytest.raises(Exception) as info:
        run("x" * 4000)
    assert getattr(info.value, "code", "") == "InvalidParameter.CommandContent"
    assert ecs.calls("RunCommand")[-1].status == 400


def test_one_client_per_region_built_lazily(ecs: EcsStandIn) -> None:
    api = make_api(ecs)
    assert api._clients == {}
    api.instance_status(REGION, WEB)
    api.instance_status(REGION, WEB)
    api.instance_status("cn-beijing", WEB)
    assert sorted(api._clients) == ["cn-beijing", REGION]
    assert STANDIN_SECRET not in repr(api)


def test_injected_client_is_used(ecs: EcsStandIn) -> None:
    inner = make_api(ecs)
    built = inner._build_client(REGION)
    api = SdkEcsApi(built, attempts=1)
    assert api.instance_status(REGION, WEB) == "Starting"
    assert api._clients == {}


def test_sdk_is_imported_lazily() -> None:
    shared = str(Path(__file__).resolve().parents[1] / "shared")
    code = (
        f"import sys; sys.path.insert(0, {shared!r})\n"
        "from crashdiag.cloud.ecs_sdk import SdkEcsApi\n"
        "SdkEcsApi(access_key_id='a', access_key_secret='b')\n"
        "bad = [m for m in sys.modules if m.startswith(('alibabacloud', 'darabonba', 'Tea', 'tenacity', 'aiohttp', 'requests'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# -- signatures and credentials ------------------------------------------------------------


def test_wrong_secret_is_signature_mismatch_not_retried(ecs: EcsStandIn) -> None:
    api = make_api(ecs, access_key_secret="not-the-secret-1234")
    err = expect_error(api.instance_status, REGION, WEB)
    assert err.code == "SignatureDoesNotMatch" and not err.retryable
    assert err.request_id
    assert ecs.count() == 1
    assert "not-the-secret-1234" not in str(err)


def test_unknown_access_key(ecs: EcsStandIn) -> None:
    err = expect_error(
        make_api(ecs, access_key_id="LTAI-unknown").cloud_assistant_online, REGION, WEB
    )
    assert err.code == "InvalidAccessKeyId.NotFound" and not err.retryable
    assert ecs.calls()[0].status == 404


def test_stale_date_is_rejected(ecs: EcsStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    from alibabacloud_tea_openapi.utils import Utils

    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: "2020-01-01T00:00:00Z"))
    err = expect_error(make_api(ecs).instance_status, REGION, WEB)
    assert err.code == "InvalidTimeStamp.Expired" and not err.retryable


def test_verifier_rejects_tampering(ecs: EcsStandIn) -> None:
    make_api(ecs).run_command(REGION, WEB, SCRIPT, {"since": "42"}, 60)
    rec = ecs.calls("RunCommand")[0]
    keys = {STANDIN_KEY_ID: STANDIN_SECRET}

    def check(**change) -> str:
        args = dict(
            method=rec.method,
            path=rec.path,
            raw_query=rec.raw_query,
            headers=rec.headers,
            body=rec.body,
        )
        args.update(change)
        try:
            verify_acs3(secrets=keys, **args)
        except Exception as exc:  # noqa: BLE001
            return exc.code
        return "ok"

    assert check() == "ok"
    assert check(raw_query=rec.raw_query.replace("%2242%22", "%2243%22")) == "SignatureDoesNotMatch"
    assert check(method="GET") == "SignatureDoesNotMatch"
    assert check(body=b"x") == "SignatureDoesNotMatch"
    assert (
        check(headers={**rec.headers, "x-acs-action": ["DeleteInstance"]})
        == "SignatureDoesNotMatch"
    )
    unsigned = {**rec.headers, "x-acs-extra": ["1"]}
    assert check(headers=unsigned) == "IncompleteSignature"
    assert (
        check(headers={k: v for k, v in rec.headers.items() if k != "authorization"})
        == "IncompleteSignature"
    )


def test_security_token_is_sent_and_checked(cloud: SimulatedCloud) -> None:
    with EcsStandIn(cloud, security_tokens={STANDIN_KEY_ID: SECURITY_TOKEN}) as server:
        assert (
            make_api(server, security_token=SECURITY_TOKEN).instance_status(REGION, WEB)
            == "Starting"
        )
        assert server.calls()[0].headers["x-acs-security-token"] == [SECURITY_TOKEN]
        err = expect_error(
            make_api(server, security_token="sts-wrong-token").instance_status, REGION, WEB
        )
        assert err.code == "InvalidSecurityToken.MismatchWithAccessKey" and not err.retryable
        # a transport failure with a token configured: the SDK exception holding the
        # signed request must not travel with our error
        server.reset_connection("*", None)
        err = expect_error(
            make_api(server, security_token=SECURITY_TOKEN, attempts=2).instance_status, REGION, WEB
        )
        assert err.retryable and err.__cause__ is None and err.__context__ is None


# -- retries -------------------------------------------------------------------------------


def test_throttling_twice_then_success(ecs: EcsStandIn) -> None:
    ecs.inject("DescribeCloudAssistantStatus", 2, "Throttling.User", 400)
    assert make_api(ecs).cloud_assistant_online(REGION, WEB) is True
    recs = ecs.calls("DescribeCloudAssistantStatus")
    assert [(r.status, r.code) for r in recs] == [
        (400, "Throttling.User"),
        (400, "Throttling.User"),
        (200, None),
    ]
    nonces = {r.headers["x-acs-signature-nonce"][0] for r in recs}
    assert len(nonces) == 3  # every attempt is signed afresh


def test_retry_after_header_is_honoured(ecs: EcsStandIn) -> None:
    ecs.inject("DescribeInstanceStatus", 1, "Throttling.User", retry_after_ms=300)
    t0 = time.monotonic()
    assert make_api(ecs, backoff_max=1.0).instance_status(REGION, WEB) == "Starting"
    assert time.monotonic() - t0 >= 0.3  # waited what the server asked, not 10 ms
    assert [r.status for r in ecs.calls()] == [400, 200]


def test_credentials_from_settings_are_used_and_scrubbed(ecs: EcsStandIn) -> None:
    from crashdiag.settings import Settings

    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": STANDIN_KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": STANDIN_SECRET,
           "ECS_ENDPOINT": ecs.endpoint}
    api = SdkEcsApi.from_settings(Settings.from_env(env))
    api.protocol = "http"
    api.attempts, api.deadline = 2, 5.0
    assert api.instance_status(REGION, WEB) == "Starting"
    assert STANDIN_SECRET not in repr(api)
    assert api._scrub(f"x {STANDIN_SECRET} y") == "x *** y"


def test_throttling_beyond_attempts_surfaces_retryable(ecs: EcsStandIn) -> None:
    ecs.inject("*", None, "Throttling.User")
    err = expect_error(make_api(ecs, attempts=3).instance_status, REGION, WEB)
    assert err.code == "Throttling.User" and err.retryable
    assert ecs.count() == 3


def test_persistent_503_gives_up_after_bounded_attempts(ecs: EcsStandIn) -> None:
    ecs.inject("*", None, "ServiceUnavailable", 503)
    err = expect_error(make_api(ecs, attempts=3).console_output, REGION, WEB)
    assert err.code == "ServiceUnavailable" and err.retryable
    assert ecs.count("GetInstanceConsoleOutput") == 3
    assert all(r.status == 503 for r in ecs.calls())


def test_internal_error_retried_then_ok(ecs: EcsStandIn) -> None:
    ecs.inject("DescribeInstanceStatus", 1, "InternalError")
    assert make_api(ecs).instance_status(REGION, WEB) == "Starting"
    assert [r.status for r in ecs.calls()] == [500, 200]


def test_deadline_bounds_the_retries(ecs: EcsStandIn) -> None:
    # 1,000 attempts allowed: only the deadline can stop the retries after a few dozen
    # (the number of calls is the outcome; how long it took is the bench's business)
    api = make_api(ecs, attempts=1000, deadline=1.0, backoff_initial=0.05, backoff_max=0.1)
    api.instance_status(REGION, WEB)  # the first call loads the SDK; not part of the deadline
    before = ecs.count()
    ecs.inject("*", None, "InternalError", 500)
    err = expect_error(api.instance_status, REGION, WEB)
    assert err.code == "InternalError" and err.retryable
    assert 2 <= ecs.count() - before < 200


def test_connection_reset_is_retried(ecs: EcsStandIn) -> None:
    api = make_api(ecs)
    assert api.instance_status(REGION, WEB) == "Starting"  # a pooled keep-alive connection now
    ecs.reset_connection("DescribeInstanceStatus", 1)
    assert api.instance_status(REGION, WEB) == "Running"
    recs = ecs.calls("DescribeInstanceStatus")
    assert [r.status for r in recs] == [200, None, 200]


def test_connection_reset_persistent_is_retryable(ecs: EcsStandIn) -> None:
    ecs.reset_connection("*", None)
    err = expect_error(make_api(ecs, attempts=2).cloud_assistant_online, REGION, WEB)
    assert err.code == "ConnectionError" and err.retryable
    assert ecs.count() == 2


def test_slow_reply_past_read_timeout_is_retryable(ecs: EcsStandIn) -> None:
    ecs.delay("DescribeInstanceStatus", 1.0)
    api = make_api(ecs, read_timeout=0.25, attempts=2)
    t0 = time.monotonic()
    err = expect_error(api.instance_status, REGION, WEB)
    assert err.code == "RequestTimeout" and err.retryable
    assert ecs.count() == 2
    assert time.monotonic() - t0 < 2.0


def test_run_command_retry_after_lost_reply_runs_once(
    ecs: EcsStandIn, cloud: SimulatedCloud
) -> None:
    ecs.delay("RunCommand", 1.0, times=1)  # the command runs, the reply comes too late
    api = make_api(ecs, read_timeout=0.4)
    invoke_id = api.run_command(REGION, WEB, SCRIPT, {"since": "7"}, 60)
    recs = ecs.calls("RunCommand")
    assert len(recs) == 2
    assert recs[0].params["ClientToken"] == recs[1].params["ClientToken"]
    assert [c for c in cloud.calls if c[0] == "RunCommand"] == [("RunCommand", WEB)]  # ran once
    assert api.invocation_result(REGION, invoke_id, WEB).output.startswith(b"since=7\n")


# -- no credentials in errors or logs --------------------------------------------------------


def test_secret_never_in_exception_text_or_logs(
    cloud: SimulatedCloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    errors = list(_raised)  # whatever the tests above saw, plus a fresh set of each kind
    with EcsStandIn(cloud, security_tokens={STANDIN_KEY_ID: SECURITY_TOKEN}) as server:
        api = make_api(server, security_token=SECURITY_TOKEN, attempts=2)
        errors.append(
            expect_error(
                make_api(server, security_token="wrong-token-xyz").instance_status, REGION, WEB
            )
        )
        errors.append(
            expect_error(
                make_api(
                    server, access_key_secret="not-the-secret-1234", security_token=SECURITY_TOKEN
                ).instance_status,
                REGION,
                WEB,
            )
        )
        errors.append(expect_error(api.invocation_result, REGION, "t-bogus", WEB))
        server.inject("*", 2, "Throttling.User")
        errors.append(expect_error(api.instance_status, REGION, WEB))
        server.inject("*", 2, "ServiceUnavailable")
        errors.append(expect_error(api.cloud_assistant_online, REGION, WEB))
        server.reset_connection("*", 2)
        errors.append(expect_error(api.console_output, REGION, WEB))
        server.delay("*", 0.6, times=1)
        errors.append(
            expect_error(
                make_api(
                    server, read_timeout=0.2, attempts=1, security_token=SECURITY_TOKEN
                ).instance_status,
                REGION,
                WEB,
            )
        )
    codes = {e.code for e in errors}
    assert {
        "InvalidSecurityToken.MismatchWithAccessKey",
        "SignatureDoesNotMatch",
        "InvalidInvokeId.NotFound",
        "Throttling.User",
        "ServiceUnavailable",
        "ConnectionError",
        "RequestTimeout",
    } <= codes
    for err in errors:
        assert isinstance(err, CloudError)
        texts = [str(err), repr(err), err.message, "".join(traceback.format_exception(err))]
        for text in texts:
            for secret in (STANDIN_SECRET, SECURITY_TOKEN, "not-the-secret-1234"):
                assert secret not in text
        assert err.__context__ is None and err.__cause__ is None
    assert STANDIN_SECRET not in caplog.text and SECURITY_TOKEN not in caplog.text
