"""docs/PIPELINE.md's time-budget table against the code's retry settings and template.yml's
Timeouts: every external call's worst case fits in each function that makes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from crashdiag.cloud import invoke, store
from crashdiag.cloud.ecs_sdk import SdkEcsApi
from crashdiag.notify.dingtalk import DingTalkRobot
from crashdiag.notify.mail import SmtpMailer
from crashdiag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = yaml.safe_load((ROOT / "template.yml").read_text(encoding="utf-8"))
TIMEOUTS = {r["Properties"]["FunctionName"]: r["Properties"]["Timeout"]
            for r in TEMPLATE["Resources"].values() if r["Type"] == "ALIYUN::FC::Function"}
ROW = re.compile(r"^\| ([^|]+?) \| [^|]+ \| ([\d.]+) \| (\w+) \| (\d+) \| [^|]+ \|$")
MARGIN = 0.85  # a worst case uses at most 85% of the Timeout
SMTP_STEPS = 8  # connect, TLS, EHLO, AUTH, MAIL, RCPT, DATA, QUIT: each bounded by the timeout


def _backoff(attempts: int, multiplier: float, cap: float) -> float:
    """tenacity's wait_random_exponential: the n-th wait is at most min(cap, multiplier * 2**(n-1))."""
    return sum(min(cap, multiplier * 2 ** (n - 1)) for n in range(1, attempts))


def worst_cases() -> dict[str, float]:
    s = Settings()
    ecs = SdkEcsApi()
    robot = DingTalkRobot("https://oapi.dingtalk.com/robot/send?access_token=x", "", timeout=s.notify_timeout)
    mailer = SmtpMailer("smtp.example.com", 465, "ssl", "", "", timeout=s.notify_timeout)
    return {
        "OSS request": store.worst_case_seconds(s.oss_timeout),
        "FC async invoke": invoke.worst_case_seconds(),
        "ECS OpenAPI call": ecs.deadline + ecs.connect_timeout + ecs.read_timeout,
        "DingTalk robot POST": robot.attempts * 2 * robot.timeout + _backoff(robot.attempts, 0.5, 4),
        "SMTP send": mailer.attempts * SMTP_STEPS * mailer.timeout + _backoff(mailer.attempts, 0.5, 4),
    }


def table() -> list[tuple[str, float, str, int]]:
    text = (ROOT / "docs" / "PIPELINE.md").read_text(encoding="utf-8")
    section = text.split("### Time budgets", 1)[1]
    rows = [ROW.match(line.strip()) for line in section.splitlines()]
    return [(m.group(1), float(m.group(2)), m.group(3), int(m.group(4))) for m in rows if m]


def test_the_table_is_there_and_covers_every_function_that_calls_out():
    rows = table()
    assert len(rows) >= 10
    assert {fn for _, _, fn, _ in rows} == {"on_ecs_event", "collect", "diagnose", "notify", "notify_flush", "reconcile"}
    assert {call for call, _, _, _ in rows} == set(worst_cases())


@pytest.mark.parametrize("row", table(), ids=lambda r: f"{r[0]} in {r[2]}")
def test_retries_past_the_deadline_every_worst_case_fits_its_function(row):
    call, worst, function, timeout = row
    assert worst == pytest.approx(worst_cases()[call]), f"{call}: the code's retry settings say {worst_cases()[call]} s"
    assert timeout == TIMEOUTS[function], f"template.yml gives {function} Timeout {TIMEOUTS[function]}"
    assert worst <= MARGIN * timeout, f"{call} can take {worst} s, too close to {function}'s {timeout} s"


def test_aliyun_fc2_unbounded_would_not_have_fitted():
    """The failure this prevents: fc2's own Retry(total=5, backoff_factor=1) with a 10 s timeout."""
    assert invoke.worst_case_seconds(timeout=10, retries=5, backoff=1) > TIMEOUTS["on_ecs_event"]
    assert invoke.worst_case_seconds() <= MARGIN * TIMEOUTS["on_ecs_event"]
