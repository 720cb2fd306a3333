"""Notifications against real protocol peers on 127.0.0.1:

- DingTalk: a robot stand-in (pytest-httpserver) that checks the access token, the signed
  timestamp's one-hour window and the HMAC signature as DingTalk does, the keyword, and
  the 20-a-minute limit (130101, then 10 minutes of throttling);
- email: aiosmtpd with implicit TLS, STARTTLS or plain, with AUTH; a certificate made at
  test time; the client verifies it as it would verify DirectMail's;
- OSS: the oss2 client against the OSS stand-in (conditional writes are real 409s).

A fake wall clock drives the notifier, its backoff sleeps and the robot's own clock, so
"ten minutes later" takes no time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crashdiag.notify import build_notifier
from crashdiag.notify.messages import md_inert
from crashdiag.pipeline.stages import Pipeline
from crashdiag.settings import Settings
from fixtures_oss import oss_standin, oss_store  # noqa: F401
from standins.dingtalk import DingTalkStandIn
from standins.smtp import SmtpStandIn, make_test_cert

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
INSTANCES = EVENTS / "instances"
LOGS = {
    "blk": (INSTANCES / "i-bp1kdumpel7demo01/root/var/crash/127.0.0.1-2026-11-26-10:00:01/vmcore-dmesg.txt").read_bytes(),
    "oom": (INSTANCES / "i-bp1oompanic0002/root/var/log/messages").read_bytes(),
    "ubuntu": (INSTANCES / "i-bp1ubuntu0000003/root/var/crash/202611261000/dmesg.202611261000").read_bytes(),
    "sample": (EVENTS / "logs/vmcore-dmesg-sample.txt").read_bytes(),
}
SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
TOKEN = "dt-access-token-5b1e0c7d9a"
SMTP_USER, SMTP_PASSWORD = "alerts@mail.example.com", "smtp-pass-Zq8!x"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Wall:
    """A wall clock for both sides: starts now, moves only when slept or advanced."""

    def __init__(self) -> None:
        self.t = time.time()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds

    advance = sleep


@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    return make_test_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def robot(wall):
    with DingTalkStandIn(token=TOKEN, secret=SECRET, clock=wall) as r:
        yield r


@pytest.fixture
def smtp(cert):
    with SmtpStandIn("ssl", cert, user=SMTP_USER, password=SMTP_PASSWORD) as s:
        yield s


def settings_for(robot=None, smtp=None, **over) -> Settings:
    values = dict(lang="en", report_link_ttl=3600 * 24 * 7, access_key_secret="cloud-secret-key-XYZ",
                  dingtalk_webhook=robot.webhook if robot else "", dingtalk_secret=robot.secret if robot else "",
                  smtp_host="127.0.0.1" if smtp else "", smtp_port=smtp.port if smtp else 465,
                  smtp_security=smtp.security if smtp else "ssl", smtp_user=smtp.user if smtp else "",
                  smtp_password=smtp.password if smtp else "", mail_from=SMTP_USER, mail_to="oncall@example.com, sre@example.com")
    values.update(over)
    return Settings(**values)


class World:
    def __init__(self, store, settings, wall, cert, outbox_dir="") -> None:
        self.store, self.settings, self.wall, self.cert = store, settings, wall, cert
        self.outbox_dir = outbox_dir
        self.pipeline = Pipeline(store, None, None, settings, notifier=self.notifier())

    def notifier(self, opener=DIRECT):
        """A notifier as one Function Compute instance would hold it."""
        return build_notifier(self.settings, self.store, outbox_dir=self.outbox_dir, now=self.wall, sleep=self.wall.sleep,
                              opener=opener, ssl_context=self.cert.client_context())

    def incident(self, instance: str = "i-bp1kdumpel7demo01", incident: str = "e-test00000001", log: str | bytes = "blk", **inc) -> str:
        """An incident diagnosed by the real classifier; returns its report.json key."""
        log = LOGS[log] if isinstance(log, str) else log
        prefix = f"incidents/cn-hangzhou/{instance}/{incident}/"
        ev = {"incident_id": incident, "instance_id": instance, "region": "cn-hangzhou", "code": "InstanceFailure.Reboot",
              "status": "Executing", "execute_start_time": "2026-11-26T10:00:01Z", **inc}
        collect = {"method": "kdump", "complete": True, "log": {"source": "kdump", "size": str(len(log))}, "context": {},
                   "notes": [], "incident": ev}
        self.store.put(f"{prefix}collect.json", json.dumps(collect).encode())
        self.store.put(f"{prefix}crash.log", log)
        self.pipeline.diagnose(f"{prefix}crash.log")
        return f"{prefix}report.json"

    def notify_json(self, report_key: str) -> dict:
        return json.loads(self.store.get(report_key.replace("report.json", "notify.json")))


@pytest.fixture
def world(oss_store, wall, cert, robot, smtp):  # noqa: F811
    return World(oss_store, settings_for(robot, smtp), wall, cert)


def statuses(doc: dict) -> dict[str, str]:
    return {name: c["status"] for name, c in doc["channels"].items()}


# -- the whole way: a replayed crash event ---------------------------------------------------------


def test_replayed_crash_event_sends_one_signed_message_and_one_email(tmp_path, cert, monkeypatch):
    """`crashdiag replay` with DINGTALK_* and SMTP_* set: the real clients, default TLS
    verification (the test certificate trusted through SSL_CERT_FILE), real time."""
    from crashdiag.replay import render_replay, replay

    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.cert))
    instances = tmp_path / "instances"
    shutil.copytree(INSTANCES, instances, symlinks=True, ignore=shutil.ignore_patterns("*.py"))
    with DingTalkStandIn(token=TOKEN, secret=SECRET, keyword="crashdiag") as robot, \
            SmtpStandIn("ssl", cert, user=SMTP_USER, password=SMTP_PASSWORD) as smtp:
        settings = settings_for(robot, smtp, store_dir=str(tmp_path / "out" / "store"), instances_dir=str(instances),
                                collect_poll_seconds=0.05, dingtalk_keyword="crashdiag", dingtalk_at_mobiles="13800000000")
        result = replay((EVENTS / "eventbridge-crash-kdump-executing.json").read_bytes(), settings)

        assert len(robot.requests) == 1 and robot.requests[0].errcode == 0  # signature and timestamp verified
        (payload,) = robot.messages
        text = payload["markdown"]["text"]
        for expected in ("i-bp1kdumpel7demo01", "cn-hangzhou", "null\\_deref", "blk\\_mq\\_rq\\_timed\\_out",
                         "Upgrade the kernel to", "affected", "high", "kdump vmcore-dmesg", "[Full report](file://",
                         "crashdiag", "@13800000000"):
            assert expected in text, expected
        assert payload["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}

        (mail,) = smtp.received
        assert mail.authenticated_as == SMTP_USER and mail.tls
        assert sorted(mail.rcpt_tos) == ["oncall@example.com", "sre@example.com"]
        m = mail.message
        assert m["Subject"] == "[crash] i-bp1kdumpel7demo01 (web-01): BUG: unable to handle kernel NULL pointer dereference in blk_mq_rq_timed_out"
        assert m.get_body(("plain",)).get_content().count("blk_mq_rq_timed_out") >= 2
        html = m.get_body(("html",)).get_content()
        assert "<h3>Evidence</h3>" in html and "<h3>Call trace</h3>" in html and "blk_mq_timeout_work" in html
        (att,) = list(m.iter_attachments())
        assert att.get_filename() == "crash-i-bp1kdumpel7demo01.log.txt"
        assert b"blk_mq_rq_timed_out+0x18/0xa0" in att.get_content().encode()

    (inc,) = result["incidents"]
    assert inc["states"][-1] == "notified"
    assert {n["channel"]: n["status"] for n in inc["notifications"]} == {"dingtalk": "sent", "email": "sent"}
    assert not (tmp_path / "out" / "outbox").exists()  # configured channels send, they do not write the outbox
    printed = render_replay(result, "en")
    assert "DingTalk card (sent to DingTalk: sent)" in printed and "First step: Upgrade the kernel" in printed


def test_replay_without_settings_writes_the_outbox_and_prints_the_card(tmp_path):
    from crashdiag.replay import render_replay, replay

    instances = tmp_path / "instances"
    shutil.copytree(INSTANCES, instances, symlinks=True, ignore=shutil.ignore_patterns("*.py"))
    settings = Settings(store_dir=str(tmp_path / "out" / "store"), instances_dir=str(instances), collect_poll_seconds=0.05)
    result = replay((EVENTS / "eventbridge-crash-kdump-executing.json").read_bytes(), settings)
    outbox = tmp_path / "out" / "outbox"
    files = sorted(p.name for p in outbox.iterdir())
    assert files == ["i-bp1kdumpel7demo01.e-bp1crash0kdump01.dingtalk.json", "i-bp1kdumpel7demo01.e-bp1crash0kdump01.eml"]
    payload = json.loads((outbox / files[0]).read_text())
    assert payload["msgtype"] == "markdown" and "blk\\_mq\\_rq\\_timed\\_out" in payload["markdown"]["text"]
    import email
    import email.policy

    m = email.message_from_bytes((outbox / files[1]).read_bytes(), policy=email.policy.default)
    assert m["Subject"].startswith("[crash] i-bp1kdumpel7demo01 (web-01):") and list(m.iter_attachments())
    printed = render_replay(result, "en")
    assert "-- DingTalk card (outbox: sent)" in printed and "Instance: i-bp1kdumpel7demo01" in printed
    assert result["incidents"][0]["states"][-1] == "notified"
    # replaying the same event again: a duplicate delivery, nobody is told twice
    again = replay((EVENTS / "eventbridge-crash-kdump-executing.json").read_bytes(), settings)
    assert again["incidents"][0]["duplicate"] and again["cards"] == []


# -- exactly once -------------------------------------------------------------------------------------


def test_duplicate_report_events_notify_once(world, robot, smtp):
    key = world.incident()
    first = world.pipeline.notify(key)
    second = world.pipeline.notify(key)  # the OSS event delivered again
    third = Pipeline(world.store, None, None, world.settings, notifier=world.notifier()).notify(key)  # on another instance
    assert len(robot.messages) == 1 and len(smtp.received) == 1
    assert statuses(first) == statuses(second) == statuses(third) == {"dingtalk": "sent", "email": "sent"}
    assert first["told"] and first["complete"]
    assert world.pipeline.states(key[: -len("report.json")])[-1] == "notified"


def test_racing_invocations_notify_once(world, robot, smtp):
    key = world.incident()
    pipelines = [Pipeline(world.store, None, None, world.settings, notifier=world.notifier()) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda p: p.notify(key), pipelines))
    assert len(robot.messages) == 1 and len(smtp.received) == 1
    doc = world.notify_json(key)
    assert statuses(doc) == {"dingtalk": "sent", "email": "sent"}
    assert [a["attempt"] for a in doc["channels"]["dingtalk"]["attempts"]] == [1]


def test_retry_after_a_partial_send_sends_only_what_is_missing(oss_store, wall, cert, robot):  # noqa: F811
    smtp = SmtpStandIn("ssl", cert, user=SMTP_USER, password=SMTP_PASSWORD)  # not started: SMTP is down
    w = World(oss_store, settings_for(robot, smtp), wall, cert)
    key = w.incident()
    doc = w.pipeline.notify(key)
    assert statuses(doc) == {"dingtalk": "sent", "email": "pending"}
    (attempt,) = doc["channels"]["email"]["attempts"]
    assert attempt["outcome"] == "failed" and "unreachable" in attempt["detail"] and "ConnectionRefusedError" in attempt["detail"]
    assert not doc["complete"] and "notified" not in w.pipeline.states(key[: -len("report.json")])
    with smtp:
        doc = w.pipeline.notify(key)  # Function Compute retries the invocation
        assert len(robot.messages) == 1 and len(smtp.received) == 1
    assert statuses(doc) == {"dingtalk": "sent", "email": "sent"}
    assert [a["outcome"] for a in doc["channels"]["email"]["attempts"]] == ["failed", "sent"]
    assert w.pipeline.states(key[: -len("report.json")])[-1] == "notified"


class Killed(BaseException):
    """The function instance dies (timeout, OOM) in the middle of a send."""


def test_a_sender_that_died_mid_send_is_resumed_after_its_lease(world, robot, smtp):
    key = world.incident()

    class DiesBeforeSending:
        def open(self, *a, **k):
            raise Killed()

    with pytest.raises(Killed):
        Pipeline(world.store, None, None, world.settings, notifier=world.notifier(opener=DiesBeforeSending())).notify(key)
    # FC retries at once: the claim is still live, so the retry does not send beside it
    doc = world.pipeline.notify(key)
    assert statuses(doc)["dingtalk"] == "in_progress" and len(robot.requests) == 0
    # (email was never reached by the dead invocation, so the retry sent it)
    assert statuses(doc)["email"] == "sent" and len(smtp.received) == 1
    world.wall.advance(world.settings.notify_lease_seconds + 1)
    world.pipeline.flush_notifications()
    doc = world.notify_json(key)
    assert statuses(doc) == {"dingtalk": "sent", "email": "sent"} and len(robot.messages) == 1
    dingtalk = doc["channels"]["dingtalk"]["attempts"]
    assert "outcome" not in dingtalk[0] and dingtalk[1]["outcome"] == "sent"  # the dead attempt stays on record


# -- storms, budget, repeats ------------------------------------------------------------------------


def test_storm_of_50_instances_sends_a_bounded_number_of_messages_listing_every_incident(world, robot, smtp):
    keys = [world.incident(f"i-storm{n:04d}", f"e-storm{n:04d}", log=("blk", "oom", "ubuntu")[n % 3]) for n in range(50)]
    with ThreadPoolExecutor(8) as pool:  # the OSS trigger fires 50 times at once, on several instances
        pipelines = [Pipeline(world.store, None, None, world.settings, notifier=world.notifier()) for _ in range(8)]
        list(pool.map(lambda i: pipelines[i % 8].notify(keys[i]), range(50)))
    burst = world.settings.notify_burst
    assert len(robot.messages) == burst and len(smtp.received) == burst
    world.wall.advance(60)  # the timer
    world.pipeline.flush_notifications()
    assert len(robot.messages) == burst + 1 and len(smtp.received) == burst + 1
    assert robot.answered(410100) == robot.answered(130101) == 0  # never throttled
    texts = robot.texts()
    for n in range(50):
        assert sum(md_inert(f"i-storm{n:04d}") in t for t in texts) == 1, n  # every incident, exactly once
    digest = texts[-1]
    assert digest.startswith("### [crash] 47 incidents, 3 kind(s) of crash") and digest.count("#### ") == 3
    bodies = [m.get_body(("plain",)).get_content() for m in smtp.messages]
    for n in range(50):
        assert sum(f"i-storm{n:04d}" in b for b in bodies) == 1, n
    for key in keys:
        assert statuses(world.notify_json(key)) == {"dingtalk": "sent", "email": "sent"}
        assert world.pipeline.states(key[: -len("report.json")])[-1] == "notified"
    world.wall.advance(60)
    world.pipeline.flush_notifications()  # nothing owed: nothing sent
    assert len(robot.messages) == burst + 1


def _storm_report(instance: str, name: str, group: int) -> dict:
    """A report as the pipeline writes it, for one of six kinds of crash (Chinese text)."""
    return {"source": f"incidents/cn-hangzhou/{instance}/e-1/crash.log",
            "incident": {"instance_id": instance, "instance_name": name, "region": "cn-hangzhou", "event_time": "2026-11-26T10:00:01Z"},
            "collection": {"method": "kdump", "complete": True},
            "diagnosis": {"kind": "null_deref", "title": f"BUG: unable to handle kernel NULL pointer dereference in storm_func_{group}",
                          "fingerprint": f"f{group:015d}", "confidence": "high",
                          "rule": {"id": f"r{group}", "cause": "驱动在设备复位时释放了仍在使用的请求结构，随后的超时处理访问了空指针。" * 2,
                                   "remedy_steps": ["将内核升级到包含修复的版本，并在升级前为系统盘创建快照。"]}}}


def test_storm_digest_of_6_groups_x_60_instances_with_chinese_names_is_split_not_cut(tmp_path, wall, robot):
    """360 incidents held for one flush: more than one robot message can carry, so the
    digest goes out in several, each under 20,000 bytes, every instance in exactly one."""
    from crashdiag.cloud.store import LocalStore
    from crashdiag.notify import build_notifier

    store = LocalStore(str(tmp_path / "store"))
    s = settings_for(robot, None, lang="zh", notify_burst=0, notify_rate_per_minute=1)  # one robot message a minute
    notifier = build_notifier(s, store, now=wall, sleep=wall.sleep, opener=DIRECT)
    names = {}
    for g in range(6):
        for n in range(60):
            instance = f"i-bp1storm{g}{n:03d}"
            names[instance] = f"华东生产集群订单数据库节点-{g}-{n:03d}"
            key = f"incidents/cn-hangzhou/{instance}/e-1/report.json"
            store.put(key, json.dumps(_storm_report(instance, names[instance], g), ensure_ascii=False).encode())
            assert notifier.notify_report(key)["notice"]["mode"] == "digest"
    wall.advance(60)
    notifier.flush()
    assert len(robot.messages) == 1  # the minute's budget: the other part waits
    wall.advance(60)
    notifier.flush()
    texts = robot.texts()
    assert len(texts) == 2 and robot.answered(0) == 2
    assert all(r.size <= 20000 for r in robot.requests)
    for instance, name in names.items():
        assert sum(f"{instance} ({name})" in t for t in texts) == 1, instance
    assert all("…" not in t for t in texts)  # nothing cut
    assert robot.messages[0]["markdown"]["title"].endswith("（第 1/2 条）")
    # the same digest under the old 15,000-character cut would not have fitted in one message
    assert sum(len(json.dumps(m, ensure_ascii=False).encode()) for m in robot.messages) > 20000
    docs = [json.loads(store.get(f"incidents/cn-hangzhou/{i}/e-1/notify.json")) for i in names]
    assert all(d["channels"]["dingtalk"]["status"] == "sent" for d in docs)


def test_never_more_than_the_minute_budget_even_when_every_incident_is_direct(oss_store, wall, cert, robot, smtp):  # noqa: F811
    w = World(oss_store, settings_for(robot, smtp, notify_burst=100), wall, cert)
    keys = [w.incident(f"i-budget{n:04d}", f"e-budget{n:04d}") for n in range(25)]
    for key in keys:
        w.pipeline.notify(key)
    assert len(robot.messages) == w.settings.notify_rate_per_minute == 10
    assert len(smtp.received) == 25  # email has no such budget
    wall.advance(60)
    w.pipeline.flush_notifications()
    assert len(robot.messages) == 11 and robot.answered(410100) == robot.answered(130101) == 0  # the other 15 in one digest
    assert all(statuses(w.notify_json(k))["dingtalk"] == "sent" for k in keys)


def test_repeats_of_the_same_crash_on_the_same_instance_become_a_count_in_a_follow_up(world, robot, smtp):
    first = world.incident(incident="e-repeat000001")
    world.pipeline.notify(first)
    assert len(robot.messages) == 1
    world.wall.advance(2 * 3600)
    second = world.incident(incident="e-repeat000002")
    doc = world.pipeline.notify(second)
    assert doc["notice"]["mode"] == "repeat" and len(robot.messages) == 1 and len(smtp.received) == 1  # no new page
    world.wall.advance(60)
    world.pipeline.flush_notifications()
    assert len(robot.messages) == 1  # the follow-up waits for its interval
    world.wall.advance(1800)
    third = world.incident(incident="e-repeat000003")
    world.pipeline.notify(third)
    world.wall.advance(1800)
    world.pipeline.flush_notifications()
    assert len(robot.messages) == 2 and len(smtp.received) == 2
    follow_up = robot.texts()[-1]
    assert "repeated crashes: 2 more on 1 instance" in follow_up and "2 more time(s)" in follow_up
    assert "repeated crashes" in smtp.messages[-1]["Subject"]
    for key in (second, third):
        assert statuses(world.notify_json(key)) == {"dingtalk": "sent", "email": "sent"}
    # a day after the last repeat the same crash pages again
    world.wall.advance(25 * 3600)
    fourth = world.incident(incident="e-repeat000004")
    assert world.pipeline.notify(fourth)["notice"]["mode"] == "direct" and len(robot.messages) == 3
    # another instance with the same crash is not a repeat
    other = world.incident(instance="i-bp1other0000001", incident="e-repeat000005")
    assert world.pipeline.notify(other)["notice"]["mode"] == "direct"


# -- DingTalk failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("errcode", [410100, 130101])
def test_dingtalk_throttled_holds_messages_until_the_robot_may_speak_again(world, robot, smtp, errcode):
    robot.fail_next(1, errcode=errcode)
    a = world.incident(incident="e-throttle0001")
    doc = world.pipeline.notify(a)
    assert statuses(doc) == {"dingtalk": "pending", "email": "sent"}  # one channel failing never blocks the other
    assert doc["channels"]["dingtalk"]["attempts"][0]["outcome"] == "throttled"
    mark = json.loads(world.store.get("notify/throttle/dingtalk.json"))
    assert mark["until"] == pytest.approx(world.wall() + 600) and str(errcode) in mark["detail"]
    world.wall.advance(60)
    b = world.incident(instance="i-bp1throttle0002", incident="e-throttle0002")
    world.pipeline.notify(b)
    for _ in range(5):
        world.wall.advance(60)
        world.pipeline.flush_notifications()
    assert len(robot.requests) == 1 and len(smtp.received) == 2  # DingTalk left alone while throttled
    world.wall.advance(600)
    world.pipeline.flush_notifications()
    assert len(robot.messages) == 1 and robot.answered(errcode) == 1
    assert "2 incidents" in robot.texts()[0]  # both held incidents in one message
    for key in (a, b):
        assert statuses(world.notify_json(key)) == {"dingtalk": "sent", "email": "sent"}


def test_dingtalk_keyword_rejection_is_reported_clearly_and_not_retried(oss_store, wall, cert, smtp):  # noqa: F811
    with DingTalkStandIn(token=TOKEN, secret=SECRET, keyword="crash-alert", clock=wall) as robot:
        w = World(oss_store, settings_for(robot, smtp), wall, cert)  # DINGTALK_KEYWORD not set
        key = w.incident()
        doc = w.pipeline.notify(key)
        assert statuses(doc) == {"dingtalk": "rejected", "email": "sent"}
        detail = doc["channels"]["dingtalk"]["done"]["detail"]
        assert "310000" in detail and "DINGTALK_KEYWORD" in detail and "keywords not in content" in detail
        assert doc["complete"] and w.pipeline.states(key[: -len("report.json")])[-1] == "notified"
        for _ in range(3):
            wall.advance(600)
            w.pipeline.flush_notifications()
        assert len(robot.requests) == 1


def test_a_robot_shared_with_another_sender_hits_the_limit_and_the_notice_waits(world, robot, smtp):
    """Someone else's 20 messages this minute on the same robot: DingTalk answers 410100 to
    ours, which is held (the throttle mark keeps every sender away for 10 minutes) and sent after."""
    from crashdiag.notify.dingtalk import DingTalkRobot

    other = DingTalkRobot(robot.webhook, SECRET, opener=DIRECT, now=world.wall, sleep=world.wall.sleep)
    for _ in range(20):
        assert other.post({"msgtype": "markdown", "markdown": {"title": "t", "text": "x"}}).status == "sent"
    key = world.incident()
    doc = world.pipeline.notify(key)
    assert robot.answered(410100) == 1 and statuses(doc)["dingtalk"] == "pending"
    assert doc["channels"]["dingtalk"]["attempts"][0]["outcome"] == "throttled"
    world.wall.advance(300)
    world.pipeline.flush_notifications()
    assert robot.answered(410100) == 1  # held: nobody asked the throttled robot again
    world.wall.advance(301)
    world.pipeline.flush_notifications()
    assert statuses(world.notify_json(key))["dingtalk"] == "sent" and len(robot.messages) == 21


def test_an_older_robots_unknown_token_code_is_a_configuration_error_too(world, robot):
    robot.fail_next(1, errcode=300001)
    doc = world.pipeline.notify(world.incident())
    assert statuses(doc)["dingtalk"] == "rejected"
    assert "300001" in doc["channels"]["dingtalk"]["done"]["detail"] and "DINGTALK_WEBHOOK" in doc["channels"]["dingtalk"]["done"]["detail"]


@pytest.mark.parametrize("case", ["unknown token", "ip allowlist", "sign"])
def test_dingtalk_configuration_errors_stop_and_say_what_to_fix(oss_store, wall, cert, smtp, case):  # noqa: F811
    robot = DingTalkStandIn(token=TOKEN, secret=SECRET, clock=wall, allowed_ips=("10.0.0.1",) if case == "ip allowlist" else ())
    with robot:
        over = {"dingtalk_webhook": robot.webhook.replace(TOKEN, "not-" + TOKEN)} if case == "unknown token" else {}
        if case == "sign":
            over["dingtalk_secret"] = SECRET[::-1]
        w = World(oss_store, settings_for(robot, smtp, **over), wall, cert)
        key = w.incident()
        doc = w.pipeline.notify(key)
        assert statuses(doc) == {"dingtalk": "rejected", "email": "sent"}
        detail = doc["channels"]["dingtalk"]["done"]["detail"]
        expected = {"unknown token": ("300005", "access_token", "DINGTALK_WEBHOOK"),
                    "ip allowlist": ("310000", "IP allowlist", "NAT gateway"),
                    "sign": ("310000", "DINGTALK_SECRET", "sign not match")}[case]
        for word in expected:
            assert word in detail, (word, detail)
        assert TOKEN not in detail
        wall.advance(600)
        w.pipeline.flush_notifications()
        assert len(robot.requests) == 1  # not retried


def test_dingtalk_busy_is_retried(world, robot):
    robot.fail_next(2, errcode=-1)
    doc = world.pipeline.notify(world.incident())
    assert statuses(doc)["dingtalk"] == "sent" and [r.errcode for r in robot.requests] == [-1, -1, 0]


def test_a_card_dingtalk_finds_too_long_is_shortened_and_sent_again(world, robot):
    from crashdiag.notify.dingtalk import BODY_BUDGET

    robot.fail_next(1, errcode=460101)
    doc = world.pipeline.notify(world.incident())
    assert statuses(doc)["dingtalk"] == "sent" and [r.errcode for r in robot.requests] == [460101, 0]
    (sent,) = robot.messages
    assert robot.requests[1].size <= BODY_BUDGET // 2 and sent["markdown"]["text"].startswith("### [crash] i-bp1kdumpel7demo01")
    assert "**Cause**" in sent["markdown"]["text"]  # what matters most comes first and stays
    robot.fail_next(2, errcode=460101)  # too long even shortened: said, not retried forever
    doc = world.pipeline.notify(world.incident(instance="i-bp1toolong00002"))
    assert statuses(doc)["dingtalk"] == "rejected" and "460101" in doc["channels"]["dingtalk"]["done"]["detail"]


def test_a_digest_dingtalk_finds_too_long_is_split_in_two(oss_store, wall, cert, robot):  # noqa: F811
    w = World(oss_store, settings_for(robot, None, notify_burst=0), wall, cert)
    keys = [w.incident(f"i-split{n:04d}", f"e-split{n:04d}") for n in range(6)]
    for key in keys:
        assert w.pipeline.notify(key)["notice"]["mode"] == "digest"
    robot.fail_next(1, errcode=460101)
    wall.advance(60)
    w.pipeline.flush_notifications()
    assert [r.errcode for r in robot.requests] == [460101, 0, 0]
    texts = robot.texts()
    for n in range(6):
        assert sum(f"i-split{n:04d}" in t for t in texts) == 1
    assert all(statuses(w.notify_json(k))["dingtalk"] == "sent" for k in keys)


def test_keyword_with_punctuation_reaches_the_robot_as_typed(oss_store, wall, cert):  # noqa: F811
    with DingTalkStandIn(token=TOKEN, secret=SECRET, keyword=("other", "ECS-告警!"), clock=wall) as robot:
        w = World(oss_store, settings_for(robot, None, dingtalk_keyword="ECS-告警!"), wall, cert)
        doc = w.pipeline.notify(w.incident())
        assert statuses(doc) == {"dingtalk": "sent"}
        assert robot.texts()[0].endswith("\n\nECS-告警!")


def test_the_robot_measures_bytes_not_characters(robot, wall):
    from crashdiag.notify.dingtalk import DingTalkRobot, body_size

    post = DingTalkRobot(robot.webhook, SECRET, opener=DIRECT, now=wall, sleep=wall.sleep).post
    wrapper = body_size({"msgtype": "markdown", "markdown": {"title": "t", "text": ""}})
    fits = {"msgtype": "markdown", "markdown": {"title": "t", "text": "告" * ((20000 - wrapper) // 3)}}  # 3 bytes each in UTF-8
    assert body_size(fits) <= 20000 and post(fits).status == "sent"
    over = {"msgtype": "markdown", "markdown": {"title": "t", "text": "告" * 7000}}  # 7,000 characters, 21,000 bytes
    out = post(over)
    assert out.status == "too_long" and out.code == "460101" and robot.requests[-1].size > 20000


def test_signature_and_timestamp_are_checked_as_dingtalk_does(wall, robot):
    from crashdiag.notify.dingtalk import DingTalkRobot

    body = {"msgtype": "markdown", "markdown": {"title": "t", "text": "x"}}
    good = DingTalkRobot(robot.webhook, SECRET, opener=DIRECT, now=wall, sleep=wall.sleep)
    assert good.post(body).status == "sent"
    wrong = DingTalkRobot(robot.webhook, SECRET[:-1] + "x", opener=DIRECT, now=wall, sleep=wall.sleep)
    assert wrong.post(body).status == "rejected" and "sign not match" in robot.requests[-1].errmsg
    late = DingTalkRobot(robot.webhook, SECRET, opener=DIRECT, now=lambda: wall() - 3601, sleep=wall.sleep)
    assert late.post(body).status == "rejected" and "invalid timestamp" in robot.requests[-1].errmsg
    almost = DingTalkRobot(robot.webhook, SECRET, opener=DIRECT, now=lambda: wall() - 3500, sleep=wall.sleep)
    assert almost.post(body).status == "sent"
    unsigned = DingTalkRobot(robot.webhook, "", opener=DIRECT, now=wall, sleep=wall.sleep)
    assert unsigned.post(body).status == "rejected"
    # the sign went URL-encoded: base64's '+', '/' and '=' survive the trip
    assert all(set(r.query["sign"]) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == set()
               for r in robot.requests if "sign" in r.query)
    assert len(robot.messages) == 2


def test_dingtalk_5xx_and_network_errors_are_retried_a_bounded_number_of_times(world, robot, smtp):
    robot.fail_next(2, http_status=502)
    a = world.incident(incident="e-flaky0000001")
    assert statuses(world.pipeline.notify(a))["dingtalk"] == "sent"
    assert [r.status for r in robot.requests] == [502, 502, 200]
    robot.fail_next(1000, http_status=503)
    b = world.incident(instance="i-bp1flaky000002", incident="e-flaky0000002")
    doc = world.pipeline.notify(b)
    assert statuses(doc)["dingtalk"] == "pending" and "HTTP 503" in doc["channels"]["dingtalk"]["attempts"][0]["detail"]
    for _ in range(10):
        world.wall.advance(60)
        world.pipeline.flush_notifications()
    doc = world.notify_json(b)
    assert statuses(doc) == {"dingtalk": "gave_up", "email": "sent"}
    tries = len(robot.requests) - 3
    assert tries == 3 * world.settings.notify_max_attempts  # 3 quick tries per attempt, 5 attempts, then silence
    assert world.pipeline.states(b[: -len("report.json")])[-1] == "notified"


def test_dingtalk_unreachable_is_a_failure_that_names_no_url(oss_store, wall, cert, smtp):  # noqa: F811
    from standins.smtp import free_port

    s = settings_for(None, smtp, dingtalk_webhook=f"http://127.0.0.1:{free_port()}/robot/send?access_token={TOKEN}",
                     dingtalk_secret=SECRET)
    w = World(oss_store, s, wall, cert)
    doc = w.pipeline.notify(w.incident())
    detail = doc["channels"]["dingtalk"]["attempts"][0]["detail"]
    assert doc["channels"]["dingtalk"]["attempts"][0]["outcome"] == "failed"
    assert detail == "DingTalk unreachable (ConnectionRefusedError)"
    assert statuses(doc)["email"] == "sent"


# -- links that open ---------------------------------------------------------------------------------------


def test_report_links_are_made_on_the_custom_domain_and_the_card_stands_without_them(oss_standin, wall, cert, robot):  # noqa: F811
    """REPORT_LINK_DOMAIN: the link people click is https://<domain>/<key> (OSS serves
    text/html from its default domain as a download), signed V4 for the bucket with the
    link key; the stand-in accepts that signature for the bucket's object. The card carries
    what is needed to act whether or not the link opens."""
    import urllib.parse

    from crashdiag.pipeline.runtime import build_store
    from fixtures_oss import ACCESS_KEY_ID, ACCESS_KEY_SECRET, REGION

    bucket = f"crashdiag-links-{uuid.uuid4().hex[:8]}"
    oss_standin.create_bucket(bucket)
    oss_standin.add_key("link-key-id", "link-key-secret")
    s = settings_for(robot, None, oss_bucket=bucket, oss_endpoint=oss_standin.endpoint, region=REGION, access_key_id=ACCESS_KEY_ID,
                     access_key_secret=ACCESS_KEY_SECRET, report_link_access_key_id="link-key-id",
                     report_link_access_key_secret="link-key-secret", report_link_domain="crash.example.com")
    w = World(build_store(s), s, wall, cert)
    w.pipeline.notify(w.incident())
    text = robot.texts()[0]
    link = re.search(r"\[Full report\]\(([^)]+)\)", text).group(1)
    parts = urllib.parse.urlsplit(link)
    assert parts.scheme == "https" and parts.netloc == "crash.example.com"
    assert parts.path == "/incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-test00000001/report.html"
    query = urllib.parse.parse_qs(parts.query)
    assert query["x-oss-signature-version"] == ["OSS4-HMAC-SHA256"] and query["x-oss-credential"][0].startswith("link-key-id/")
    # the same signed request, sent to the bucket at the stand-in: OSS would accept it
    with DIRECT.open(f"{oss_standin.endpoint}/{bucket}{parts.path}?{parts.query}", timeout=10) as resp:
        assert resp.read().startswith(b"<!DOCTYPE html>")
    # the card says what to do without the link: instance, kind, cause, first step, fix status
    for label, value in (("Instance", "i-bp1kdumpel7demo01"), ("Kind", "null\\_deref"), ("Cause", "blk\\_mq\\_rq\\_timed\\_out"),
                         ("First step", "Upgrade the kernel to"), ("Fix status", "affected")):
        assert re.search(rf"\*\*{label}\*\*: [^\n]*{re.escape(value)}", text), label


# -- the daily digest -------------------------------------------------------------------------------------


def _fleet_day(tmp_path):
    """A local bucket with two diagnosed crashes in its fleet index, and their day."""
    from crashdiag.replay import build_local_pipeline
    from crashdiag.reports.fleet import update_fleet_index

    pipeline = build_local_pipeline(Settings(store_dir=str(tmp_path / "store"), instances_dir=str(INSTANCES), collect_poll_seconds=0.01))
    for name in ("eventbridge-crash-kdump-executing.json", "eventbridge-crash-journal-only.json"):
        pipeline.ingest((EVENTS / name).read_bytes())
    update_fleet_index(pipeline.store)
    index = json.loads(pipeline.store.get("fleet/index.json"))
    return pipeline.store, dt.date.fromisoformat(str(next(iter(index["reports"].values()))["time"])[:10])


def test_daily_digest_goes_through_the_budget_the_throttle_mark_and_the_flush(tmp_path, wall, robot):
    from crashdiag.notify import build_notifier
    from crashdiag.notify.digest import send_daily_digest

    store, day = _fleet_day(tmp_path)
    # the morning after the crashes' day (the sample events' own date), not today: the flush only
    # looks at digests of the last DAILY_DAYS days
    wall.t = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1), dt.timezone.utc).timestamp()
    s = settings_for(robot, None, notify_rate_per_minute=0)  # no slot this minute: the digest waits for one
    assert send_daily_digest(store, s, day, notifier=build_notifier(s, store, now=wall, sleep=wall.sleep, opener=DIRECT))["status"] == "queued"
    assert robot.requests == []
    s = settings_for(robot, None)
    notifier = build_notifier(s, store, now=wall, sleep=wall.sleep, opener=DIRECT)
    robot.fail_next(1, errcode=410100)  # someone else filled the robot's minute
    wall.advance(60)
    notifier.flush()
    assert robot.answered(410100) == 1 and json.loads(store.get("notify/throttle/dingtalk.json"))["until"] > wall()
    wall.advance(300)
    notifier.flush()
    assert len(robot.requests) == 1  # throttled: nobody asked
    wall.advance(301)
    notifier.flush()
    (payload,) = robot.messages
    assert payload["markdown"]["title"].startswith("ECS crash digest for " + day.isoformat())
    assert "blk\\_mq\\_rq\\_timed\\_out" in payload["markdown"]["text"]  # the same escaping as every message
    again = send_daily_digest(store, s, day, notifier=notifier)
    assert again["status"] == "already sent" and len(robot.requests) == 2
    sent = json.loads(store.get(f"fleet/digests/{day.isoformat()}.sent.json"))
    assert sent["status"] == "sent" and [p["status"] for p in sent["parts"]] == ["sent"]


def test_daily_digest_too_big_for_one_message_is_split_every_group_once(robot):
    from crashdiag.notify.channels import DingTalkChannel
    from crashdiag.notify.digest import daily_messages
    from crashdiag.notify.dingtalk import DingTalkRobot, body_size
    from crashdiag.notify.messages import message_from_json

    groups = [{"fingerprint": f"{g:016x}", "kind": "null_deref", "title": f"BUG in [evil](http://x) <img> 函数_{g}", "count": 3,
               "instances": [f"i-bp1day{g:03d}{n}" for n in range(3)], "new": g % 2 == 0, "first_seen": "2026-11-01",
               "rule": "rule-x", "fix_status": "affected", "upgrade_to": "3.10.0-1160.88.1.el7", "latest_key": f"k{g}"}
              for g in range(40)]
    digest = {"day": "2026-11-26", "crashes": 120, "instances": 120, "new_fingerprints": 20, "groups": groups}
    links = {f"k{g}": f"https://bucket.oss-cn-hangzhou.aliyuncs.com/k{g}?" + "x-oss-signature=" + "a" * 1000 for g in range(40)}
    ch = DingTalkChannel(robot=DingTalkRobot(robot.webhook), keyword="告警")
    parts = [message_from_json(p) for p in daily_messages(digest, "zh", links, ch.fits)]
    assert len(parts) >= 3
    bodies = [ch.payload(p) for p in parts]
    assert all(body_size(b) <= 20000 for b in bodies)
    texts = [b["markdown"]["text"] for b in bodies]
    for g in range(40):
        assert sum(f"函数\\_{g} " in t for t in texts) == 1, g
    assert all(t.count("](https://bucket.") == t.count("\n- ") for t in texts)  # one link per group, ours
    assert all("](http://x)" not in t.replace("\\](http://x)", "") for t in texts)  # the hostile title stays text


# -- email ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("security,auth", [("ssl", True), ("starttls", True), ("none", False)])
def test_email_over_each_smtp_security_mode(oss_store, wall, cert, robot, security, auth):  # noqa: F811
    user, password = (SMTP_USER, SMTP_PASSWORD) if auth else ("", "")
    with SmtpStandIn(security, cert, user=user, password=password) as smtp:
        w = World(oss_store, settings_for(robot, smtp), wall, cert)
        doc = w.pipeline.notify(w.incident())
        assert statuses(doc)["email"] == "sent"
        (mail,) = smtp.received
        assert mail.tls == (security != "none")
        assert mail.authenticated_as == (SMTP_USER if auth else None)
        m = mail.message
        assert m.get_content_type() == "multipart/mixed"
        alt = next(p for p in m.iter_parts() if p.get_content_type() == "multipart/alternative")
        assert [p.get_content_type() for p in alt.iter_parts()] == ["text/plain", "text/html"]
        assert m["Message-ID"] == "<crashdiag.i-bp1kdumpel7demo01.e-test00000001@mail.example.com>"


def _mailer_world(oss_store, wall, cert, robot, smtp_factory, **over):  # noqa: F811
    """A pipeline whose mailer dials through ``smtp_factory`` (the real ``connect`` behind it)."""
    from crashdiag.notify import build_notifier

    s = settings_for(robot, None, **{"smtp_host": "127.0.0.1", "smtp_port": 0, "mail_from": "", **over})
    w = World(oss_store, s, wall, cert)
    notifier = build_notifier(s, oss_store, now=wall, sleep=wall.sleep, opener=DIRECT, ssl_context=cert.client_context(),
                              smtp_factory=smtp_factory)
    w.pipeline = Pipeline(oss_store, None, None, s, notifier=notifier)
    return w


@pytest.mark.parametrize("security,port,auth", [("ssl", 465, True), ("starttls", 80, True), ("none", 25, False)])
def test_each_smtp_mode_dials_its_default_port(oss_store, wall, cert, robot, security, port, auth):  # noqa: F811
    """SMTP_PORT unset: ssl dials 465, starttls 80 (DirectMail's STARTTLS port; 25 is closed
    on ECS), none 25. The stand-in listens elsewhere: the dial is forwarded there."""
    from crashdiag.notify.mail import connect

    user, password = (SMTP_USER, SMTP_PASSWORD) if auth else ("", "")
    dialled = []

    def factory(host, p, sec, timeout, context):
        dialled.append((p, sec))
        return connect(host, smtp.port, sec, timeout, context)

    with SmtpStandIn(security, cert, user=user, password=password) as smtp:
        w = _mailer_world(oss_store, wall, cert, robot, factory, smtp_security=security, smtp_user=user, smtp_password=password)
        doc = w.pipeline.notify(w.incident())
        assert statuses(doc)["email"] == "sent" and dialled == [(port, security)]
        (mail,) = smtp.received
        assert mail.tls == (security != "none") and mail.authenticated_as == (SMTP_USER if auth else None)


def test_starttls_on_the_implicit_tls_port_times_out_and_says_why(oss_store, wall, cert, robot):  # noqa: F811
    """DirectMail's 465 speaks TLS from the first byte: a STARTTLS client waits for a greeting
    that never comes. The failure names the fix."""
    from crashdiag.notify.mail import connect

    with SmtpStandIn("ssl", cert, user=SMTP_USER, password=SMTP_PASSWORD) as smtp:
        w = _mailer_world(oss_store, wall, cert, robot, lambda h, p, sec, t, c: connect(h, smtp.port, sec, t, c),
                          smtp_security="starttls", smtp_port=465, smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD,
                          notify_timeout=0.5)
        doc = w.pipeline.notify(w.incident())
        (attempt,) = doc["channels"]["email"]["attempts"]
        assert attempt["outcome"] == "failed" and "use SMTP_SECURITY=ssl" in attempt["detail"] and not smtp.received
        # and inside its TLS session the port does not offer STARTTLS either
        import smtplib

        with smtplib.SMTP_SSL("127.0.0.1", smtp.port, timeout=5, context=cert.client_context()) as s:
            s.ehlo()
            assert not s.has_extn("starttls") and s.docmd("STARTTLS")[0] == 454


@pytest.mark.parametrize("case", ["password in clear", "sender is not the login"])
def test_smtp_settings_directmail_would_refuse_are_refused_before_connecting(oss_store, wall, cert, robot, case, caplog):  # noqa: F811
    dialled = []
    over = {"smtp_security": "none", "smtp_user": SMTP_USER, "smtp_password": SMTP_PASSWORD} if case == "password in clear" else \
        {"smtp_security": "ssl", "smtp_user": SMTP_USER, "smtp_password": SMTP_PASSWORD, "mail_from": "alerts@other.example.com"}
    caplog.set_level(logging.ERROR, logger="crashdiag.notify.mail")
    # DirectMail's endpoint (nothing is dialled: the factory would record it)
    w = _mailer_world(oss_store, wall, cert, robot, lambda *a: dialled.append(a), smtp_host="smtpdm.aliyun.com", **over)
    assert any("email is off" in r.getMessage() for r in caplog.records)  # said at start
    doc = w.pipeline.notify(w.incident())
    assert statuses(doc) == {"dingtalk": "sent", "email": "rejected"} and dialled == []
    detail = doc["channels"]["email"]["done"]["detail"]
    assert ("in clear" in detail and "starttls (port 80)" in detail) if case == "password in clear" else \
        ("DirectMail requires the SMTP login to be the sender address" in detail and "MAIL_FROM" in detail)
    assert SMTP_PASSWORD not in detail


def test_plain_smtp_with_a_login_is_fine_to_a_relay_on_this_machine(oss_store, wall, cert, robot):  # noqa: F811
    with SmtpStandIn("none", cert, user=SMTP_USER, password=SMTP_PASSWORD) as smtp:
        w = World(oss_store, settings_for(robot, smtp, smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD), wall, cert)
        assert statuses(w.pipeline.notify(w.incident()))["email"] == "sent"
        assert smtp.received[0].authenticated_as == SMTP_USER and not smtp.received[0].tls


def test_smtp_wrong_password_is_rejected_not_retried(oss_store, wall, cert, robot):  # noqa: F811
    with SmtpStandIn("ssl", cert, user=SMTP_USER, password="the-right-one") as smtp:
        w = World(oss_store, settings_for(robot, smtp, smtp_password=SMTP_PASSWORD), wall, cert)
        doc = w.pipeline.notify(w.incident())
        assert statuses(doc) == {"dingtalk": "sent", "email": "rejected"}
        assert "SMTP_USER/SMTP_PASSWORD" in doc["channels"]["email"]["done"]["detail"]
        failures = smtp.auth_failures  # smtplib tries each AUTH mechanism the server offers, once
        assert 1 <= failures <= 3
        wall.advance(600)
        w.pipeline.flush_notifications()
        w.pipeline.notify(doc["incident"] + "report.json")
        assert smtp.auth_failures == failures and not smtp.received


def test_smtp_temporary_failure_is_retried(world, smtp):
    smtp.fail_next(1, "451 4.3.0 mailbox busy")
    doc = world.pipeline.notify(world.incident())
    assert statuses(doc)["email"] == "sent" and len(smtp.received) == 1
    smtp.fail_next(100, "421 4.3.2 shutting down")
    doc = world.pipeline.notify(world.incident(instance="i-bp1smtp00000002"))
    assert statuses(doc)["email"] == "pending" and "reply 421" in doc["channels"]["email"]["attempts"][0]["detail"]


# -- safety ----------------------------------------------------------------------------------------------

HOSTILE = "<img src=x onerror=alert(1)> [click](http://evil.example/x) </pre><script>alert(2)</script> ````"


def _hostile_log() -> bytes:
    text = LOGS["blk"].decode()
    return text.replace("Comm: kworker/0:1H", "Comm: <img src=x onerror=alert(1)>").replace(
        "Workqueue: kblockd blk_mq_timeout_work", "Workqueue: [click](http://evil.example/x) </pre><script>alert(2)</script>").encode()


def test_hostile_log_text_arrives_inert(world, robot, smtp):
    key = world.incident(log=_hostile_log(), instance_name="web\r\nBcc: victim@evil.example " + HOSTILE)
    # what a crafted log could steer into the report's other fields, too
    report = json.loads(world.store.get(key))
    assert "Comm: <img src=x onerror=alert(1)>" in "\n".join(report["diagnosis"]["evidence"])
    report["diagnosis"]["title"] = "BUG in " + HOSTILE
    report["diagnosis"]["modules"]["suspect"] = HOSTILE
    report["diagnosis"]["modules"]["suspect_reason"] = "\u202eevil\u202c [x](javascript:alert(3))"
    report["diagnosis"]["call_trace"].append({"function": HOSTILE, "module": "<b>m</b>", "reliable": True})
    world.store.put(key, json.dumps(report).encode())
    doc = world.pipeline.notify(key)
    assert statuses(doc) == {"dingtalk": "sent", "email": "sent"}

    (payload,) = robot.messages
    md = payload["markdown"]["text"] + payload["markdown"]["title"]
    assert "<" not in payload["markdown"]["text"] and ">" not in payload["markdown"]["text"]
    assert "\u202e" not in md and "\r" not in md
    assert "\uff1cimg src=x onerror=alert(1)\uff1e" in payload["markdown"]["text"]  # shown, readable, not run
    # rendered as CommonMark (raw HTML allowed, as the most permissive renderer would): our
    # report link is the only link, and no image, tag or code span came from the log
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").render(payload["markdown"]["text"])
    assert rendered.count("<a ") == 1 and 'href="http://127.0.0.1' in rendered
    assert "<img" not in rendered and "<script" not in rendered and "<code" not in rendered and "<b>" not in rendered
    assert "[click](http://evil.example/x)" in rendered  # the would-be link, as text

    (mail,) = smtp.received
    m = mail.message
    assert m["Bcc"] is None and sorted(mail.rcpt_tos) == ["oncall@example.com", "sre@example.com"]
    assert "\n" not in str(m["Subject"]) and "victim@evil.example" in str(m["Subject"])  # the text, as text
    html = m.get_body(("html",)).get_content()
    assert "<img" not in html and "<script" not in html and "<b>m</b>" not in html and html.count("<a ") == 1
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;/pre&gt;&lt;script&gt;" in html
    assert "Comm: &lt;img src=x onerror=alert(1)&gt;" in html  # the evidence line from the log itself
    plain = m.get_body(("plain",)).get_content()
    assert "<img src=x onerror=alert(1)>" in plain and "\u202e" not in plain  # plain text is inert as it is
    (att,) = list(m.iter_attachments())
    assert att.get_content_type() == "text/plain" and att.get_content_disposition() == "attachment"


def test_secrets_never_reach_the_record_the_logs_or_the_errors(oss_store, wall, cert, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    with DingTalkStandIn(token=TOKEN, secret=SECRET[::-1], clock=wall) as robot, \
            SmtpStandIn("ssl", cert, user=SMTP_USER, password="not-" + SMTP_PASSWORD) as smtp:
        s = settings_for(robot, smtp, dingtalk_secret=SECRET, smtp_password=SMTP_PASSWORD)
        w = World(oss_store, s, wall, cert)
        doc = w.pipeline.notify(w.incident())  # wrong signing secret, wrong SMTP password: both rejected
        assert statuses(doc) == {"dingtalk": "rejected", "email": "rejected"}
        robot.fail_next(3, http_status=500)
        w.pipeline.notify(w.incident(instance="i-bp1secret000002"))
    secrets = s.secrets()
    assert TOKEN in secrets and SECRET in secrets and SMTP_PASSWORD in secrets and "cloud-secret-key-XYZ" in secrets
    everything = [oss_store.get(k).decode("utf-8", "replace") for k in oss_store.list("")]
    # our side's log (the stand-ins' own request logs are the servers', which see the URL)
    everything += [r.getMessage() for r in caplog.records if not r.name.startswith(("werkzeug", "mail.log"))]
    everything.append(repr(s))
    for blob in everything:
        for secret in secrets:
            assert secret not in blob


def test_inbox_reports_are_told_too(world, robot, smtp):
    world.store.put("inbox/from-a-user.txt", LOGS["sample"])
    world.pipeline.diagnose("inbox/from-a-user.txt")
    doc = world.pipeline.notify("reports/inbox/from-a-user.txt/report.json")
    assert statuses(doc) == {"dingtalk": "sent", "email": "sent"}
    assert "uploaded log from-a-user.txt" in robot.texts()[0]
    assert smtp.messages[0]["Subject"].startswith("[crash] from-a-user.txt: ")
    with pytest.raises(ValueError):
        world.pipeline.notify("reports/elsewhere/report.json")


def test_chinese_messages(oss_store, wall, cert, robot, smtp):  # noqa: F811
    w = World(oss_store, settings_for(robot, smtp, lang="zh"), wall, cert)
    w.pipeline.notify(w.incident())
    text = robot.texts()[0]
    assert "**实例**" in text and "**第一步**" in text and "**修复状态**" in text and "链接 7 天内有效" in text
    assert smtp.messages[0]["Subject"].startswith("[宕机] i-bp1kdumpel7demo01：")
    # Chinese throughout: past the crash's own title (log text), the rule's cause and step
    # (the rule's Chinese text) and the link, only identifiers are in Latin letters
    report = json.loads(w.store.get("incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-test00000001/report.json"))
    release = report["diagnosis"]["kernel"]["release"]
    rest = []
    for line in text.replace("\\", "").split("\n\n")[1:]:
        label, _, value = line.partition("**: ")
        if label in ("**原因", "**第一步") or line.startswith("[完整报告]("):
            continue
        rest.append(value.replace(release, "").replace("i-bp1kdumpel7demo01", "").replace("cn-hangzhou", "").replace("null_deref", ""))
    assert "受影响" in "".join(rest) and "高" in rest  # the fix status and the confidence, in Chinese
    assert set(re.findall(r"[A-Za-z]{2,}", " ".join(rest))) <= {"kdump", "vmcore", "dmesg"}, rest


def test_no_channel_configured_records_that_nobody_was_told(oss_store, wall, cert):  # noqa: F811
    w = World(oss_store, Settings(), wall, cert)
    doc = w.pipeline.notify(w.incident())
    assert doc["channels"] == {} and not doc["told"] and "no channel configured" in doc["note"]
    assert w.pipeline.states(doc["incident"])[-1] == "notified"


def test_handlers_take_oss_events_and_timer_events(world, robot, smtp, monkeypatch):
    """The two Function Compute handlers, fed what OSS and the timer send."""
    import importlib.util

    from crashdiag.pipeline import runtime

    key = world.incident()
    monkeypatch.setitem(runtime._cache, "notify", world.pipeline)

    def load(name):
        spec = importlib.util.spec_from_file_location(f"handler_{name}", ROOT / "functions" / name / "index.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    event = json.loads((EVENTS / "oss-object-created-inbox.json").read_text())
    event["events"][0]["oss"]["object"]["key"] = key
    out = json.loads(load("notify").handler(json.dumps(event).encode(), None))
    assert out == [{"key": key, "told": True, "channels": {"dingtalk": "sent", "email": "sent"}}]
    timer = {"triggerTime": "2026-11-26T10:01:00Z", "triggerName": "every-minute", "payload": ""}
    assert json.loads(load("notify_flush").handler(json.dumps(timer).encode(), None)) == []
    assert len(robot.messages) == 1 and len(smtp.received) == 1
