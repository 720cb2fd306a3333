"""A local ECS OpenAPI endpoint for tests, over real HTTP on 127.0.0.1.

It speaks the wire protocol the ECS SDK (``alibabacloud-ecs20140526``) speaks to the
cloud: ``POST /?<query>`` (GET works too) with the API name in ``x-acs-action``,
parameters flattened into the query (``InstanceId.1``, ``Parameters`` as a JSON string,
booleans as ``True``/``False``), signed with ACS3-HMAC-SHA256, which it verifies the way
the server does. Replies are the real JSON shapes; errors are
``{"RequestId", "HostId", "Code", "Message", "Recommend"}`` with the cloud's HTTP status.
The six actions the pipeline uses are answered by a ``SimulatedCloud``:

    cloud = SimulatedCloud.from_dir(tmp_path / "instances")
    with EcsStandIn(cloud) as ecs:              # access key STANDIN_KEY_ID / STANDIN_SECRET
        api = SdkEcsApi(endpoint=ecs.endpoint, protocol="http", access_key_id=..., ...)
        ecs.inject("RunCommand", 2)             # two Throttling.User (400) replies first
        ecs.inject("*", 5, "ServiceUnavailable")  # 503, whatever the action
        ecs.delay("DescribeInvocationResults", 1.0)   # reply after a second
        ecs.reset_connection("RunCommand", 1)   # close the socket (RST), no reply
        ecs.count("RunCommand")                 # requests seen, faults included

Every request is recorded (``ecs.requests``), rejected or not, with its parameters and
the raw query, headers and body, so a test can re-run the signature check on a
tampered copy (``verify_acs3``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote

from crashdiag.cloud.ecs import CloudError, InvocationResult, command_size
from crashdiag.cloud.simulate import SimulatedCloud

STANDIN_KEY_ID = "LTAI5tStandInKeyId"
STANDIN_SECRET = "standin-secret-Zq3x9W"  # noqa: S105 - a test credential
API_VERSION = "2014-05-26"
ALGORITHM = "ACS3-HMAC-SHA256"
MAX_CLOCK_SKEW = 15 * 60  # seconds, as the cloud allows
# RunCommand: "After the custom parameters and the original command content are
# Base64-encoded, the size of the Base64-encoded command content cannot exceed 24 KB"
# (alibabacloud_ecs20140526/models/_run_command_request.py, Parameters). At most 10 custom
# parameters ("The number of custom parameters ranges from 0 to 10"), names up to 64
# characters (same docstring).
COMMAND_CONTENT_LIMIT = 24 * 1024
MAX_PARAMETERS = 10
MAX_PARAMETER_NAME = 64
HOST_ID = "ecs.aliyuncs.com"


class ApiError(Exception):
    """An error reply: HTTP status, Code, Message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def status_for(code: str) -> int:
    """The HTTP status the cloud answers an error code with."""
    if code.startswith("ServiceUnavailable"):
        return 503
    if code.startswith("InternalError"):
        return 500
    if code.endswith(".NotFound") or code.startswith("InvalidAction"):
        return 404
    if code.startswith("Forbidden"):
        return 403
    return 400  # Throttling.User, InvalidParameter, SignatureDoesNotMatch, ...


# -- ACS3-HMAC-SHA256, server side ---------------------------------------------------------

_AUTH_RE = re.compile(
    r"^(?P<alg>[A-Z0-9-]+)\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]*),\s*Signature=(?P<sig>[0-9a-fA-F]+)$"
)


def _rfc3986(text: str) -> str:
    return quote(text, safe="~", encoding="utf-8")


def canonical_query(raw_query: str) -> str:
    """Decode the query as received, then re-encode each name and value (RFC 3986,
    space as %20) and sort by name."""
    pairs = parse_qsl(raw_query, keep_blank_values=True, encoding="utf-8")
    return "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(pairs))


