"""The two channels, each over its real transport or, for local replay, an outbox folder.

A channel turns a ``Message`` into its medium (a DingTalk payload, a MIME email) and
hands it to its transport; the notifier decides when and records the ``Outcome``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .dingtalk import BODY_BUDGET, DingTalkRobot, at_mobiles, body_size, payload
from .mail import SmtpMailer, addresses, build_email
from .messages import Message
from .outcome import REJECTED, SENT, Outcome

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class Outbox:
    """A folder that stands in for DingTalk and SMTP: one file per message."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def write(self, name: str, data: bytes) -> str:
        if not _NAME.match(name):
            raise ValueError(f"unsafe outbox file name {name!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        path = self.root / name
        os.replace(tmp, path)
        return str(path)


class DingTalkChannel:
    name = "dingtalk"

    def __init__(self, *, robot: DingTalkRobot | None = None, outbox: Outbox | None = None, keyword: str = "",
                 mobiles: str = "", at_all: bool = False) -> None:
        if (robot is None) == (outbox is None):
            raise ValueError("a DingTalk channel has a robot or an outbox")
        self.robot, self.outbox = robot, outbox
        self.keyword, self.mobiles, self.at_all = keyword, at_mobiles(mobiles), at_all

    @property
    def transport(self) -> str:
        return self.robot.transport if self.robot else "outbox"

    @property
    def rate_limited(self) -> bool:
        """Only the real robot has a message budget (20 a minute)."""
        return self.robot is not None

    def payload(self, msg: Message, *, shorten: bool = False) -> dict:
        """The robot message; ``shorten``: cut to half the byte budget (after DingTalk
        refused it as too long although it was measured within)."""
        budget = BODY_BUDGET // 2 if shorten else BODY_BUDGET
        body = payload(msg, keyword=self.keyword, mobiles=self.mobiles, at_all=self.at_all)
        if shorten or body_size(body) > budget:
            body = payload(msg, keyword=self.keyword, mobiles=self.mobiles, at_all=self.at_all, budget=budget)
        return body

    def fits(self, msg: Message) -> bool:
        """Whether ``msg`` goes out whole in one robot message (a digest that does not is split)."""
        return body_size(payload(msg, keyword=self.keyword, mobiles=self.mobiles, at_all=self.at_all)) <= BODY_BUDGET

    def deliver(self, msg: Message, *, shorten: bool = False) -> Outcome:
        body = self.payload(msg, shorten=shorten)
        if self.robot is not None:
            return self.robot.post(body)
        path = self.outbox.write(f"{msg.ref}.dingtalk.json", json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8"))
        return Outcome(SENT, "written to the outbox", artifact=path)


class EmailChannel:
    name = "email"
    rate_limited = False

    @staticmethod
    def fits(msg: Message) -> bool:
        """An email has no size limit that a digest comes near."""
        return True

    def __init__(self, *, mail_from: str, mail_to: str, lang: str, mailer: SmtpMailer | None = None,
                 outbox: Outbox | None = None, now: Callable[[], float] = time.time) -> None:
        if (mailer is None) == (outbox is None):
            raise ValueError("an email channel has an SMTP mailer or an outbox")
        self.mailer, self.outbox = mailer, outbox
        self.mail_from = mail_from or "ecs-crashdiag@localhost"
        self.mail_to = addresses(mail_to) or (["oncall@localhost"] if outbox else [])
        self.lang, self.now = lang, now

    @property
    def transport(self) -> str:
        return self.mailer.transport if self.mailer else "outbox"

    def message(self, msg: Message):
        return build_email(msg, mail_from=self.mail_from, mail_to=self.mail_to, lang=self.lang, now=self.now())

    def deliver(self, msg: Message, *, shorten: bool = False) -> Outcome:
        if not self.mail_to:
            return Outcome(REJECTED, "MAIL_TO names no valid address")
        m = self.message(msg)
        if self.mailer is not None:
            return self.mailer.send(m)
        path = self.outbox.write(f"{msg.ref}.eml", bytes(m))
        return Outcome(SENT, "written to the outbox", artifact=path)
