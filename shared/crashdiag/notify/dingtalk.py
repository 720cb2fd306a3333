"""DingTalk custom robot: the message payload and the signed webhook call.

Signed mode ("加签"), as DingTalk checks it: the webhook gets ``timestamp`` (epoch
milliseconds, within one hour of DingTalk's clock) and ``sign``, the URL-encoded
base64 of HMAC-SHA256 keyed with the secret over ``f"{timestamp}\\n{secret}"``.

DingTalk answers HTTP 200 for most failures, with a non-zero ``errcode``; each is handled
by what it means (docs/NOTIFY.md, "Failures"):

- throttled, 130101 and 410100 (over 20 messages a minute, then 10 minutes of silence)
  -> ``THROTTLED``: the notifier keeps the message and writes the throttle mark;
- configuration, 310000 (keyword, signature or its timestamp, IP allowlist), 300001 and
  300005 (no robot has this access_token) -> ``REJECTED``, with what to fix;
- content, 460101 (the body is over 20,000 bytes) -> ``TOO_LONG``: the notifier splits or
  shortens the message and sends again;
- transient, -1 (system busy), HTTP 5xx/429, network errors and timeouts: retried here a
  few times with backoff (tenacity), then ``FAILED`` (the notifier retries later, a
  bounded number of times);
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
    TOO_LONG,
    Outcome,
    Transient,
    deliver_with_retries,
    redact,
)

log = logging.getLogger("crashdiag.notify.dingtalk")

ERR_THROTTLED = (130101, 410100)  # the older and the current code for "sending too fast"
ERR_SECURITY = 310000
ERR_TOKEN = (300001, 300005)
ERR_TOO_LONG = 460101
ERR_BUSY = -1
TIMESTAMP_WINDOW_MS = 3600 * 1000  # DingTalk's allowance for the signed timestamp
# DingTalk refuses a body over 20,000 bytes (errcode 460101): bytes of the whole JSON body
# as sent, UTF-8. We aim a little below it.
MAX_BODY_BYTES = 20000
BODY_BUDGET = 19500

# What to fix for each way the robot's security check fails; DingTalk names the reason in
# errmsg ("keywords not in content", "sign not match", "invalid timestamp", the IP).
_SECURITY_FIX = (
    (("keyword", "关键词"), "the message lacks the robot's keyword: set DINGTALK_KEYWORD to one of the keywords in the robot's security settings"),
    (("sign", "签名"), "the signature does not match: set DINGTALK_SECRET to the robot's 加签 secret (SEC...), or clear it if the robot does not sign"),
    (("timestamp", "时间戳"), "the signed timestamp is more than an hour from DingTalk's clock: check this machine's clock"),
    (("ip ", "whitelist", "白名单"), "this function's egress IP is not in the robot's IP allowlist: give the functions a fixed egress IP "
           "(Function Compute in a VPC behind a NAT gateway) and add it, or use the keyword or sign setting instead"),
)


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


def payload(msg: Message, *, keyword: str = "", mobiles: tuple[str, ...] = (), at_all: bool = False,
            budget: int | None = None) -> dict[str, Any]:
    """A markdown message. The keyword (if any) is always in the text, as typed; @mentions
    need the numbers in the text as well as in ``at``. With ``budget``, blocks that would
    take the body past that many bytes are left out (the shortened card)."""
    if not msg.mention:
        mobiles, at_all = (), False
    at = {"atMobiles": list(mobiles), "isAtAll": bool(at_all)}
    limit = None
    if budget is not None:
        # what the wrapper, the title, the keyword and the mentions take leaves the rest for blocks
        empty = {"msgtype": "markdown", "markdown": {"title": "", "text": ""}, "at": at}
        limit = max(0, budget - body_size(empty))
    title, text = to_markdown(msg, keyword=keyword, at_mobiles=mobiles, limit_bytes=limit)
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at}


def body_bytes(body: dict[str, Any]) -> bytes:
    """The HTTP body as it is sent (and as DingTalk measures it)."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def body_size(body: dict[str, Any]) -> int:
    return len(body_bytes(body))


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
        data = body_bytes(body)
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
        return self._meaning(errcode, errmsg)

    @staticmethod
    def _meaning(errcode: int, errmsg: str) -> Outcome:
        """What an errcode means for the notifier (module docstring)."""
        code = str(errcode)
        if errcode == 0:
            return Outcome(SENT, "ok", code)
        if errcode in ERR_THROTTLED:
            return Outcome(THROTTLED, f"DingTalk throttled the robot (errcode {errcode}: over 20 messages a minute, "
                                      f"perhaps with other senders on the same robot): {errmsg}", code)
        if errcode == ERR_SECURITY:
            low = errmsg.lower()
            fixes = [fix for words, fix in _SECURITY_FIX if any(w in low for w in words)]
            what = "; ".join(fixes) if fixes else (
                "check DINGTALK_KEYWORD, DINGTALK_SECRET, the robot's IP allowlist and this machine's clock")
            return Outcome(REJECTED, f"DingTalk's security check refused the message (errcode 310000): {what}. DingTalk said: {errmsg}", code)
        if errcode in ERR_TOKEN:
            return Outcome(REJECTED, f"DingTalk knows no robot with this access_token (errcode {errcode}): the robot was removed, "
                                     "or DINGTALK_WEBHOOK was copied wrong; copy the robot's webhook again (300005 also comes "
                                     f"from robots in external groups, which cannot be used here). DingTalk said: {errmsg}", code)
        if errcode == ERR_TOO_LONG:
            return Outcome(TOO_LONG, f"DingTalk refused a body over {MAX_BODY_BYTES} bytes (errcode 460101): {errmsg}", code)
        if errcode == ERR_BUSY:
            raise Transient(f"DingTalk busy (errcode -1): {errmsg}", code)
        return Outcome(REJECTED, f"DingTalk refused the message (errcode {errcode}): {errmsg}", code)
