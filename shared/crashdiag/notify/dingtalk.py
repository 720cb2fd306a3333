"""DingTalk custom robot: the message payload and the signed webhook call.

Signed mode ("加签"), as DingTalk checks it: the webhook gets ``timestamp`` (epoch
milliseconds, within one hour of DingTalk's clock) and ``sign``, the URL-encoded
base64 of HMAC-SHA256 keyed with the secret over ``f"{timestamp}\\n{secret}"``.

DingTalk answers HTTP 200 for most failures, with a non-zero ``errcode``:

- 130101: more than 20 messages in a minute; the robot is throttled for 10 minutes ->
  ``THROTTLED`` (back-pressure: the notifier holds messages, nothing is lost);
- 310000: keyword, signature (or its timestamp) or IP allowlist rejected -> ``REJECTED``
  (a configuration error: said clearly, not retried);
- -1 (system busy), HTTP 5xx, network errors and timeouts: retried here a few times
  with backoff (tenacity), then ``FAILED`` (the notifier retries later, a bounded number
  of times);
- any other errcode or HTTP 4xx -> ``REJECTED``.

Nothing here puts the webhook URL (its access_token) or the secret into a message,
an exception or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from ..reports.escape import plain
from .messages import Message, to_markdown
from .outcome import (
    REJECTED,
    SENT,
    THROTTLED,
    Outcome,
    Transient,
    deliver_with_retries,
    redact,
)

log = logging.getLogger("crashdiag.notify.dingtalk")

ERR_THROTTLED = 130101
ERR_REJECTED = 310000
ERR_BUSY = -1
TIMESTAMP_WINDOW_MS = 3600 * 1000  # DingTalk's allowance for the signed timestamp


def sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query value (already URL-encoded)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def at_mobiles(raw: str) -> tuple[str, ...]:
    """DINGTALK_AT_MOBILES: comma-separated phone numbers (digits, optionally +cc-)."""
    out = []
    for m in (x.strip() for x in raw.split(",")):
        if m and all(c.isdigit() or c in "+-" for c in m) and len(m) <= 20:
            out.append(m)
    return tuple(out)


def payload(msg: Message, *, keyword: str = "", mobiles: tuple[str, ...] = (), at_all: bool = False) -> dict[str, Any]:
    """A markdown message. The keyword (if any) is always in the text; @mentions need the
    numbers in the text as well as in ``at``."""
    title, text = to_markdown(msg, keyword=keyword, at_mobiles=mobiles)
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text},
            "at": {"atMobiles": list(mobiles), "isAtAll": bool(at_all)}}


class DingTalkRobot:
    """POSTs payloads to one custom robot. ``opener`` is a ``urllib.request.OpenerDirector``
    (injectable; the default has no special handlers), ``now``/``sleep`` drive the
    timestamp and the backoff."""

    transport = "dingtalk-robot"

    def __init__(self, webhook: str, secret: str = "", *, opener: urllib.request.OpenerDirector | None = None,
                 now: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 timeout: float = 10.0, attempts: int = 3) -> None:
        parts = urlsplit(webhook)
        if parts.scheme not in ("https", "http") or not parts.netloc or not parse_qs(parts.query).get("access_token"):
            # the URL itself is a secret: do not echo it
            raise ValueError("DINGTALK_WEBHOOK must be the robot's full URL with its access_token")
        self._webhook = webhook
        self._secret = secret
        self.opener = opener or urllib.request.build_opener()
        self.now, self.sleep = now, sleep
        self.timeout, self.attempts = timeout, attempts

    def _secrets(self) -> list[str]:
        return [self._webhook, self._secret, *parse_qs(urlsplit(self._webhook).query).get("access_token", [])]

    def signed_url(self) -> str:
        if not self._secret:
            return self._webhook
        ts = int(self.now() * 1000)
        return f"{self._webhook}&timestamp={ts}&sign={sign(self._secret, ts)}"

    def post(self, body: dict[str, Any]) -> Outcome:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return deliver_with_retries(lambda: self._post_once(data), self.attempts, self.sleep)

    def _post_once(self, data: bytes) -> Outcome:
        req = urllib.request.Request(self.signed_url(), data=data, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with self.opener.open(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read(65536)
        except urllib.error.HTTPError as e:
            if e.code >= 500 or e.code == 429:
                raise Transient(f"DingTalk answered HTTP {e.code}", str(e.code)) from None
            return Outcome(REJECTED, f"DingTalk answered HTTP {e.code}: check DINGTALK_WEBHOOK", str(e.code))
        except (OSError, http.client.HTTPException) as e:
            # the exception text may carry the URL: keep only the type (and a timeout's nature)
            reason = getattr(e, "reason", None)
            kind = type(reason).__name__ if isinstance(reason, BaseException) else type(e).__name__
            raise Transient(f"DingTalk unreachable ({kind})") from None
        if status >= 500:
            raise Transient(f"DingTalk answered HTTP {status}", str(status))
        try:
            reply = json.loads(raw)
            errcode = int(reply.get("errcode", -999))
            errmsg = plain(redact(str(reply.get("errmsg", "")), self._secrets()), 200)
        except (ValueError, TypeError, AttributeError):
            raise Transient(f"DingTalk answered HTTP {status} without a JSON reply") from None
        if errcode == 0:
            return Outcome(SENT, "ok", "0")
        if errcode == ERR_THROTTLED:
            return Outcome(THROTTLED, f"DingTalk throttled the robot (errcode 130101: over 20 messages a minute): {errmsg}", str(errcode))
        if errcode == ERR_REJECTED:
            return Outcome(REJECTED, "DingTalk rejected the message (errcode 310000: keyword, signature/timestamp or IP allowlist). "
                                     f"Check DINGTALK_KEYWORD, DINGTALK_SECRET, the robot's security settings and this machine's clock: {errmsg}",
                           str(errcode))
        if errcode == ERR_BUSY:
            raise Transient(f"DingTalk busy (errcode -1): {errmsg}", str(errcode))
        return Outcome(REJECTED, f"DingTalk refused the message (errcode {errcode}): {errmsg}", str(errcode))
