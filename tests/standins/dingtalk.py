"""A DingTalk custom robot on 127.0.0.1 (pytest-httpserver), checking what DingTalk checks.

- ``access_token`` must be the robot's (else errcode 300001);
- signed mode: ``timestamp`` (ms) within one hour of the robot's clock, and ``sign``
  equal to base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")) once URL-decoded
  (else 310000, as DingTalk answers);
- a security keyword must appear in the message (else 310000);
- more than 20 messages within 60 seconds: 130101, and the robot stays throttled for 10
  minutes (every message meanwhile gets 130101 too);
- a markdown message needs a title and a text.

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
RATE_LIMIT = 20
RATE_WINDOW = 60.0
THROTTLE = 600.0
TIMESTAMP_WINDOW_MS = 3600 * 1000


@dataclass
class Received:
    status: int
    errcode: int
    errmsg: str
    at: float
    payload: dict | None
    query: dict[str, str]


class DingTalkStandIn:
    def __init__(self, *, token: str = "standin-access-token-7f3a9c", secret: str = "", keyword: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.token, self.secret, self.keyword, self.clock = token, secret, keyword, clock
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
            self.requests.append(Received(status, errcode, errmsg, now, payload, query))
            if status == 200 and errcode == 0:
                self.messages.append(payload)
            if status != 200:
                return Response("upstream error", status=status)
            return Response(json.dumps({"errcode": errcode, "errmsg": errmsg}), status=200, content_type="application/json")

    def _decide(self, request: Request, query: dict[str, str], now: float) -> tuple[int, int, str, dict | None]:
        if self._faults:
            errcode, http_status = self._faults.popleft()
            if http_status:
                return http_status, -1, "", None
            if errcode == 130101:
                self.throttled_until = max(self.throttled_until, now + THROTTLE)
            return 200, int(errcode or 0), "injected fault", None
        if query.get("access_token") != self.token:
            return 200, 300001, "token is not exist", None
        if self.secret:
            ts = query.get("timestamp", "")
            if not ts.isdigit() or abs(now * 1000 - int(ts)) > TIMESTAMP_WINDOW_MS:
                return 200, 310000, "invalid timestamp, more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]", None
            # request.args has already URL-decoded the sign, as DingTalk's server does
            expected = base64.b64encode(hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256).digest()).decode()
            if not hmac.compare_digest(query.get("sign", ""), expected):
                return 200, 310000, "sign not match, more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]", None
        try:
            payload = json.loads(request.get_data())
        except ValueError:
            return 200, 40035, "invalid json", None
        if payload.get("msgtype") != "markdown" or not payload.get("markdown", {}).get("title") or not payload["markdown"].get("text"):
            return 200, 40035, "missing markdown title or text", None
        if self.keyword and self.keyword not in json.dumps(payload, ensure_ascii=False):
            return 200, 310000, "keywords not in content, more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]", None
        if now < self.throttled_until:
            return 200, 130101, "send too fast, exceed 20 times per minute", None
        while self._recent and self._recent[0] <= now - RATE_WINDOW:
            self._recent.popleft()
        if len(self._recent) >= RATE_LIMIT:
            self.throttled_until = now + THROTTLE
            return 200, 130101, "send too fast, exceed 20 times per minute", None
        self._recent.append(now)
        return 200, 0, "ok", payload