def verify_acs3(
    method: str,
    path: str,
    raw_query: str,
    headers: dict[str, list[str]],
    body: bytes,
    secrets: dict[str, str],
    tokens: dict[str, str] | None = None,
    now: float | None = None,
    max_skew: int = MAX_CLOCK_SKEW,
) -> str:
    """Check an ACS3-HMAC-SHA256 request; returns the access key id or raises ApiError.

    ``headers`` maps lower-case names to every value received. ``tokens`` names the
    security token an access key id must come with (STS)."""

    def one(name: str) -> str | None:
        values = headers.get(name)
        return values[0].strip() if values else None

    auth = one("authorization")
    if not auth:
        raise ApiError(
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards: no Authorization header.",
        )
    m = _AUTH_RE.match(auth)
    if not m:
        raise ApiError(
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )
    if m["alg"] != ALGORITHM:
        raise ApiError(
            400,
            "InvalidSignatureMethod",
            f"Specified signature method {m['alg']} is not supported.",
        )
    key_id = m["cred"]
    secret = secrets.get(key_id)
    if secret is None:
        raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    expected_token = (tokens or {}).get(key_id)
    if expected_token is not None and one("x-acs-security-token") != expected_token:
        raise ApiError(
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            "Specified SecurityToken mismatch with the AccessKey.",
        )

    signed = m["signed"].split(";") if m["signed"] else []
    if [h.lower() for h in signed] != signed:
        raise ApiError(400, "IncompleteSignature", "SignedHeaders must be lower case.")
    # host and every x-acs-* header (date, content hash, nonce, action, version) must be signed
    must = {"host", "x-acs-date", "x-acs-content-sha256"} | {
        h for h in headers if h.startswith("x-acs-")
    }
    missing = sorted(must - set(signed))
    if missing:
        raise ApiError(
            400,
            "IncompleteSignature",
            f"The request signature does not conform to Aliyun standards: {', '.join(missing)} not signed.",
        )

    date = one("x-acs-date") or ""
    try:
        when = (
            datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
        )
    except ValueError:
        raise ApiError(
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        ) from None
    if abs((time.time() if now is None else now) - when) > max_skew:
        raise ApiError(
            400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
        )

    payload_hash = hashlib.sha256(body).hexdigest()
    if (one("x-acs-content-sha256") or "").lower() != payload_hash:
        raise ApiError(
            400, "SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the body."
        )

    canonical_headers = "".join(
        f"{name}:{','.join(sorted(v.strip() for v in headers.get(name, [])))}\n"
        for name in sorted(signed)
    )
    canonical_request = "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(raw_query),
            canonical_headers,
            ";".join(sorted(signed)),
            payload_hash,
        ]
    )
    string_to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"
    expected = hmac.new(
        secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, m["sig"].lower()):
        raise ApiError(
            400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."
        )
    return key_id


# -- the server ----------------------------------------------------------------------------


@dataclass
class Recorded:
    action: str
    params: dict[str, str]
    method: str
    path: str
    raw_query: str
    headers: dict[str, list[str]]
    body: bytes
    status: int | None = None  # None: no reply (connection reset)
    code: str | None = None  # error Code, or None on success


@dataclass
class _Fault:
    action: str
    times: int | None  # None: every time
    kind: str  # "error", "delay", "reset"
    code: str = ""
    status: int = 0
    message: str = ""
    seconds: float = 0.0
    retry_after_ms: int | None = None

    def matches(self, action: str) -> bool:
        return (self.action in ("*", action)) and (self.times is None or self.times > 0)


@dataclass
class _StandInInvocation:
    invoke_id: str
    command_id: str
    region: str
    targets: dict[str, str]  # instance id -> the simulator's invoke id
    started: str
    timeout: int
    extra: dict[str, Any] = field(default_factory=dict)


