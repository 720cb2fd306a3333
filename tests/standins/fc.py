"""A Function Compute stand-in that records async invocations (FC 2.0 API, the one
``aliyun-fc2`` speaks): ``POST /2016-08-15/services/<svc>/functions/<fn>/invocations``.

It checks what FC would check before queueing (the Authorization header's shape) and
answers 202 like FC does. Queued invocations run when the test calls ``drain()``, in the
test's own thread, the way FC's async worker would run them later.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PATH = re.compile(r"^/2016-08-15/services/(?P<service>[^/]+)/functions/(?P<function>[^/]+)/invocations$")


@dataclass
class Invocation:
    service: str
    function: str
    invocation_type: str
    payload: bytes


class FcStandIn:
    def __init__(self, on_invoke: Callable[[Invocation], None] | None = None, fail_next: int = 0) -> None:
        self.invocations: list[Invocation] = []
        self.pending: list[Invocation] = []
        self.on_invoke = on_invoke
        self.fail_next = fail_next
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FcStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                m = _PATH.match(self.path.split("?", 1)[0])
                auth = self.headers.get("authorization", "")
                if m is None:
                    return self._reply(404, b'{"ErrorCode":"FunctionNotFound","ErrorMessage":"no such function"}')
                if not auth.startswith("FC ") or ":" not in auth:
                    return self._reply(403, b'{"ErrorCode":"InvalidSignature","ErrorMessage":"bad signature"}')
                with standin._lock:
                    if standin.fail_next > 0:
                        standin.fail_next -= 1
                        return self._reply(503, b'{"ErrorCode":"ServiceUnavailable","ErrorMessage":"try later"}')
                    inv = Invocation(m["service"], m["function"], self.headers.get("x-fc-invocation-type", "Sync"), body)
                    standin.invocations.append(inv)
                    standin.pending.append(inv)
                self._reply(202, b"")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("x-fc-request-id", "req-standin")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def drain(self) -> int:
        """Run every queued invocation (and those they queue) with ``on_invoke``."""
        ran = 0
        while True:
            with self._lock:
                if not self.pending:
                    return ran
                inv = self.pending.pop(0)
            if self.on_invoke is not None:
                self.on_invoke(inv)
            ran += 1

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
