"""Start the next stage: an async Function Compute invocation, or a direct call.

``Fc2Invoker`` uses ``aliyun-fc2`` (the FC 2.0 API, as the product card names it; the
FC 3.0 SDK would post to /2023-03-30/functions/<fn>/invocations instead). FC's async
invocation gives the collect stage retries and an on-failure destination (template.yml).
"""

from __future__ import annotations

from collections.abc import Callable

from .credentials import Credentials, CredentialSource, as_source

# aliyun-fc2 retries by itself (fc2/client.py: urllib3 Retry(total=5, backoff_factor=1) on
# connection errors and 500/502/504): 6 tries of up to timeout (connect) + timeout (read)
# each plus 0+2+4+8+16 s of backoff, about 150 s with a 10 s timeout, past on_ecs_event's
# Timeout. Bounded here to 3 tries and 0+1 s of backoff: see worst_case_seconds.
FC2_RETRIES = 2
FC2_BACKOFF_FACTOR = 0.5
FC2_TIMEOUT = 5


def worst_case_seconds(timeout: float = FC2_TIMEOUT, retries: int = FC2_RETRIES, backoff: float = FC2_BACKOFF_FACTOR) -> float:
    """The longest one invoke_async can take: every try times out on connect and on read,
    with urllib3's backoff between them (no sleep before the first retry, then factor * 2**(n-1))."""
    sleeps = sum(0 if n == 1 else backoff * 2 ** (n - 1) for n in range(1, retries + 1))
    return (retries + 1) * 2 * timeout + sleeps


class InvokeError(Exception):
    """The async invocation could not be queued (the ingest stage reports it and fails)."""


class Fc2Invoker:
    """``credentials`` is read before each invocation: fc2's client holds fixed keys, so
    it is rebuilt (cheaply: no new import) when the instance has been handed newer ones."""

    def __init__(self, endpoint: str, service: str, credentials: CredentialSource | Credentials,
                 timeout: int = FC2_TIMEOUT, client: object | None = None,
                 services: dict[str, str] | None = None) -> None:
        self.endpoint = endpoint
        self.service = service
        self.services: dict[str, str] = dict(services or {})  # a function in another service than ``service``
        self._credentials = as_source(credentials)
        self.timeout = timeout
        self._client = client
        self._injected = client is not None
        self._client_creds: Credentials | None = None

    @property
    def client(self):
        if self._injected:
            return self._client
        creds = self._credentials.get()
        if self._client is None or creds != self._client_creds:
            import fc2
            import fc2.client as fc2_client

            # fc2 reads its retry policy from module globals on every request
            fc2_client.retries, fc2_client.backoff_factor = FC2_RETRIES, FC2_BACKOFF_FACTOR

            self._client = fc2.Client(endpoint=self.endpoint, accessKeyID=creds.access_key_id,
                                      accessKeySecret=creds.access_key_secret, securityToken=creds.security_token,
                                      Timeout=self.timeout)
            self._client_creds = creds
        return self._client

    def invoke_async(self, function: str, payload: bytes) -> None:
        try:
            self.client.invoke_function(self.services.get(function, self.service), function, payload=payload, headers={"x-fc-invocation-type": "Async"})
        except Exception as exc:  # fc2 raises FcError, requests errors, or JSONDecodeError on a non-JSON error body
            code = getattr(exc, "status_code", None) or type(exc).__name__
            raise InvokeError(f"async invocation of {function} failed ({code})") from None


class InlineInvoker:
    """Run the stage in-process (local replay): the function name picks the callable."""

    def __init__(self, targets: dict[str, Callable[[bytes], object]]) -> None:
        self.targets = targets
        self.calls: list[tuple[str, bytes]] = []

    def invoke_async(self, function: str, payload: bytes) -> None:
        self.calls.append((function, payload))
        self.targets[function](payload)
