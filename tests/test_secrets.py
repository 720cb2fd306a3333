"""Secrets scan: the whole pipeline runs with a sentinel in every secret setting, over the
real clients and stand-ins (OSS, ECS with ACS3 signatures, DingTalk with signing, SMTP
over TLS), including failures and malformed events. No sentinel may appear in any object
the pipeline stored, any log record, any notification body, or any error text."""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest
from fixtures_world import EVENTS, FakeClock, event, instances  # noqa: F401

from crashdiag.cloud.ecs_sdk import SdkEcsApi
from crashdiag.cloud.invoke import InlineInvoker
from crashdiag.cloud.simulate import SimulatedCloud
from crashdiag.notify import build_notifier
from crashdiag.pipeline.stages import Pipeline
from crashdiag.settings import Settings
from fixtures_oss import oss_standin, oss_store  # noqa: F401
from standins.dingtalk import DingTalkStandIn
from standins.ecs import STANDIN_KEY_ID, EcsStandIn
from standins.smtp import SmtpStandIn, make_test_cert

SENTINELS = {
    "ecs": "SENTINEL-ak-secret-6c1f0e",
    "token": "SENTINEL-sts-token-b2d4a8",
    "robot_token": "SENTINELrobottoken91e7",
    "robot_secret": "SECSENTINEL-robot-signing-44aa",
    "smtp": "SENTINEL-smtp-password-3f9d",
}


@pytest.fixture
def cert(tmp_path_factory):
    return make_test_cert(tmp_path_factory.mktemp("certs"))


def test_no_secret_reaches_objects_logs_messages_or_errors(instances, oss_store, cert, caplog, monkeypatch):  # noqa: F811
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG)
    cloud = SimulatedCloud.from_dir(instances)
    cloud.instances["i-bp1journalonly05"].error_code = "ClientNotResponse"  # a failure report too
    cloud.instances["i-bp1journalonly05"].console = None
    errors: list[str] = []
    with EcsStandIn(cloud, access_keys={STANDIN_KEY_ID: SENTINELS["ecs"]}, security_tokens={STANDIN_KEY_ID: SENTINELS["token"]}) as ecs_server, \
            DingTalkStandIn(token=SENTINELS["robot_token"], secret=SENTINELS["robot_secret"]) as robot, \
            SmtpStandIn("ssl", cert, user="crashdiag@example.com", password=SENTINELS["smtp"]) as smtp:
        settings = Settings(
            lang="en", access_key_id=STANDIN_KEY_ID, access_key_secret=SENTINELS["ecs"], security_token=SENTINELS["token"],
            dingtalk_webhook=robot.webhook, dingtalk_secret=robot.secret, smtp_host="127.0.0.1", smtp_port=smtp.port,
            smtp_security="ssl", smtp_user="crashdiag@example.com", smtp_password=SENTINELS["smtp"],
            mail_from="crashdiag@example.com", mail_to="oncall@example.com", collect_poll_seconds=0.5,
        )
        assert all(s not in repr(settings) for s in SENTINELS.values())
        ecs = SdkEcsApi(access_key_id=STANDIN_KEY_ID, access_key_secret=SENTINELS["ecs"], security_token=SENTINELS["token"],
                        endpoint=ecs_server.endpoint, protocol="http", attempts=3, deadline=20, backoff_initial=0.01)
        clock = FakeClock()
        notifier = build_notifier(settings, oss_store, opener=urllib.request.build_opener(urllib.request.ProxyHandler({})),
                                  ssl_context=cert.client_context())
        pipeline = Pipeline(oss_store, ecs, None, settings, clock=clock, sleep=clock.sleep, notifier=notifier)

        def collect_then_diagnose(payload: bytes) -> None:
            ref = json.loads(payload)
            pipeline.collect(ref)
            prefix = f"incidents/{ref['region']}/{ref['instance_id']}/{ref['incident_id']}/"
            if oss_store.exists(f"{prefix}crash.log"):
                pipeline.diagnose(f"{prefix}crash.log")
            if oss_store.exists(f"{prefix}report.json"):
                pipeline.notify(f"{prefix}report.json")

        pipeline.invoker = InlineInvoker({settings.fc_collect_function: collect_then_diagnose})
        ecs_server.inject("DescribeInstanceStatus", 1, "Throttling.User")  # an error path, logged and retried
        robot.fail_next(1, http_status=503)  # a failed send, recorded in notify.json
        for name in ("eventbridge-crash-kdump-executing.json", "eventbridge-crash-journal-only.json",
                     "eventbridge-system-failure-bootloop.json", "malformed-bad-instance-id.json", "malformed-not-json.json"):
            try:
                pipeline.ingest((EVENTS / name).read_bytes())
            except Exception as exc:  # noqa: BLE001 - collected for the scan, then re-raised below
                errors.append(f"{type(exc).__name__}: {exc}")
        pipeline.flush_notifications()
        bodies = [json.dumps(m, ensure_ascii=False) for m in robot.messages] + [r.raw.decode("utf-8", "replace") for r in smtp.received]
        assert robot.messages and smtp.received, "the scan needs real notifications to look at"

    objects = {k: oss_store.get(k).decode("utf-8", "replace") for k in oss_store.list("")}
    assert any(k.endswith("report.json") for k in objects) and any(k.endswith("notify.json") for k in objects)
    # Every log record of the process, but the stand-in servers' own access logs (they play
    # DingTalk and the SMTP server: what they see is what the real services would see).
    client_side = [r for r in caplog.records if r.name not in ("werkzeug", "mail.log")]
    assert any(r.name.startswith("crashdiag") for r in client_side)
    logs = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in client_side)
    haystacks = {"objects": "\n".join(objects.values()), "logs": logs, "messages": "\n".join(bodies), "errors": "\n".join(errors)}
    for where, text in haystacks.items():
        for name, secret in SENTINELS.items():
            assert secret not in text, f"the {name} secret leaked into {where}"
    assert not errors, errors
