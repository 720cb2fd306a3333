"""Tell people about a crash: DingTalk custom robot and email, exactly once per incident
and channel, quiet in a storm. See docs/NOTIFY.md.

Standard library only (urllib, hmac, smtplib, email) plus tenacity for retries; no
cloud SDK is imported here. It may use reports (the card's wording, the fleet digest), the
object store interface and settings; never the ECS client or the pipeline.
"""

from __future__ import annotations

import ssl
import time
import urllib.request
from collections.abc import Callable

from ..cloud.store import ObjectStore
from ..settings import Settings
from .channels import DingTalkChannel, EmailChannel, Outbox
from .dingtalk import DingTalkRobot
from .mail import SmtpFactory, SmtpMailer, connect
from .notifier import Notifier, notice_id, report_prefix
from .outcome import Outcome


def build_channels(settings: Settings, *, outbox_dir: str = "", now: Callable[[], float] = time.time,
                   sleep: Callable[[float], None] = time.sleep, opener: urllib.request.OpenerDirector | None = None,
                   smtp_factory: SmtpFactory = connect, ssl_context: ssl.SSLContext | None = None) -> list:
    """The configured channels: the real transport when its settings are there, else the
    outbox folder when one is given (local replay), else none (the channel is off)."""
    outbox = Outbox(outbox_dir) if outbox_dir else None
    channels: list = []
    if settings.dingtalk_webhook:
        robot = DingTalkRobot(settings.dingtalk_webhook, settings.dingtalk_secret, opener=opener, now=now, sleep=sleep,
                              timeout=settings.notify_timeout)
        channels.append(DingTalkChannel(robot=robot, keyword=settings.dingtalk_keyword, mobiles=settings.dingtalk_at_mobiles,
                                        at_all=settings.dingtalk_at_all))
    elif outbox:
        channels.append(DingTalkChannel(outbox=outbox, keyword=settings.dingtalk_keyword, mobiles=settings.dingtalk_at_mobiles,
                                        at_all=settings.dingtalk_at_all))
    if settings.smtp_host and settings.mail_to:
        mailer = SmtpMailer(settings.smtp_host, settings.smtp_port, settings.smtp_security, settings.smtp_user, settings.smtp_password,
                            mail_from=settings.mail_from, timeout=settings.notify_timeout, ssl_context=ssl_context,
                            factory=smtp_factory, sleep=sleep)
        channels.append(EmailChannel(mail_from=settings.mail_from or settings.smtp_user, mail_to=settings.mail_to, lang=settings.lang,
                                     mailer=mailer, now=now))
    elif outbox:
        channels.append(EmailChannel(mail_from=settings.mail_from, mail_to=settings.mail_to, lang=settings.lang, outbox=outbox, now=now))
    return channels


def build_notifier(settings: Settings, store: ObjectStore, *, outbox_dir: str = "", now: Callable[[], float] = time.time,
                   sleep: Callable[[float], None] = time.sleep, **channel_options) -> Notifier:
    channels = build_channels(settings, outbox_dir=outbox_dir, now=now, sleep=sleep, **channel_options)
    return Notifier(store, settings, channels, now=now, sleep=sleep)


__all__ = ["Notifier", "Outcome", "build_notifier", "build_channels", "notice_id", "report_prefix",
           "DingTalkChannel", "EmailChannel", "Outbox", "DingTalkRobot", "SmtpMailer"]
