"""``EcsApi`` over the official ECS SDK (``alibabacloud-ecs20140526``).

The SDK is imported lazily: importing it costs ~0.5 s and ~70 MB (1,152 model modules
and aiohttp), and only the ``collect`` function should pay that. Importing this module,
and constructing ``SdkEcsApi``, imports neither the SDK nor tenacity.

Every call goes through one retry loop (tenacity: exponential backoff with jitter, a
bounded number of attempts and an overall deadline) that retries only a ``CloudError``
whose ``retryable`` is true: throttling, ``ServiceUnavailable``, ``InternalError``, any
5xx, timeouts and connection errors. The SDK's own retries stay off (it retries only
when ``Config(retry_options=...)`` is set).

``RunCommand`` carries a ``ClientToken`` that stays the same across the retries of one
call, so a retry after a lost reply (read timeout, reset) does not run the guest script
twice: the cloud answers a repeated token with the first invocation.

Credentials never reach an exception message or a log line: SDK errors are rebuilt as
``CloudError`` from the error code and the server's message, scrubbed of the secret and
the security token, and raised with no chained SDK exception (whose ``last_request``
holds the signed headers, including the security token).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from .credentials import CredentialSource
from .ecs import (
    COMMAND_LIMIT,
    OUTPUT_LIMIT,
    CloudError,
    InstanceInfo,
    InvocationResult,
    command_size,
)

log = logging.getLogger(__name__)

API_VERSION = "2014-05-26"
# RunCommand refuses command content plus custom parameters over 24 KB once base64-encoded.
COMMAND_CONTENT_LIMIT = COMMAND_LIMIT

_NOT_FOUND_INSTANCE = frozenset(
    {"InvalidInstanceId.NotFound", "InvalidInstance.NotFound", "InvalidInstanceId.NotExist"}
)
_RETRYABLE_PREFIXES = ("Throttling", "ServiceUnavailable", "InternalError", "ServiceBusy")
_RETRYABLE_CODES = frozenset(
    {"RequestTimeout", "ConnectionError", "InvalidResponse", "UnknownError.Server"}
)


def is_retryable_code(code: str | None, status: int | None = None) -> bool:
    """Throttling*, ServiceUnavailable*, InternalError*, 5xx and 429 are worth another try."""
    if status is not None and (status >= 500 or status == 429):
        return True
    if not code:
        return False
    return code.startswith(_RETRYABLE_PREFIXES) or code in _RETRYABLE_CODES


class SdkEcsApi:
    """The pipeline's ECS calls over ``alibabacloud_ecs20140526.client.Client``.

    Either inject ``client`` (used for every region) or ``client_factory(region)``, or let
    it build one client per region on first use, from the access key (or, when none is
    given, ``ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/SECURITY_TOKEN``, then the SDK's default
    credential chain). ``endpoint`` (e.g. ``"127.0.0.1:8080"``) overrides the regional
    endpoint; a local endpoint needs ``protocol="http"``. Timeouts are in seconds here
    (the SDK wants milliseconds). ``attempts`` and ``deadline`` (seconds, overall, for one
    logical call including its retries) bound the retry loop; ``backoff_initial`` and
    ``backoff_max`` (seconds) shape its exponential backoff.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        security_token: str | None = None,
        endpoint: str | None = None,
        protocol: str = "https",
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        attempts: int = 5,
        deadline: float = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        client_factory: Callable[[str], Any] | None = None,
        console_remove_symbols: bool = False,
        user_agent: str = "ecs-crashdiag",
        credentials: CredentialSource | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._injected = client
        self._factory = client_factory
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._security_token = security_token
        # Read on every signed request (the SDK asks its ``credential`` each time), so a
        # long-lived client follows the STS credentials each invocation hands over.
        self._credentials = credentials
        self.endpoint = endpoint
        self.protocol = protocol
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.attempts = attempts
        self.deadline = deadline
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.console_remove_symbols = console_remove_symbols
        self.user_agent = user_agent
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, credentials: CredentialSource | None = None) -> SdkEcsApi:
        """The client the collect function uses, configured from ``Settings`` (and
        ``credentials``, when given, instead of the settings' keys)."""
        endpoint, protocol = settings.ecs_endpoint or None, "https"
        if endpoint and endpoint.startswith(("http://", "https://")):
            # An explicit scheme: "http://127.0.0.1:8080" for a local stand-in.
            protocol, endpoint = endpoint.split("://", 1)
        return cls(
            access_key_id=settings.access_key_id or None,
            access_key_secret=settings.access_key_secret or None,
            security_token=settings.security_token or None,
            endpoint=endpoint,
            protocol=protocol,
            credentials=credentials,
        )

    def __repr__(self) -> str:  # no credentials, ever
        return f"SdkEcsApi(endpoint={self.endpoint!r}, protocol={self.protocol!r}, regions={sorted(self._clients)!r})"

    # -- clients -------------------------------------------------------------------------

    def _client(self, region: str) -> Any:
        if self._injected is not None:
            return self._injected
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = self._factory(region) if self._factory else self._build_client(region)
                self._clients[region] = client
            return client

    def _build_client(self, region: str) -> Any:
        from alibabacloud_ecs20140526.client import Client
        from alibabacloud_tea_openapi.utils_models import Config

        config = Config(
            region_id=region,
            endpoint=self.endpoint,
            protocol=self.protocol,
            connect_timeout=max(1, int(self.connect_timeout * 1000)),
            read_timeout=max(1, int(self.read_timeout * 1000)),
            user_agent=self.user_agent,
        )
        # Credentials come from Settings (the one place that reads the environment).
        key_id, secret, token = self._access_key_id, self._access_key_secret, self._security_token
        if self._credentials is not None:
            config.credential = _SourceCredential(self._credentials)
        elif key_id and secret:
            config.access_key_id = key_id
            config.access_key_secret = secret
            config.security_token = token or None
        else:
            # The default chain: environment, profile file, ECS RAM role, OIDC, ...
            from alibabacloud_credentials.client import Client as CredentialClient

            config.credential = CredentialClient()
        return Client(config)

    # -- the retry loop ------------------------------------------------------------------

    def _call(self, action: str, fn: Callable[[Any], Any], region: str) -> Any:
        import tenacity

        stop_on_time = getattr(tenacity, "stop_before_delay", tenacity.stop_after_delay)
        # exponential backoff plus up to one initial step of jitter (spelt so that
        # tenacity 8.2 and 9.x both take it), capped at backoff_max
        base_wait = tenacity.wait_exponential(
            multiplier=self.backoff_initial, max=self.backoff_max
        ) + tenacity.wait_random(0, self.backoff_initial)

        def wait(state: tenacity.RetryCallState) -> float:
            delay = min(base_wait(state), self.backoff_max)
            exc = state.outcome.exception() if state.outcome else None
            retry_after = getattr(exc, "retry_after", None)  # seconds, from x-acs-retry-after
            return max(delay, retry_after) if retry_after else delay

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info(
                "ecs %s attempt %d failed (%s), retrying in %.2fs",
                action,
                state.attempt_number,
                getattr(exc, "code", type(exc).__name__),
                state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts) | stop_on_time(self.deadline),
            wait=wait,
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, CloudError) and e.retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._once, action, fn, region)

    def _once(self, action: str, fn: Callable[[Any], Any], region: str) -> Any:
        error: CloudError | None = None
        try:
            client = self._client(region)
            return fn(client)
        except CloudError as exc:
            error = CloudError(exc.code, self._scrub(exc.message), exc.retryable, exc.request_id)
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a CloudError
            error = self._to_cloud_error(action, exc)
        # Raised outside the except block: no __context__ pointing at the SDK exception,
        # whose last_request carries the signed headers.
        raise error

    # -- error mapping -------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        current = self._credentials.secrets() if self._credentials is not None else []
        for secret in (self._access_key_secret, self._security_token, *current):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def _to_cloud_error(self, action: str, exc: BaseException) -> CloudError:
        # darabonba wraps transport errors: UnretryableException(inner_exception=RetryError)
        inner = getattr(exc, "inner_exception", None)
        if inner is not None and _clean(getattr(exc, "code", None)) is None:
            exc = inner
        name = type(exc).__name__
        code = _clean(getattr(exc, "code", None))
        status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
        status = status if isinstance(status, int) else None

        if code is not None or status is not None:  # the server answered with an error
            data = getattr(exc, "data", None)
            message = ""
            if isinstance(data, dict):
                message = str(data.get("Message") or data.get("message") or "")
            if not message:
                message = str(getattr(exc, "message", "") or "")
            request_id = _clean(getattr(exc, "request_id", None))
            if request_id is None and isinstance(data, dict):
                request_id = _clean(data.get("RequestId"))
            code = code or f"HTTP{status}"
            retryable = is_retryable_code(code, status) or name == "ThrottlingException"
            err = CloudError(
                code, self._scrub(f"{action}: {message}".rstrip(": ")), retryable, request_id
            )
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int | float) and retry_after > 0:
                err.retry_after = retry_after / 1000.0  # type: ignore[attr-defined]  # the SDK gives ms
            return err

        text = str(getattr(exc, "message", "") or exc)
        if name in (
            "RetryError",
            "ConnectionError",
            "Timeout",
            "ReadTimeout",
            "ConnectTimeout",
        ) or isinstance(exc, OSError):
            short = _short_transport_message(text)
            if "timed out" in text.lower() or isinstance(exc, TimeoutError):
                return CloudError("RequestTimeout", self._scrub(f"{action}: {short}"), True)
            return CloudError("ConnectionError", self._scrub(f"{action}: {short}"), True)
        if isinstance(exc, ValueError) and name == "JSONDecodeError":
            # a gateway's HTML error page, a truncated body: transient in practice
            return CloudError("InvalidResponse", f"{action}: the reply was not JSON", True)
        return CloudError("SdkError", self._scrub(f"{action}: {name}: {text}"[:500]), False)

    # -- EcsApi --------------------------------------------------------------------------

    def instance_status(self, region: str, instance_id: str) -> str | None:
        def call(client: Any) -> str | None:
            from alibabacloud_ecs20140526 import models

            resp = client.describe_instance_status(
                models.DescribeInstanceStatusRequest(region_id=region, instance_id=[instance_id])
            )
            statuses = (
                getattr(getattr(resp.body, "instance_statuses", None), "instance_status", None)
                or []
            )
            for item in statuses:
                if item.instance_id == instance_id:
                    return item.status
            return None

        try:
            return self._call("DescribeInstanceStatus", call, region)
        except CloudError as exc:
            if exc.code in _NOT_FOUND_INSTANCE:
                return None
            raise

    def instance_info(self, region: str, instance_id: str) -> InstanceInfo | None:
        """DescribeInstances for one id: OSType (``windows`` or ``linux``), name, status."""

        def call(client: Any) -> InstanceInfo | None:
            import json

            from alibabacloud_ecs20140526 import models

            resp = client.describe_instances(
                models.DescribeInstancesRequest(region_id=region, instance_ids=json.dumps([instance_id]))
            )
            found = getattr(getattr(resp.body, "instances", None), "instance", None) or []
            for item in found:
                if item.instance_id == instance_id:
                    return InstanceInfo(
                        instance_id=instance_id,
                        region=item.region_id or region,
                        os_type=item.ostype or "",
                        name=item.instance_name or "",
                        os_name=item.osname or "",
                        status=item.status or "",
                        memory_mib=int(item.memory or 0),
                    )
            return None

        try:
            return self._call("DescribeInstances", call, region)
        except CloudError as exc:
            if exc.code in _NOT_FOUND_INSTANCE:
                return None
            raise

    def cloud_assistant_online(self, region: str, instance_id: str) -> bool:
        def call(client: Any) -> bool:
            from alibabacloud_ecs20140526 import models

            resp = client.describe_cloud_assistant_status(
                models.DescribeCloudAssistantStatusRequest(
                    region_id=region, instance_id=[instance_id]
                )
            )
            found = (
                getattr(
                    resp.body.instance_cloud_assistant_status_set,
                    "instance_cloud_assistant_status",
                    None,
                )
                or []
            )
            for item in found:
                if item.instance_id == instance_id:
                    # a STRING, "true" or "false"
                    return str(item.cloud_assistant_status).strip().lower() == "true"
            return False

        return self._call("DescribeCloudAssistantStatus", call, region)

    def run_command(
        self, region: str, instance_id: str, script: str, parameters: dict[str, str], timeout: int
    ) -> str:
        for key, value in parameters.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("Cloud Assistant parameters must map str to str")
        content = base64.b64encode(script.encode("utf-8")).decode("ascii")
        size = command_size(content, parameters)
        if size > COMMAND_CONTENT_LIMIT:
            raise CloudError(
                "InvalidParameter.CommandContent",
                f"RunCommand: the script and its parameters are {size} bytes in base64, over {COMMAND_CONTENT_LIMIT}",
                False,
            )
        client_token = uuid.uuid4().hex  # the same for every retry of this call

        def call(client: Any) -> str:
            from alibabacloud_ecs20140526 import models

            request = models.RunCommandRequest(
                region_id=region,
                type="RunShellScript",
                command_content=content,
                content_encoding="Base64",
                timeout=int(timeout),
                instance_id=[instance_id],
                name="crashdiag-collect",
                keep_command=False,
                client_token=client_token,
            )
            if parameters:
                request.enable_parameter = True
                request.parameters = dict(parameters)
            resp = client.run_command(request)
            invoke_id = resp.body.invoke_id
            if not invoke_id:
                raise CloudError("InvalidResponse", "RunCommand: no InvokeId in the reply", False)
            return invoke_id

        return self._call("RunCommand", call, region)

    def invocation_result(self, region: str, invoke_id: str, instance_id: str) -> InvocationResult:
        def call(client: Any) -> InvocationResult:
            from alibabacloud_ecs20140526 import models

            resp = client.describe_invocation_results(
                models.DescribeInvocationResultsRequest(
                    region_id=region,
                    invoke_id=invoke_id,
                    instance_id=instance_id,
                    content_encoding="Base64",
                )
            )
            invocation = resp.body.invocation
            results = (
                getattr(getattr(invocation, "invocation_results", None), "invocation_result", None)
                or []
            )
            for item in results:
                if item.instance_id == instance_id and item.invoke_id in (None, invoke_id):
                    return _invocation_result(item)
            # Just after RunCommand the record may not be visible yet: not finished.
            return InvocationResult("Pending", None, None, b"", 0)

        return self._call("DescribeInvocationResults", call, region)

    def console_output(self, region: str, instance_id: str) -> bytes | None:
        def call(client: Any) -> bytes | None:
            from alibabacloud_ecs20140526 import models

            request = models.GetInstanceConsoleOutputRequest(
                region_id=region, instance_id=instance_id
            )
            if self.console_remove_symbols:
                request.remove_symbols = True
            resp = client.get_instance_console_output(request)
            text = resp.body.console_output
            if not text:
                return None
            return _b64decode(text)

        return self._call("GetInstanceConsoleOutput", call, region)


