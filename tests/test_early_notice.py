"""The early notice: "crashed, waiting for the dump", once per channel, before the report."""

from __future__ import annotations

from test_notify import World, cert, robot, settings_for, smtp, wall  # noqa: F401

from fixtures_oss import oss_standin, oss_store  # noqa: F401

PREFIX = "incidents/cn-hangzhou/i-bp1bigcapture0007/e-bp1capture0long7/"
INCIDENT = {"instance_id": "i-bp1bigcapture0007", "instance_name": "db-primary-07", "region": "cn-hangzhou",
            "event_time": "2026-11-28T03:12:09Z"}
WAITING = {"reason": "kdump is saving the vmcore (Copying data 38%)", "memory_gib": 512, "deadline": 1_800_007_200.0,
           "capture": {"phase": "saving_vmcore", "percent": 37.9}}


def test_early_notice_goes_once_per_channel_whatever_the_retries(oss_store, wall, cert, robot, smtp):  # noqa: F811
    w = World(oss_store, settings_for(robot, smtp), wall, cert)
    first = w.notifier().notify_early(PREFIX, INCIDENT, WAITING)
    assert first["early"] == {"dingtalk": "sent", "email": "sent"}
    again = w.notifier().notify_early(PREFIX, INCIDENT, WAITING)  # the next waiting check, another instance
    assert again["early"] == {"dingtalk": "sent before", "email": "sent before"}
    (payload,) = robot.messages
    text = payload["markdown"]["text"]
    assert "waiting for the dump" in text and "512 GB" in text and "Copying data 38%" in text
    (mail,) = smtp.received
    assert str(mail.message["Subject"]).strip() == "[crash] i-bp1bigcapture0007 (db-primary-07): crashed, waiting for the dump"
    # the incident's own notice is untouched: the report still gets its card
    assert oss_store.list(f"{PREFIX}notify/") == []


def test_early_notice_in_chinese_is_chinese(oss_store, wall, cert, robot, smtp):  # noqa: F811
    w = World(oss_store, settings_for(robot, smtp, lang="zh"), wall, cert)
    w.notifier().notify_early(PREFIX, INCIDENT, WAITING)
    text = robot.messages[0]["markdown"]["text"]
    assert "正在等待转储完成" in text and "内存 512 GB" in text and "makedumpfile 38%" in text
    assert "waiting" not in text and "Copying" not in text


def test_a_chinese_collect_describes_the_console_in_chinese(oss_store, wall, cert, robot, smtp):  # noqa: F811
    from crashdiag.pipeline.capture import SAVING_VMCORE, CaptureView

    view = CaptureView(phase=SAVING_VMCORE, percent=38.0, step="Copying data")
    waiting = {**WAITING, "reason": view.describe("zh"), "lang": "zh"}
    w = World(oss_store, settings_for(robot, smtp, lang="zh"), wall, cert)
    w.notifier().notify_early(PREFIX, INCIDENT, waiting)
    text = robot.messages[0]["markdown"]["text"]
    assert "**串口输出**: kdump 正在保存 vmcore（Copying data 38%）" in text and "waiting" not in text
