"""The function's cloud credentials, read per invocation and consulted per request.

Function Compute hands a function STS credentials of its service role: in the Python
3.10 runtime as ``context.credentials`` (``access_key_id``, ``access_key_secret``,
``security_token``; valid for 36 hours per the FC 2.0 "Context" page,
https://www.alibabacloud.com/help/doc-detail/422182.htm), and as the
``ALIBABA_CLOUD_*`` environment variables (the only source left in Python 3.12, whose
context has no ``credentials``). An instance can outlive one set, so clients are built
once per instance but take a ``CredentialSource`` that each invocation refreshes and
each request reads: oss2's ``ProviderAuthV4`` and the ECS SDK's ``credential`` both ask
for the current credentials on every signed request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.access_key_id and self.access_key_secret)

    @classmethod
    def of(cls, obj: Any) -> Credentials | None:
        """Credentials from a ``context.credentials``-like object (attributes
        ``access_key_id``, ``access_key_secret``, ``security_token``), a
        ``Credentials``, or None; None when incomplete."""
        if obj is None:
            return None
        if isinstance(obj, Credentials):
            return obj if obj else None
        creds = cls(
            str(getattr(obj, "access_key_id", "") or ""),
            str(getattr(obj, "access_key_secret", "") or ""),
            str(getattr(obj, "security_token", "") or ""),
        )
        return creds if creds else None


class CredentialSource:
    """The current credentials of this instance: ``update`` per invocation, ``get`` per request."""

    def __init__(self, initial: Credentials | None = None) -> None:
        self._lock = threading.Lock()
        self._current = initial or Credentials("", "")

    def update(self, creds: Credentials | None) -> None:
        """Take newer credentials; None (nothing given) keeps what there is."""
        if creds:
            with self._lock:
                self._current = creds

    def get(self) -> Credentials:
        with self._lock:
            return self._current

    def secrets(self) -> list[str]:
        """The values an error message must never carry (the current secret and token)."""
        c = self.get()
        return [v for v in (c.access_key_secret, c.security_token) if v]

    def __repr__(self) -> str:  # the key id only, never the secret or token
        return f"CredentialSource(access_key_id={self.get().access_key_id!r})"


def as_source(value: CredentialSource | Credentials | None) -> CredentialSource:
    """A source for fixed credentials (tests, replay, the report-link key) or the one given."""
    if isinstance(value, CredentialSource):
        return value
    return CredentialSource(value)
