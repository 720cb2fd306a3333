"""OSS as a bucket created today behaves: V4 only, refusals said plainly, credentials that
change under a long-lived instance.

- A replay against the OSS stand-in (which refuses V1 and verifies V4) signs every
  request and URL V4, the guest's curl upload included.
- With a wrong key, replay and the handlers end with one readable line that says what to
  fix ("OSS refused the request: ..."), never a traceback.
- Credentials are read per invocation: a cached pipeline, ECS client and FC invoker
  follow newer credentials without being rebuilt.
"""

# ruff: noqa: F811

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crashdiag import cli
from crashdiag.cloud.credentials import Credentials, CredentialSource
from crashdiag.cloud.ecs_sdk import SdkEcsApi
from crashdiag.cloud.invoke import Fc2Invoker
from crashdiag.cloud.simulate import SimulatedCloud
from crashdiag.cloud.store import StoreRefused
from crashdiag.pipeline import runtime
from crashdiag.settings import Settings
from fixtures_oss import CREDENTIALS, REGION, oss_standin, oss_store  # noqa: F401
from standins.ecs import STANDIN_KEY_ID, STANDIN_SECRET, EcsStandIn
from standins.fc import FcStandIn

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
INSTANCES = EVENTS / "instances"
CRASH_EVENT = EVENTS / "eventbridge-crash-kdump-executed.json"


@pytest.fixture(autouse=True)
def _keep_log_level():
    """``crashdiag replay`` quiets the crashdiag logger for its own process; run in-process
    here, the level is put back so later tests still see their log records."""
    logger = logging.getLogger("crashdiag")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
def fresh_runtime(monkeypatch):
    """A new Function Compute instance: nothing cached, no credentials handed over yet."""
    monkeypatch.setattr(runtime, "_cache", {})
    monkeypatch.setattr(runtime, "_credentials", CredentialSource())
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def _oss_env(monkeypatch, oss_standin, bucket: str, key_id: str, secret: str, tmp_path: Path) -> None:
    monkeypatch.setenv("OSS_BUCKET", bucket)
    monkeypatch.setenv("OSS_ENDPOINT", oss_standin.endpoint)
    monkeypatch.setenv("CRASHDIAG_REGION", REGION)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
    monkeypatch.setenv("CRASHDIAG_INSTANCES_DIR", str(INSTANCES))
    monkeypatch.setenv("CRASHDIAG_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("COLLECT_POLL_SECONDS", "0.05")


# -- replay, end to end ------------------------------------------------------------------------


def test_replay_against_a_v4_only_bucket_signs_everything_v4(oss_store, oss_standin, monkeypatch, capsys, tmp_path):
    _oss_env(monkeypatch, oss_standin, oss_store.bucket.bucket_name, *CREDENTIALS_PAIR, tmp_path)
    assert cli.main(["replay", str(CRASH_EVENT), "--json"]) == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out)
    (incident,) = out["incidents"]
    assert incident["report"] and incident["kind"]
    assert "x-oss-signature-version=OSS4-HMAC-SHA256" in incident["report_url"]
    assert oss_standin.signed and "V1" not in oss_standin.signed and "anonymous" not in oss_standin.signed
    assert oss_store.exists(incident["report"])


def test_replay_with_a_wrong_key_says_what_oss_refused(oss_store, oss_standin, monkeypatch, capsys, tmp_path):
    _oss_env(monkeypatch, oss_standin, oss_store.bucket.bucket_name, CREDENTIALS.access_key_id, "not-the-secret", tmp_path)
    assert cli.main(["replay", str(CRASH_EVENT)]) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("crashdiag: OSS refused the request: SignatureDoesNotMatch")
    assert "CRASHDIAG_REGION" in err and "Traceback" not in err and "not-the-secret" not in err
    assert not oss_store.list("incidents/")  # nothing was written with the wrong key


def test_replay_without_a_region_is_a_clear_error(oss_store, oss_standin, monkeypatch, capsys, tmp_path):
    _oss_env(monkeypatch, oss_standin, oss_store.bucket.bucket_name, *CREDENTIALS_PAIR, tmp_path)
    monkeypatch.delenv("CRASHDIAG_REGION")
    assert cli.main(["replay", str(CRASH_EVENT)]) == cli.EXIT_INPUT
    assert "set CRASHDIAG_REGION" in capsys.readouterr().err


CREDENTIALS_PAIR = (CREDENTIALS.access_key_id, CREDENTIALS.access_key_secret)


# -- handlers ------------------------------------------------------------------------------------