# ErrorInfo beside each ErrorCode, after the ErrorInfo values documented for
# DescribeInvocationResults (ECS SDK response models) and the messages of
# https://www.alibabacloud.com/help/doc-detail/87029.html.
_ERROR_INFO = {
    "InstanceNotExists": "the specified instance does not exists",
    "InstanceReleased": "the instance has released when create task",
    "InstanceNotRunning": "the instance is not running when create task",
    "InstanceRestarted": "the instance was restarted during task execution",
    "InstanceDeregistered": "the managed instance has been deregistered",
    "CommandNotApplicable": "the command is not applicable",
    "ClientNotRunning": "the aliyun service is not running on the instance",
    "ClientNotResponse": "the aliyun service in the instance does not response",
    "ClientNotOnline": "the aliyun service is not connected to the server",
    "ClientNetworkBlocked": "the network of the instance is abnormal",
    "ClientIsUpgrading": "the aliyun service in the instance is upgrading now",
    "ClientNeedUpgrade": "the aliyun service in the instance need upgrade",
    "ClientRestarted": "the aliyun service has been restarted during task execution",
    "SecurityGroupRuleDenied": "the security group rules denied access to the aliyun service: sg-bp1standin0000",
    "DeliveryTimeout": "the command delivery has been timeout",
    "ExecutionTimeout": "the command execution has been timeout",
    "ExecutionException": "the command execution got an exception",
    "ExecutionInterrupted": "the command task was interrupted",
    "ExitCodeNonzero": "the command execution exit code is not zero",
}

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bool(params: dict[str, str], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError(400, f"InvalidParameter.{name}", f"The specified parameter {name} is invalid.")


def _int(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(
            400, f"InvalidParameter.{name}", f"The specified parameter {name} is invalid."
        ) from None


def _repeat_list(params: dict[str, str], name: str) -> list[str]:
    """``InstanceId.1``, ``InstanceId.2``, ... in index order."""
    items = []
    for key, value in params.items():
        if key.startswith(name + "."):
            index = key[len(name) + 1 :]
            if index.isdigit():
                items.append((int(index), value))
    return [v for _, v in sorted(items)]


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        if name == "RegionId":
            raise ApiError(400, "MissingRegionId", "RegionId is mandatory for this action.")
        raise ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")
    return value


class EcsStandIn:
    """ECS OpenAPI on 127.0.0.1 in a background thread, answered by a SimulatedCloud."""

    def __init__(
        self,
        cloud: SimulatedCloud,
        *,
        access_keys: dict[str, str] | None = None,
        security_tokens: dict[str, str] | None = None,
        max_skew: int = MAX_CLOCK_SKEW,
    ) -> None:
        self.cloud = cloud
        self.access_keys = dict(access_keys or {STANDIN_KEY_ID: STANDIN_SECRET})
        self.security_tokens = dict(security_tokens or {})
        self.max_skew = max_skew
        self.requests: list[Recorded] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._nonces: set[str] = set()
        self._client_tokens: dict[str, dict[str, Any]] = {}
        self._invocations: dict[str, _StandInInvocation] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> EcsStandIn:
        handler = type("_Handler", (_Handler,), {"standin": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False  # a handler sleeping in .delay() must not hold up stop()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EcsStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- faults and the request log ------------------------------------------------------

    def inject(
        self,
        action: str = "*",
        times: int | None = 1,
        code: str = "Throttling.User",
        status: int | None = None,
        message: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """The next ``times`` requests for ``action`` ('*': any) fail with ``code``.
        ``status`` defaults to the cloud's: 400 Throttling.*, 503 ServiceUnavailable,
        500 InternalError. ``times=None``: until ``clear_faults()``. ``retry_after_ms``
        adds an ``x-acs-retry-after`` header (the SDK then raises ThrottlingException)."""
        with self._lock:
            self._faults.append(
                _Fault(
                    action,
                    times,
                    "error",
                    code=code,
                    status=status or status_for(code),
                    message=message or _default_message(code),
                    retry_after_ms=retry_after_ms,
                )
            )

    def delay(self, action: str, seconds: float, times: int | None = None) -> None:
        """Answer ``action`` only after ``seconds`` (the work is done first, as a slow
        cloud would): past the client's read timeout, the reply finds nobody."""
        with self._lock:
            self._faults.append(_Fault(action, times, "delay", seconds=seconds))

    def reset_connection(self, action: str, times: int | None = 1) -> None:
        """Close the connection (RST) without a reply, before doing any work."""
        with self._lock:
            self._faults.append(_Fault(action, times, "reset"))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def calls(self, action: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if action is None or r.action == action]

    def count(self, action: str | None = None) -> int:
        return len(self.calls(action))

    def _take_fault(self, kind: str, action: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.matches(action):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # -- one request ---------------------------------------------------------------------

    def handle(self, req: Recorded) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Returns (status, JSON body, extra headers), or None to drop the connection."""
        with self._lock:
            self.requests.append(req)
        if self._take_fault("reset", req.action):
            return None
        request_id = str(uuid.uuid4()).upper()
        extra: dict[str, str] = {}
        try:
            if req.path != "/":
                raise ApiError(
                    404,
                    "InvalidAction.NotFound",
                    "Specified api is not found, please check your url and method.",
                )
            verify_acs3(
                req.method,
                req.path,
                req.raw_query,
                req.headers,
                req.body,
                self.access_keys,
                self.security_tokens,
                max_skew=self.max_skew,
            )
            nonce = (req.headers.get("x-acs-signature-nonce") or [""])[0]
            with self._lock:
                if nonce and nonce in self._nonces:
                    raise ApiError(
                        400, "SignatureNonceUsed", "Specified signature nonce was used already."
                    )
                self._nonces.add(nonce)
            version = (req.headers.get("x-acs-version") or [""])[0]
            if version != API_VERSION:
                raise ApiError(
                    400, "InvalidVersion", f"Specified parameter Version {version} is not valid."
                )
            fault = self._take_fault("error", req.action)
            if fault:
                retry_after = fault.retry_after_ms
                headers = {"x-acs-retry-after": str(retry_after)} if retry_after else None
                raise ApiError(fault.status, fault.code, fault.message, headers)
            handler = getattr(self, f"_do_{req.action}", None)
            if handler is None:
                raise ApiError(
                    404,
                    "InvalidAction.NotFound",
                    "Specified api is not found, please check your url and method.",
                )
            try:
                body = handler(req.params)
            except CloudError as exc:
                raise ApiError(status_for(exc.code), exc.code, exc.message or exc.code) from None
            body["RequestId"] = request_id
            status = 200
        except ApiError as exc:
            status = exc.status
            body = {
                "RequestId": request_id,
                "HostId": HOST_ID,
                "Code": exc.code,
                "Message": exc.message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={exc.code}&product=Ecs",
            }
            req.code = exc.code
            extra = exc.headers
        req.status = status
        delay = self._take_fault("delay", req.action)
        if delay:
            time.sleep(delay.seconds)
        return status, body, extra

    # -- the five actions ----------------------------------------------------------------

    def _do_DescribeInstanceStatus(self, p: dict[str, str]) -> dict[str, Any]:
        region = _required(p, "RegionId")
        ids = _repeat_list(p, "InstanceId")
        if len(ids) > 100:
            raise ApiError(400, "InvalidParameter.InstanceId", "At most 100 instance ids.")
        if not ids:
            ids = [i for i, inst in sorted(self.cloud.instances.items()) if inst.region == region]
        page, size = _int(p, "PageNumber", 1), _int(p, "PageSize", 10)
        found = []
        for instance_id in ids:
            status = self.cloud.instance_status(region, instance_id)
            if status is not None:  # an unknown id is simply not listed
                found.append({"InstanceId": instance_id, "Status": status})
        window = found[(page - 1) * size : page * size]
        return {
            "InstanceStatuses": {"InstanceStatus": window},
            "TotalCount": len(found),
            "PageNumber": page,
            "PageSize": size,
        }

    def _do_DescribeInstances(self, p: dict[str, str]) -> dict[str, Any]:
        """InstanceIds is a JSON array of up to 100 ids (DescribeInstancesRequest.instance_ids);
        OSType is windows or linux."""
        region = _required(p, "RegionId")
        try:
            ids = json.loads(p.get("InstanceIds") or "[]")
        except ValueError:
            raise ApiError(400, "InvalidInstanceIds.Malformed", "The specified InstanceIds is not valid JSON.") from None
        if not isinstance(ids, list) or len(ids) > 100:
            raise ApiError(400, "InvalidInstanceIds.ValueNotSupported", "At most 100 instance ids.")
        if not ids:
            ids = [i for i, inst in sorted(self.cloud.instances.items()) if inst.region == region]
        found = []
        for instance_id in ids:
            info = self.cloud.instance_info(region, str(instance_id))
            if info is not None:  # an unknown id is simply not listed
                found.append({"InstanceId": info.instance_id, "RegionId": info.region, "InstanceName": info.name,
                              "OSType": info.os_type, "OSName": info.os_name, "Status": info.status,
                              "Memory": info.memory_mib})  # MiB, as DescribeInstances documents it
        page, size = _int(p, "PageNumber", 1), _int(p, "PageSize", 10)
        return {"Instances": {"Instance": found[(page - 1) * size : page * size]}, "TotalCount": len(found),
                "PageNumber": page, "PageSize": size}

    def _do_DescribeCloudAssistantStatus(self, p: dict[str, str]) -> dict[str, Any]:
        region = _required(p, "RegionId")
        ids = _repeat_list(p, "InstanceId")
        if not ids:
            ids = [i for i, inst in sorted(self.cloud.instances.items()) if inst.region == region]
        items = []
        for instance_id in ids:
            online = self.cloud.cloud_assistant_online(region, instance_id)
            items.append(
                {
                    "InstanceId": instance_id,
                    "CloudAssistantStatus": "true"
                    if online
                    else "false",  # a string, as the cloud sends it
                    "CloudAssistantVersion": "2.2.3.857",
                    "OSType": self.cloud.instances[instance_id].os_type.capitalize()
                    if instance_id in self.cloud.instances else "Linux",
                    "LastHeartbeatTime": _now_iso() if online else "",
                    "SupportSessionManager": True,
                    "ActiveTaskCount": 0,
                    "InvocationCount": 0,
                }
            )
        return {
            "InstanceCloudAssistantStatusSet": {"InstanceCloudAssistantStatus": items},
            "TotalCount": len(items),
            "PageNumber": _int(p, "PageNumber", 1),
            "PageSize": _int(p, "PageSize", 10),
        }

    def _do_RunCommand(self, p: dict[str, str]) -> dict[str, Any]:
        region = _required(p, "RegionId")
        if p.get("Type") != "RunShellScript":
            raise ApiError(
                400,
                "InvalidParameter.Type",
                "The stand-in's instances are Linux: Type must be RunShellScript.",
            )
        raw = _required(p, "CommandContent")
        encoding = p.get("ContentEncoding", "PlainText")
        if encoding.lower() == "base64":
            try:
                script = base64.b64decode(raw, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ApiError(
                    400,
                    "InvalidParameter.CommandContent",
                    "The command content is not valid base64.",
                ) from None
        elif encoding.lower() == "plaintext":
            script = raw
        else:
            raise ApiError(
                400,
                "InvalidParameter.ContentEncoding",
                "ContentEncoding must be PlainText or Base64.",
            )
        ids = _repeat_list(p, "InstanceId")
        if not ids:
            raise ApiError(400, "MissingInstanceId", "InstanceId is mandatory for this action.")
        timeout = _int(p, "Timeout", 60)
        if timeout <= 0 or timeout > 86400:
            raise ApiError(
                400, "InvalidParameter.Timeout", "Timeout must be within 1..86400 seconds."
            )
        if _bool(p, "EnableParameter"):
            try:
                parameters = json.loads(p.get("Parameters") or "{}")
            except ValueError:
                raise ApiError(
                    400, "InvalidParameter.Parameters", "Parameters must be a JSON object."
                ) from None
            if not isinstance(parameters, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()
            ):
                raise ApiError(
                    400, "InvalidParameter.Parameters", "Parameters must map names to strings."
                )
            if len(parameters) > MAX_PARAMETERS or any(
                not k or len(k) > MAX_PARAMETER_NAME for k in parameters
            ):
                raise ApiError(
                    400, "InvalidParameter.Parameters", "At most 10 parameters, names of 1 to 64 characters."
                )
        else:
            if p.get("Parameters"):
                raise ApiError(
                    400, "InvalidParameter.Parameters", "Parameters needs EnableParameter=true."
                )
            # Without EnableParameter the content runs verbatim: keep every {{name}} as is.
            parameters = {n: "{{" + n + "}}" for n in re.findall(r"\{\{(\w+)\}\}", script)}

        # content + parameters, both base64, against the one 24 KB limit
        content_b64 = base64.b64encode(script.encode("utf-8")).decode("ascii")
        size = command_size(content_b64, parameters if _bool(p, "EnableParameter") else {})
        if size > COMMAND_CONTENT_LIMIT:
            raise ApiError(
                400,
                "InvalidParameter.CommandContent",
                f"The command content and parameters are {size} bytes after Base64 encoding, over 24 KB.",
            )
        token = p.get("ClientToken")
        with self._run_lock:  # one RunCommand at a time, so a repeated ClientToken is seen
            if token and token in self._client_tokens:
                return dict(self._client_tokens[token])
            targets = {
                iid: self.cloud.run_command(region, iid, script, parameters, timeout) for iid in ids
            }
            invoke_id = f"t-{uuid.uuid4().hex[:20]}"
            command_id = f"c-{uuid.uuid4().hex[:20]}"
            with self._lock:
                self._invocations[invoke_id] = _StandInInvocation(
                    invoke_id, command_id, region, targets, _now_iso(), timeout
                )
            body = {"InvokeId": invoke_id, "CommandId": command_id}
            if token:
                self._client_tokens[token] = dict(body)
            return body

    def _do_DescribeInvocationResults(self, p: dict[str, str]) -> dict[str, Any]:
        region = _required(p, "RegionId")
        invoke_id = p.get("InvokeId")
        instance_id = p.get("InstanceId")
        encoding = p.get("ContentEncoding", "Base64")
        with self._lock:
            if invoke_id:
                inv = self._invocations.get(invoke_id)
                if inv is None or inv.region != region:
                    raise ApiError(
                        404,
                        "InvalidInvokeId.NotFound",
                        f"The specified invoke id {invoke_id} does not exist.",
                    )
                chosen = [inv]
            else:
                chosen = [i for i in self._invocations.values() if i.region == region]
        rows = []
        for inv in chosen:
            for iid, sim_id in inv.targets.items():
                if instance_id and iid != instance_id:
                    continue
                result = self.cloud.invocation_result(region, sim_id, iid)
                rows.append(self._result_row(inv, iid, result, encoding))
        page, size = _int(p, "PageNumber", 1), _int(p, "PageSize", 10)
        return {
            "Invocation": {
                "InvocationResults": {"InvocationResult": rows[(page - 1) * size : page * size]},
                "TotalCount": len(rows),
                "PageNumber": page,
                "PageSize": size,
            }
        }

    @staticmethod
    def _result_row(
        inv: _StandInInvocation, instance_id: str, r: InvocationResult, encoding: str
    ) -> dict[str, Any]:
        if encoding.lower() == "plaintext":
            output = r.output.decode("utf-8", "replace")
        else:
            output = base64.b64encode(r.output).decode("ascii")
        finished = r.status not in ("Pending", "Running", "Scheduled", "Stopping")
        row: dict[str, Any] = {
            "InvokeId": inv.invoke_id,
            "CommandId": inv.command_id,
            "InstanceId": instance_id,
            "InvocationStatus": r.status,
            "InvokeRecordStatus": "Finished" if finished else "Running",
            "ErrorCode": r.error_code or "",
            "ErrorInfo": r.error_info or _ERROR_INFO.get(r.error_code or "", ""),
            "Output": output,
            "Dropped": r.dropped,
            "Repeats": 1,
            "Username": "root",
            "StartTime": inv.started,
        }
        if r.exit_code is not None:
            row["ExitCode"] = r.exit_code
        if finished:
            row["FinishedTime"] = _now_iso()
        return row

    def _do_GetInstanceConsoleOutput(self, p: dict[str, str]) -> dict[str, Any]:
        region = _required(p, "RegionId")
        instance_id = _required(p, "InstanceId")
        data = self.cloud.console_output(region, instance_id) or b""
        if _bool(p, "RemoveSymbols"):
            data = _ANSI.sub(b"", data.replace(b"\r\n", b"\n"))
        return {
            "InstanceId": instance_id,
            "ConsoleOutput": base64.b64encode(data).decode("ascii"),
            "LastUpdateTime": _now_iso(),
        }


def _default_message(code: str) -> str:
    if code.startswith("Throttling"):
        return "Request was denied due to user flow control."
    if code.startswith("ServiceUnavailable"):
        return "The request has failed due to a temporary failure of the server."
    if code.startswith("InternalError"):
        return "The request processing has failed due to some unknown error, exception or failure."
    return f"Injected fault {code}."


class _Handler(BaseHTTPRequestHandler):
    standin: EcsStandIn  # set on the subclass made by EcsStandIn.start()
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms stalls
    protocol_version = "HTTP/1.1"  # keep-alive, as the cloud: every reply has a Content-Length

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
        pass

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        path, _, raw_query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        content_type = self.headers.get("Content-Type", "")
        if body and content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = self.headers.get("x-acs-action", "")
        req = Recorded(action, params, self.command, path, raw_query, headers, body)
        answer = self.standin.handle(req)
        if answer is None:
            self._reset()
            return
        status, payload, extra = answer
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-acs-request-id", payload.get("RequestId", ""))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (read timeout)
            self.close_connection = True

    def _reset(self) -> None:
        self.close_connection = True
        try:
            # linger 0: close() sends RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
