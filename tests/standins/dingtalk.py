"""A DingTalk custom robot on 127.0.0.1 (pytest-httpserver), checking what DingTalk checks.

Sources (each check below cites the one it follows):

- [send] the custom robot's send API and its error table:
  https://open.dingtalk.com/document/orgapp/custom-robots-send-group-messages
  (English: https://help.dingtalk.io/open/development/custom-robots-send-group-messages)
- [security] custom robot security settings (keyword, sign, IP allowlist):
  https://open.dingtalk.com/document/robots/customize-robot-security-settings
- what robots answer in the wild, as reported by the users of public bridges (cited beside
  each errcode).

Failures are HTTP 200 with a non-zero errcode, as on the real service. Faults can be
queued: ``fail_next(n, errcode=130101)``, ``fail_next(n, http_status=500)``.
The robot's clock is injectable so a test's fake wall clock drives both sides.

    with DingTalkStandIn(secret="SEC...", clock=wall) as robot:
        Settings(dingtalk_webhook=robot.webhook, dingtalk_secret=robot.secret)
        ...
        robot.messages   # the accepted payloads, in order
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

PATH = "/robot/send"
# [send]: "每个机器人每分钟最多发送20条消息到群里，如果超过20条，会限流10分钟" (20 messages a
# minute per robot, then 10 minutes of throttling).
RATE_LIMIT = 20
RATE_WINDOW = 60.0
THROTTLE = 600.0
# [send] error table: 410100 "发送速度太快而限流" is today's code for the rate limit; robots have
# also answered 130101 "send too fast, exceed 20 times per minute" for years
# (ccfos/nightingale#369, opengoofy/hippo4j#217): a test can pick either.
ERR_THROTTLED = 410100
ERR_THROTTLED_OLD = 130101
# [security] a failed keyword, sign, timestamp or IP check: 310000 with the reason in errmsg
# ("keywords not in content", "sign not match", "invalid timestamp").
ERR_SECURITY = 310000
# An access_token no robot has: 300005 "token is not exist" today
# (timonwong/prometheus-webhook-dingtalk#226), 300001 on older robots (same tracker, #91).
ERR_TOKEN = 300005
# A body over 20,000 bytes: 460101 "message too long, exceed 20000 bytes"
# (timonwong/prometheus-webhook-dingtalk#30, Le0nsec/SecCrawler#12; ZhuLinsen/daily_stock_analysis#61
# quotes the newer wording "body 大小不合法;请保持大小在 20000bytes 以内"). Bytes of the HTTP
# body as sent (UTF-8 JSON), not characters.
ERR_TOO_LONG = 460101
MAX_BODY_BYTES = 20000
TIMESTAMP_WINDOW_MS = 3600 * 1000  # [security]: the timestamp must be within one hour of DingTalk's clock
MAX_KEYWORDS = 10  # [security]: up to 10 keywords; a message must contain at least one


@dataclass
class Received:
    status: int
    errcode: int
    errmsg: str
    at: float
    payload: dict | None
    query: dict[str, str]
    size: int = 0  # bytes of the request body


class DingTalkStandIn:
    def __init__(self, *, token: str = "standin-access-token-7f3a9c", secret: str = "", keyword: str | tuple[str, ...] = "",
                 allowed_ips: tuple[str, ...] = (), throttle_code: int = ERR_THROTTLED,
                 clock: Callable[[], float] = time.time) -> None:
        self.token, self.secret, self.clock = token, secret, clock
        self.keywords = tuple(k for k in ((keyword,) if isinstance(keyword, str) else keyword) if k)[:MAX_KEYWORDS]
        self.keyword = self.keywords[0] if self.keywords else ""
        self.allowed_ips, self.throttle_code = allowed_ips, throttle_code
        self.server = HTTPServer(host="127.0.0.1", port=0)
        self.messages: list[dict] = []  # accepted payloads
        self.requests: list[Received] = []  # every request and its answer
        self._faults: deque[tuple[int | None, int | None]] = deque()
        self._recent: deque[float] = deque()
        self.throttled_until = 0.0
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> DingTalkStandIn:
        self.server.expect_request(PATH, method="POST").respond_with_handler(self._handle)
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server.is_running():
            self.server.clear()
            self.server.stop()

    def __enter__(self) -> DingTalkStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.server.port}{PATH}?access_token={self.token}"

    def fail_next(self, n: int = 1, *, errcode: int | None = None, http_status: int | None = None) -> None:
        with self._lock:
            self._faults.extend([(errcode, http_status)] * n)

    def answered(self, errcode: int) -> int:
        return sum(1 for r in self.requests if r.errcode == errcode and r.status == 200)

    def texts(self) -> list[str]:
        return [m["markdown"]["text"] for m in self.messages]

    # -- the robot ------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        with self._lock:
            now = self.clock()
            query = {k: v for k, v in request.args.items()}
            status, errcode, errmsg, payload = self._decide(request, query, now)
            self.requests.append(Received(status, errcode, errmsg, now, payload, query, len(request.get_data())))
            if status == 200 and errcode == 0:
                self.messages.append(payload)
            if status != 200:
                return Response("upstream error", status=status)
            return Response(json.dumps({"errcode": errcode, "errmsg": errmsg}), status=200, content_type="application/json")

    def _throttle(self, now: float) -> tuple[int, int, str, None]:
        self.throttled_until = max(self.throttled_until, now + THROTTLE)
        msg = "send too fast, exceed 20 times per minute" if self.throttle_code == ERR_THROTTLED_OLD else "发送速度太快而限流"
        return 200, self.throttle_code, msg, None

    def _decide(self, request: Request, query: dict[str, str], now: float) -> tuple[int, int, str, dict | None]:
        more = ", more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]"
        if self._faults:
            errcode, http_status = self._faults.popleft()
            if http_status:
                return http_status, -1, "", None
            if errcode in (ERR_THROTTLED, ERR_THROTTLED_OLD):
                self.throttled_until = max(self.throttled_until, now + THROTTLE)
            return 200, int(errcode or 0), "injected fault", None
        if query.get("access_token") != self.token:
            return 200, ERR_TOKEN, "token is not exist", None
        if self.allowed_ips and request.remote_addr not in self.allowed_ips:
            return 200, ERR_SECURITY, f"ip {request.remote_addr} not in whitelist{more}", None
        if self.secret:
            ts = query.get("timestamp", "")
            if not ts.isdigit() or abs(now * 1000 - int(ts)) > TIMESTAMP_WINDOW_MS:
                return 200, ERR_SECURITY, f"invalid timestamp{more}", None
            # request.args has already URL-decoded the sign, as DingTalk's server does
            expected = base64.b64encode(hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256).digest()).decode()
            if not hmac.compare_digest(query.get("sign", ""), expected):
                return 200, ERR_SECURITY, f"sign not match{more}", None
        body = request.get_data()
        if len(body) > MAX_BODY_BYTES:
            return 200, ERR_TOO_LONG, "message too long, exceed 20000 bytes", None
        try:
            payload = json.loads(body)
        except ValueError:
            return 200, 40035, "invalid json", None
        if payload.get("msgtype") != "markdown" or not payload.get("markdown", {}).get("title") or not payload["markdown"].get("text"):
            return 200, 40035, "missing markdown title or text", None
        # [security]: the keyword must be in the message. We check the markdown text only (not
        # the title), the strictest reading: a message that passes here passes there.
        if self.keywords and not any(k in str(payload["markdown"]["text"]) for k in self.keywords):
            return 200, ERR_SECURITY, f"keywords not in content{more}", None
        if now < self.throttled_until:
            return self._throttle(now)
        while self._recent and self._recent[0] <= now - RATE_WINDOW:
            self._recent.popleft()
        if len(self._recent) >= RATE_LIMIT:
            return self._throttle(now)
        self._recent.append(now)
        return 200, 0, "ok", payload
