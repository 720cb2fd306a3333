"""What was sent, recorded in the object store with conditional creates only.

Per incident and channel, under ``<incident>/notify/<channel>/``::

    a001-claim.json     an attempt, claimed with if_absent (OSS x-oss-forbid-overwrite):
                        who, when, until when the claim holds (its lease), direct or digest
    a001-<outcome>.json its outcome: sent | failed | throttled | rejected | deferred
    done.json           the channel's last word for this incident (sent, rejected, gave_up)

Two invocations that race for the same attempt number: one creates the claim, the other
gets ``AlreadyExists`` and stands back. A retried invocation lists the folder: ``done``
means nothing to do; a claim with an outcome, or a claim whose lease ran out with none
(its sender died), means the next attempt number is free. Objects are never rewritten,
so the record of every attempt survives whatever happens after it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cloud.store import AlreadyExists, NotFound, ObjectStore, check_key, retry_transient
from .outcome import FAILED, REJECTED, SENT, Outcome

_ATTEMPT = re.compile(r"a(\d{3})-([a-z_]+)\.json$")
MAX_CLAIMS = 999


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str).encode("utf-8")


class Store:
    """The object store as the notifier uses it: transient failures retried with backoff.

    Objects created with if_absent are never rewritten, so what this process wrote or read
    of them is remembered (a bounded cache) instead of being fetched again.
    """

    CACHE_SIZE = 4096

    def __init__(self, store: ObjectStore, sleep: Callable[[float], None]) -> None:
        self.raw = store
        self.sleep = sleep
        self._immutable: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, key: str, doc: dict) -> None:
        with self._lock:
            self._immutable[key] = doc
            self._immutable.move_to_end(key)
            while len(self._immutable) > self.CACHE_SIZE:
                self._immutable.popitem(last=False)

    def _recall(self, key: str) -> dict | None:
        with self._lock:
            return self._immutable.get(key)

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        return retry_transient(fn, self.sleep)

    def put(self, key: str, obj: Any, *, if_absent: bool = False, content_type: str = "application/json") -> bool:
        """Write; with if_absent, False when the key was taken."""
        data = obj if isinstance(obj, bytes) else _json(obj)
        try:
            self._retrying(lambda: self.raw.put(check_key(key), data, content_type=content_type, if_absent=if_absent))
        except AlreadyExists:
            return False
        if if_absent and isinstance(obj, dict):
            self._remember(key, json.loads(data))
        return True

    def get(self, key: str) -> bytes:
        return self._retrying(lambda: self.raw.get(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """At most ``length`` bytes of ``key`` from ``start`` (ObjectStore.get_range)."""
        return self._retrying(lambda: self.raw.get_range(key, start, length))

    def size(self, key: str) -> int:
        return int(self._retrying(lambda: self.raw.size(key)))

    def get_json(self, key: str, *, immutable: bool = False) -> dict | None:
        """A JSON object, or None when absent or not JSON. ``immutable``: the key is only
        ever created with if_absent, so a remembered copy is as good as a fresh one."""
        if immutable:
            known = self._recall(key)
            if known is not None:
                return known
        try:
            value = json.loads(self.get(key))
        except NotFound:
            return None
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        if immutable:
            self._remember(key, value)
        return value

    def list(self, prefix: str) -> list[str]:
        return self._retrying(lambda: self.raw.list(prefix))

    def url(self, key: str, ttl: int) -> str:
        return self.raw.url(key, ttl)


@dataclass
class View:
    """A channel's ledger for one incident, from one listing."""

    finished: bool = False  # done.json is there
    claims: set[int] = field(default_factory=set)
    results: dict[int, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Nothing more to send: done.json, or an attempt whose outcome settles it (its
        sender may have stopped before writing done.json)."""
        return self.finished or any(r in (SENT, REJECTED) for r in self.results.values())

    @property
    def last(self) -> int:
        return max(self.claims, default=0)

    @property
    def next(self) -> int:
        return self.last + 1

    @property
    def failures(self) -> int:
        return sum(1 for r in self.results.values() if r == FAILED)

    @property
    def attempted(self) -> bool:
        return bool(self.claims)

    @property
    def open_claim(self) -> int | None:
        """The newest claim that has no outcome yet (in flight, or its sender died)."""
        return self.last if self.claims and self.last not in self.results else None


class Ledger:
    def __init__(self, store: Store, prefix: str, channel: str) -> None:
        self.store = store
        self.prefix = prefix
        self.base = f"{prefix}notify/{channel}/"

    def view(self) -> View:
        v = View()
        for key in self.store.list(self.base):
            name = key[len(self.base):]
            if name == "done.json":
                v.finished = True
                continue
            m = _ATTEMPT.match(name)
            if not m:
                continue
            n, what = int(m.group(1)), m.group(2)
            if what == "claim":
                v.claims.add(n)
            else:
                v.results[n] = what
        return v

    def busy(self, v: View, now: float) -> bool:
        """Whether another sender holds a live claim."""
        n = v.open_claim
        if n is None:
            return False
        claim = self.store.get_json(self._key(n, "claim"), immutable=True) or {}
        return float(claim.get("lease_until", 0)) > now

    def claim(self, n: int, *, holder: str, now: float, lease: float, via: str) -> bool:
        """Take attempt ``n``; False when another sender has it."""
        if n > MAX_CLAIMS:
            return False
        return self.store.put(self._key(n, "claim"), {"attempt": n, "holder": holder, "at": now, "lease_until": now + lease, "via": via},
                              if_absent=True)

    def record(self, n: int, outcome: Outcome, *, now: float, via: str, transport: str) -> None:
        self.store.put(self._key(n, outcome.status), {"attempt": n, "at": now, "via": via, "transport": transport, **outcome.to_json()},
                       if_absent=True)

    def finish(self, outcome: str, *, now: float, attempt: int | None, detail: str, via: str = "") -> bool:
        return self.store.put(f"{self.base}done.json", {"outcome": outcome, "at": now, "attempt": attempt, "via": via, "detail": detail},
                              if_absent=True)

    def history(self) -> tuple[dict | None, list[dict]]:
        """done.json (or None) and every attempt: its claim merged with its outcome."""
        done = None
        attempts: dict[int, dict] = {}
        for key in self.store.list(self.base):
            name = key[len(self.base):]
            if name == "done.json":
                done = self.store.get_json(key, immutable=True)
                continue
            m = _ATTEMPT.match(name)
            if not m:
                continue
            n, what = int(m.group(1)), m.group(2)
            rec = self.store.get_json(key, immutable=True) or {}
            entry = attempts.setdefault(n, {"attempt": n})
            if what == "claim":
                entry.update({"claimed_at": rec.get("at"), "holder": rec.get("holder"), "via": rec.get("via"),
                              "lease_until": rec.get("lease_until")})
            else:
                entry.update({k: v for k, v in rec.items() if k not in ("attempt",)})
                entry["outcome"] = what
        ordered = [attempts[n] for n in sorted(attempts)]
        if done is None:  # a settled attempt whose sender stopped before done.json
            settled = [a for a in ordered if a.get("outcome") in (SENT, REJECTED)]
            if settled:
                done = {"outcome": settled[0]["outcome"], "at": settled[0].get("at"), "attempt": settled[0]["attempt"],
                        "via": settled[0].get("via"), "detail": settled[0].get("detail")}
        return done, ordered

    def _key(self, n: int, what: str) -> str:
        return f"{self.base}a{n:03d}-{what}.json"