# -- helpers -------------------------------------------------------------------------------


def _clean(value: Any) -> str | None:
    """The SDK formats missing fields as the string 'None' (f'{code}')."""
    if value is None:
        return None
    text = str(value)
    return None if text in ("", "None") else text


def _short_transport_message(text: str) -> str:
    """requests' messages embed the URL (with the whole query, script included): drop it."""
    text = re.sub(r"with url: \S+", "with url: <omitted>", text)
    text = re.sub(r"https?://\S+", "<url>", text)
    return text[:300]


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return text.encode("utf-8", "replace")


def _invocation_result(item: Any) -> InvocationResult:
    exit_code = item.exit_code
    output = _b64decode(item.output) if item.output else b""
    return InvocationResult(
        status=item.invocation_status or "Pending",
        exit_code=int(exit_code) if exit_code is not None else None,
        error_code=item.error_code or None,
        output=output[:OUTPUT_LIMIT] if len(output) > OUTPUT_LIMIT else output,
        dropped=int(item.dropped or 0),
        error_info=str(item.error_info or "")[:500],
    )


class _SourceCredential:
    """The SDK's ``Config.credential``: asked for ``get_credential()`` before every signed
    request (alibabacloud_tea_openapi/client.py), answered from a ``CredentialSource``."""

    def __init__(self, source: CredentialSource) -> None:
        self._source = source

    def get_credential(self) -> Any:
        from alibabacloud_credentials.models import CredentialModel

        c = self._source.get()
        return CredentialModel(access_key_id=c.access_key_id, access_key_secret=c.access_key_secret,
                               security_token=c.security_token or None, type="sts" if c.security_token else "access_key")

    def get_type(self) -> str:
        return "sts" if self._source.get().security_token else "access_key"
