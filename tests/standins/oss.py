"""A local OSS for tests: moto's S3 server behind a thin OSS-dialect shim, over real HTTP.

The shim authenticates every request the way a bucket created today does
(``standins/oss_auth.py``, written from OSS's documentation): V1 signatures are refused
with 403, V4 signatures (Authorization header or presigned URL) are recomputed with the
secret of the key they name and refused with 403 SignatureDoesNotMatch when they differ;
an expired V4 URL gets 403 "Request has expired.". moto checks no signature itself.
Then moto's S3 app answers (``oss2`` uses path-style URLs for 127.0.0.1), and
``OssDialect`` fixes the places where OSS and S3 disagree, each commented where it
happens, and adds fault injection:

    with OssStandIn(keys={"id": "secret"}) as oss:
        oss.create_bucket("b")
        bucket = oss2.Bucket(oss2.AuthV4("id", "secret"), oss.endpoint, "b", region=oss.region)
        oss.fail_next(1, status=503)   # the next request answers 503 ServiceUnavailable

moto's state is process-global: ``reset()`` wipes every bucket (``POST /moto-api/reset``).
"""

from __future__ import annotations

import base64
import io
import threading
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

from werkzeug.serving import WSGIRequestHandler, make_server

from .oss_auth import Verifier

_ERROR_CODES = {
    400: "InvalidArgument",
    403: "AccessDenied",
    404: "NoSuchKey",
    409: "Conflict",
    412: "PreconditionFailed",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

# urllib without proxies: a stray http_proxy must not send 127.0.0.1 elsewhere.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class OssDialect:
    """WSGI middleware: OSS on the outside, moto's S3 app on the inside."""

    def __init__(self, s3_app: Any, moto_api_app: Any, verifier: Verifier) -> None:
        self.s3 = s3_app
        self.moto_api = moto_api_app
        self.verifier = verifier
        self.signed: list[str] = []  # per request: 'V4-header', 'V4-query', 'V1' or 'anonymous'
        self._faults: deque[tuple[str, float]] = deque()  # ("fail", status) or ("delay", seconds)
        self._faults_lock = threading.Lock()
        self._forbid_lock = threading.Lock()
        self.requests: list[str] = []  # "METHOD /path?query", for tests that count calls
        self.ranges: list[tuple[str, str, bool]] = []  # per ranged GET: Range, x-oss-range-behavior, served whole

    # -- fault injection -----------------------------------------------------------------

    def add_faults(self, kind: str, n: int, value: float) -> None:
        with self._faults_lock:
            self._faults.extend([(kind, value)] * n)

    def clear(self) -> None:
        with self._faults_lock:
            self._faults.clear()
            self.requests.clear()
            self.signed.clear()
            self.ranges.clear()

    def _next_fault(self) -> tuple[str, float] | None:
        with self._faults_lock:
            return self._faults.popleft() if self._faults else None

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return self.moto_api(environ, start_response)
        method = environ["REQUEST_METHOD"]
        query = environ.get("QUERY_STRING", "")
        with self._faults_lock:
            self.requests.append(f"{method} {path}" + (f"?{query}" if query else ""))

        fault = self._next_fault()
        if fault and fault[0] == "fail":
            _drain(environ)
            return self._error(start_response, int(fault[1]), environ=environ)
        if fault and fault[0] == "delay":
            time.sleep(fault[1])
        if fault and fault[0] == "whole" and not (method == "GET" and environ.get("HTTP_RANGE")):
            with self._faults_lock:
                self._faults.appendleft(fault)  # kept for the next ranged GET
            fault = None

        # Authentication first, as OSS does (standins/oss_auth.py cites each rule).
        form, refusal = self.verifier.check(environ)
        with self._faults_lock:
            self.signed.append(form)
        if refusal is not None:
            _drain(environ)
            return self._error(start_response, refusal.status, refusal.code, refusal.message, environ, ec=refusal.ec)
        if form == "V4-query":
            # Verified: moto takes a request without an Authorization header for an
            # anonymous one (and refuses it on a private bucket), so the URL's signature
            # moves into a header moto does not check, and its parameters leave the query.
            query = "&".join(p for p in query.split("&") if not p.startswith("x-oss-"))
            environ["QUERY_STRING"] = query
            environ["HTTP_AUTHORIZATION"] = "OSS4-HMAC-SHA256 verified-by-the-shim"

        params = dict(p.partition("=")[::2] for p in query.split("&") if p)

        # oss2's list_objects_v2 always sends `continuation-token=` (empty) on the first
        # page; S3 (and moto) reject an empty token with 400 InvalidArgument.
        if "continuation-token" in params and not params["continuation-token"]:
            environ["QUERY_STRING"] = "&".join(
                p for p in query.split("&") if p not in ("continuation-token", "continuation-token=")
            )

        # User metadata: OSS spells it x-oss-meta-*, moto only keeps x-amz-meta-*.
        for name in [k for k in environ if k.startswith("HTTP_X_OSS_META_")]:
            environ["HTTP_X_AMZ_META_" + name[len("HTTP_X_OSS_META_") :]] = environ.pop(name)

        if method == "GET" and _object_key(environ) and environ.get("HTTP_RANGE"):
            if not self._oss_range(environ, whole=bool(fault and fault[0] == "whole")):
                return self._error(start_response, 416, "InvalidRange", "The requested range cannot be satisfied", environ)

        if method == "PUT" and _object_key(environ) and environ.get("HTTP_X_OSS_FORBID_OVERWRITE", "").lower() == "true":
            # moto ignores x-oss-forbid-overwrite (S3's If-None-Match: * would give 412; OSS
            # answers 409 FileAlreadyExists). Check and write under one lock so two racing
            # writers cannot both see "absent" and both write. Plain PUTs skip the lock: OSS
            # orders them against a forbid-overwrite write no better.
            with self._forbid_lock:
                if self._object_exists(environ):
                    _drain(environ)
                    return self._error(
                        start_response,
                        409,
                        "FileAlreadyExists",
                        "The object you specified already exists and can not be overwritten.",
                        environ,
                    )
                return self._forward(environ, start_response)
        return self._forward(environ, start_response)

    # -- helpers ---------------------------------------------------------------------------

    def _oss_range(self, environ: dict[str, Any], whole: bool = False) -> bool:
        """Make moto (S3's Range rules) answer a ranged GET as OSS does.

        OSS, "How to obtain OSS resources by segmenting HTTP Range requests"
        (https://help.aliyun.com/en/oss/how-to-obtain-oss-resources-by-segmenting-http-range-requests)
        and the 416 page (https://www.alibabacloud.com/help/en/oss/user-guide/http-status-code-416):

        - several ranges (``bytes=0-9,20-29``): only the first is served, says the first page
          (S3/moto: the whole object); the 416 page names several ranges as a cause of
          InvalidRange, which the stand-in answers when ``x-oss-range-behavior: standard``
          is sent (the pages do not say which holds with it; we never send several);
        - without ``x-oss-range-behavior: standard``, a range that is malformed or not inside
          0..size-1 (start or end past the end, a suffix longer than the object) is ignored:
          200 with the whole object (S3/moto: an end past the end is cut, 206; a start past
          the end is 416);
        - with ``x-oss-range-behavior: standard``: an end past the end is cut to it (206) and a
          start past the end is 416 InvalidRange, which is what moto does already.

        ``whole``: a fault (``serve_whole_next``) that answers as OSS's default does for an
        invalid range whatever the range and header are, so a client's bound can be tested.
        False: answer 416 InvalidRange.
        """
        spec = environ["HTTP_RANGE"]
        with self._faults_lock:
            self.ranges.append((spec, environ.get("HTTP_X_OSS_RANGE_BEHAVIOR", ""), whole))
        if whole:
            del environ["HTTP_RANGE"]
            return True
        unit, _, ranges = spec.partition("=")
        standard = environ.get("HTTP_X_OSS_RANGE_BEHAVIOR", "").lower() == "standard"
        if "," in ranges:
            if standard:
                return False
            ranges = ranges.split(",", 1)[0].strip()
            environ["HTTP_RANGE"] = f"{unit}={ranges}"
        if standard:
            return True
        size = self._object_size(environ)
        first, _, last = ranges.partition("-")
        valid = unit.strip() == "bytes" and size is not None and (first.isdigit() or last.isdigit())
        if valid and first.isdigit():
            valid = int(first) < size and (not last or (last.isdigit() and int(first) <= int(last) < size))
        elif valid:
            valid = 0 < int(last) <= size  # a suffix: the last N bytes, N at most the size
        if not valid:
            del environ["HTTP_RANGE"]  # OSS's default: the range is ignored, 200 and the whole object
        return True

    def _object_size(self, environ: dict[str, Any]) -> int | None:
        head = {k: v for k, v in environ.items() if k not in ("HTTP_RANGE", "HTTP_X_OSS_RANGE_BEHAVIOR")}
        head.update(REQUEST_METHOD="HEAD", QUERY_STRING="", CONTENT_LENGTH="0")
        head["wsgi.input"] = io.BytesIO()
        status, headers, _ = self._call_s3(head)
        length = next((v for n, v in headers if n.lower() == "content-length"), None)
        return int(length) if status == 200 and length and length.isdigit() else None

    def _call_s3(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = status, headers

        result = self.s3(environ, start)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return int(captured["status"].split()[0]), list(captured["headers"]), body

    def _object_exists(self, environ: dict[str, Any]) -> bool:
        head = {k: v for k, v in environ.items() if not k.startswith(("HTTP_X_OSS_", "HTTP_X_AMZ_META_"))}
        head.update(REQUEST_METHOD="HEAD", QUERY_STRING="", CONTENT_LENGTH="0")
        head["wsgi.input"] = io.BytesIO()
        status, _, _ = self._call_s3(head)
        return status == 200

    def _forward(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status, headers, body = self._call_s3(environ)
        if status >= 400:
            code, message = _parse_error(body)
            return self._error(start_response, status, code, message, environ, moto_headers=headers)

        out = []
        for name, value in headers:
            low = name.lower()
            if low.startswith("x-amz-meta-"):
                # ...and back: oss2 reads user metadata from x-oss-meta-*.
                name = "x-oss-meta-" + name[len("x-amz-meta-") :]
            elif low == "x-amzn-requestid":
                # oss2 reads the request id (shown in its errors) from x-oss-request-id.
                name = "x-oss-request-id"
            out.append((name, value))
        if environ["REQUEST_METHOD"] == "GET" and not _object_key(environ):  # a bucket-level GET: maybe a listing
            body = _oss_listing(body)
            out = [(n, str(len(body)) if n.lower() == "content-length" else v) for n, v in out]
        start_response(_status_line(status), out)
        return [body]

    def _error(
        self,
        start_response: Any,
        status: int,
        code: str | None = None,
        message: str | None = None,
        environ: dict[str, Any] | None = None,
        moto_headers: list[tuple[str, str]] | None = None,
        ec: str = "",
    ) -> list[bytes]:
        """An error the way OSS sends it, so oss2.exceptions.make_exception picks the right class.

        OSS's <Error> holds Code, Message, RequestId, HostId and, on newer errors, EC (the
        number of the error's documentation page, e.g. 0002-00000080; oss2/exceptions.py
        reads it as ``OssError.ec``); moto's adds S3-only fields and an S3-style RequestID
        on some paths. A HEAD response has no body, so OSS puts
        the same XML base64-encoded in the x-oss-err header, which oss2 also reads.
        """
        request_id = next((v for n, v in moto_headers or [] if n.lower() == "x-amzn-requestid"), None)
        request_id = request_id or uuid.uuid4().hex.upper()[:24]
        head = environ is not None and environ.get("REQUEST_METHOD") == "HEAD"
        code = code or (None if head and status == 404 else _ERROR_CODES.get(status, "InternalError"))
        host = (environ or {}).get("HTTP_HOST", "127.0.0.1")
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
            + (f"<Code>{escape(code)}</Code>" if code else "")
            + f"<Message>{escape(message or code or 'Not Found')}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{escape(host)}</HostId>"
            + (f"<EC>{escape(ec)}</EC>" if ec else "")
            + "</Error>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("x-oss-request-id", request_id)]
        if head:
            # moto's HEAD 404 says nothing; without a code oss2 raises its plain NotFound,
            # which is what real OSS does when x-oss-err is absent too.
            if code:
                headers.append(("x-oss-err", base64.b64encode(xml).decode()))
            body = b""
        else:
            body = xml
        headers.append(("Content-Length", str(len(body))))
        start_response(_status_line(status), headers)
        return [body]


def _object_key(environ: dict[str, Any]) -> str:
    """The key of a path-style request (/<bucket>/<key>), '' for a bucket-level one."""
    return environ.get("PATH_INFO", "").lstrip("/").partition("/")[2]


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _parse_error(body: bytes) -> tuple[str | None, str | None]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None, None
    found = {_local(c.tag): (c.text or "") for c in root}
    return found.get("Code"), found.get("Message")


def _oss_listing(body: bytes) -> bytes:
    """moto's ListBucketResult -> what oss2.xml_utils.parse_list_objects(_v2) reads.

    oss2 looks elements up by bare names ('Contents', 'Type'), so the S3 namespace must go,
    and it requires <Type> in every <Contents> (OSS says Normal / Appendable / Multipart).
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body
    if _local(root.tag) != "ListBucketResult":
        return body
    for el in root.iter():
        el.tag = _local(el.tag)
    for contents in root.findall("Contents"):
        if contents.find("Type") is None:
            ET.SubElement(contents, "Type").text = "Normal"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _drain(environ: dict[str, Any]) -> None:
    """Read an unanswered request body, so the client is not cut off mid-upload."""
    length = environ.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length):
        environ["wsgi.input"].read(int(length))


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # one line per request is noise in tests
        pass


class OssStandIn:
    """The shim plus moto, served on 127.0.0.1:<free port> from a background thread."""

    def __init__(self, keys: dict[str, str] | None = None, tokens: dict[str, str] | None = None,
                 region: str = "cn-hangzhou") -> None:
        """``keys``: access key id -> secret the stand-in accepts; ``tokens``: key id -> the
        STS token that key must come with; ``region``: the buckets' region (V4 scope)."""
        from moto.moto_server.werkzeug_app import create_backend_app

        self.region = region
        self._initial = (dict(keys or {}), dict(tokens or {}))
        self.keys: dict[str, str] = dict(keys or {})
        self.tokens: dict[str, str] = dict(tokens or {})
        self.verifier = Verifier(region, self.keys, self.tokens)
        # The two moto apps are called directly (no DomainDispatcherApplication): every
        # request here is S3 except /moto-api, and guessing the service from an OSS
        # Authorization header (or none, for presigned URLs) is moto's business we skip.
        self.app = OssDialect(create_backend_app("s3"), create_backend_app("moto_api"), self.verifier)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread: threading.Thread | None = None

    def start(self) -> OssStandIn:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="oss-standin", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OssStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every bucket and object (moto's state is process-global), faults, the
        request log and the keys added since the stand-in started."""
        self.app.clear()
        self.keys.clear()
        self.keys.update(self._initial[0])
        self.tokens.clear()
        self.tokens.update(self._initial[1])
        self.verifier.clock = time.time
        _direct.open(urllib.request.Request(self.endpoint + "/moto-api/reset", data=b"", method="POST"), timeout=10).read()

    def create_bucket(self, name: str) -> None:
        # A bare PUT /<bucket> straight to moto, past the shim's authentication (the
        # stand-in's own set-up, like a bucket made in the console).
        from werkzeug.test import Client

        resp = Client(self.app.s3).put(f"/{name}", base_url=self.endpoint)
        assert resp.status_code == 200, resp.status_code

    def add_key(self, key_id: str, secret: str, token: str | None = None) -> None:
        """Accept ``key_id``/``secret`` from now on (with ``token``: only with that STS token)."""
        self.keys[key_id] = secret
        if token is not None:
            self.tokens[key_id] = token

    def revoke_key(self, key_id: str) -> None:
        """Forget a key, as STS credentials that expired: requests with it get 403."""
        self.keys.pop(key_id, None)
        self.tokens.pop(key_id, None)

    def advance_clock(self, seconds: float) -> None:
        """Judge presigned URLs' lifetimes as if ``seconds`` had passed (until the next reset)."""
        offset = seconds
        self.verifier.clock = lambda: time.time() + offset

    @property
    def signed(self) -> list[str]:
        """How each request since the last reset was signed: 'V4-header', 'V4-query', 'V1', 'anonymous'."""
        return list(self.app.signed)

    @property
    def ranges(self) -> list[tuple[str, str, bool]]:
        """Ranged GETs since the last reset: (Range, x-oss-range-behavior, served whole by a fault)."""
        return list(self.app.ranges)

    @property
    def requests(self) -> list[str]:
        """Requests seen since the last reset, as "METHOD /path?query" (moto-api calls excluded)."""
        return list(self.app.requests)

    # -- faults ---------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` requests answer ``status`` with an OSS-style error, untouched by moto."""
        self.app.add_faults("fail", n, status)

    def serve_whole_next(self, n: int) -> None:
        """The next ``n`` ranged GETs get 200 and the whole object, as OSS answers a range it
        finds invalid when ``x-oss-range-behavior: standard`` is not sent (see ``_oss_range``):
        a client that asked for a few bytes must not read them all."""
        self.app.add_faults("whole", n, 0)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next ``n`` requests wait ``seconds``, then are served anyway: a client that
        timed out meanwhile may still see its write land, as with real OSS."""
        self.app.add_faults("delay", n, seconds)