def _run_handler(function: str, event: bytes, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The real handler module in a fresh interpreter, as FC runs it (context=None)."""
    code = (
        "import sys, logging\n"
        f"sys.path[:0] = [{str(ROOT / 'functions' / function)!r}, {str(ROOT / 'shared')!r}]\n"
        "import index\n"
        "print(index.handler(sys.stdin.buffer.read(), None))\n"
    )
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run([sys.executable, "-c", code], input=event, capture_output=True, timeout=120,
                          env={**keep, **env})


def test_ingest_handler_refused_by_oss_logs_one_line_and_returns_the_reason(oss_store, oss_standin):
    env = {"OSS_BUCKET": oss_store.bucket.bucket_name, "OSS_ENDPOINT": oss_standin.endpoint, "CRASHDIAG_REGION": REGION,
           "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-revoked", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "whatever-secret"}
    r = _run_handler("on_ecs_event", CRASH_EVENT.read_bytes(), env)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert result["code"] == "InvalidAccessKeyId" and result["stage"] == "ingest"
    assert result["refused"].startswith("OSS refused the request: InvalidAccessKeyId")
    assert "credentials" in result["refused"]  # what to fix
    stderr = r.stderr.decode()
    assert "ingest stopped: OSS refused the request: InvalidAccessKeyId" in stderr
    assert "Traceback" not in stderr and "whatever-secret" not in stderr + r.stdout.decode()


def test_run_stage_passes_other_errors_through(caplog):
    with pytest.raises(KeyError):
        runtime.run_stage("collect", lambda: {}["missing"])
    with caplog.at_level(logging.ERROR, logger="crashdiag.runtime"):
        out = runtime.run_stage("fleet", lambda: (_ for _ in ()).throw(StoreRefused("OSS refused the request: AccessDenied x",
                                                                                    code="AccessDenied", status=403)))
    assert out == {"refused": "OSS refused the request: AccessDenied x", "stage": "fleet", "code": "AccessDenied"}
    assert caplog.records[-1].getMessage() == "fleet stopped: OSS refused the request: AccessDenied x"


# -- credentials per invocation ----------------------------------------------------------------


class _Context:
    """What FC's Python 3.10 runtime passes as ``context.credentials``."""

    def __init__(self, key_id: str, secret: str, token: str = "") -> None:
        self.access_key_id, self.access_key_secret, self.security_token = key_id, secret, token


def test_a_cached_pipeline_signs_with_each_invocations_credentials(oss_store, oss_standin, fresh_runtime, tmp_path):
    oss_standin.add_key("STS.first", "first-secret", "token-1")
    settings = Settings.from_env({"OSS_BUCKET": oss_store.bucket.bucket_name, "OSS_ENDPOINT": oss_standin.endpoint,
                                  "CRASHDIAG_REGION": REGION})
    runtime._cache["settings"] = settings  # what Settings.from_env() read when the instance started

    first = runtime.pipeline_for("ingest", credentials=_Context("STS.first", "first-secret", "token-1"))
    assert first.ingest(CRASH_EVENT.read_bytes()).accepted
    # 36 hours later FC hands this still-warm instance new STS credentials; the old ones die
    oss_standin.revoke_key("STS.first")
    oss_standin.add_key("STS.second", "second-secret", "token-2")
    second = runtime.pipeline_for("ingest", credentials=_Context("STS.second", "second-secret", "token-2"))
    assert second is first  # the same clients, no rebuild
    assert second.ingest(CRASH_EVENT.read_bytes()).duplicates  # read and written with the new key
    # no context credentials (Python 3.12): the environment as it is now
    oss_standin.revoke_key("STS.second")
    oss_standin.add_key("STS.third", "third-secret")
    os.environ.update(ALIBABA_CLOUD_ACCESS_KEY_ID="STS.third", ALIBABA_CLOUD_ACCESS_KEY_SECRET="third-secret")
    try:
        assert runtime.pipeline_for("ingest").ingest(CRASH_EVENT.read_bytes()).duplicates
    finally:
        del os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
    # a stale key left in place is refused, readably
    oss_standin.revoke_key("STS.third")
    with pytest.raises(StoreRefused, match="InvalidAccessKeyId"):
        runtime.pipeline_for("ingest").ingest(CRASH_EVENT.read_bytes())


def test_the_ecs_client_reads_its_credentials_per_request():
    cloud = SimulatedCloud.from_dir(str(INSTANCES))
    instance = next(iter(cloud.instances))
    with EcsStandIn(cloud, access_keys={STANDIN_KEY_ID: STANDIN_SECRET}) as server:
        source = CredentialSource(Credentials(STANDIN_KEY_ID, STANDIN_SECRET))
        api = SdkEcsApi(endpoint=server.endpoint, protocol="http", credentials=source, attempts=1)
        assert api.instance_status(REGION, instance)
        client = api._client(REGION)
        server.access_keys.clear()
        server.access_keys["LTAI-rotated"] = "rotated-secret"
        source.update(Credentials("LTAI-rotated", "rotated-secret"))
        assert api.instance_status(REGION, instance)
        assert api._client(REGION) is client  # the same SDK client, new credentials
        auth = [(r.headers.get("authorization") or [""])[0] for r in server.requests]
        assert f"Credential={STANDIN_KEY_ID}," in auth[0] and "Credential=LTAI-rotated," in auth[-1]
        assert all(r.code is None for r in server.requests)


def test_the_fc_invoker_follows_new_credentials():
    source = CredentialSource(Credentials("fc-key-1", "fc-secret-1"))
    with FcStandIn() as fc:
        invoker = Fc2Invoker(fc.endpoint, "ecs-crashdiag-collect", source)
        invoker.invoke_async("collect", b"{}")
        first = invoker.client
        source.update(Credentials("fc-key-2", "fc-secret-2", "token"))
        invoker.invoke_async("collect", b"{}")
        assert invoker.client is not first and len(fc.invocations) == 2


# -- URL lifetimes -------------------------------------------------------------------------------


@pytest.mark.parametrize("var", ["REPORT_LINK_TTL", "UPLOAD_URL_TTL"])
def test_presigned_url_lifetimes_are_held_to_the_v4_limit(var):
    assert getattr(Settings.from_env({var: "604800"}), var.lower()) == 604800  # 7 days: the most V4 allows
    for bad in ("604801", "0", "-5"):
        with pytest.raises(ValueError, match=f"{var} must be 1..604800 seconds .*7 days"):
            Settings.from_env({var: bad})
