"""The outcome of one delivery attempt, as a channel reports it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

SENT = "sent"
FAILED = "failed"  # transient (network, 5xx, 4xx SMTP): retried later, a bounded number of times
THROTTLED = "throttled"  # back-pressure (DingTalk 130101, 410100): held, not counted as a failure
REJECTED = "rejected"  # configuration (DingTalk 310000/300001/300005, SMTP auth, bad address): final, not retried
DEFERRED = "deferred"  # not attempted (our own rate budget, or the robot is throttled): held
TOO_LONG = "too_long"  # content (DingTalk 460101): the notifier splits or shortens the message and sends again


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str = ""
    code: str | None = None  # DingTalk errcode, HTTP status or SMTP reply code, as text
    artifact: str | None = None  # where an outbox channel wrote the message

    def to_json(self) -> dict:
        out = {"outcome": self.status, "detail": self.detail}
        if self.code is not None:
            out["code"] = self.code
        if self.artifact:
            out["artifact"] = self.artifact
        return out


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (longest first) that made it into a text."""
    for s in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(s, "[redacted]")
    return text


class Transient(Exception):
    """A delivery attempt failed in a way worth trying again (network, 5xx, SMTP 4xx)."""

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail, self.code = detail, code


def deliver_with_retries(attempt: Callable[[], Outcome], attempts: int, sleep: Callable[[float], None]) -> Outcome:
    """Run one delivery, retrying Transient failures with backoff and jitter; after the
    last try the failure becomes a FAILED outcome (the ledger retries it later)."""
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_random_exponential,
    )

    try:
        for tried in Retrying(retry=retry_if_exception_type(Transient), wait=wait_random_exponential(multiplier=0.5, max=4),
                              stop=stop_after_attempt(attempts), sleep=sleep, reraise=True):
            with tried:
                return attempt()
    except Transient as t:
        return Outcome(FAILED, t.detail, t.code)
    return Outcome(FAILED, "no attempt made")  # pragma: no cover - Retrying returns or raises
