"""The pipeline stages, free of Function Compute: ingest → collect → diagnose → notify.

Each stage is a method of ``Pipeline``, which is given its store, ECS API and
invoker (so tests and replay inject stand-ins, and handlers build the real ones once
per instance). Every stage is safe to die at any point and to run again (docs/PIPELINE.md,
"Crash safety"):

- a stage takes a *claim* before working (``claims/<stage>/<nnn>.json``, a conditional
  create carrying the owner's invocation id, a token and a lease). A reply lost after the
  create landed is settled by reading the claim back; a live claim of someone else makes
  the invocation fail (FC retries it later); an expired one is taken over with the next
  number, and the number of claims bounds the attempts;
- content is written first and the object that triggers the next stage or marks the
  stage done last, so a retry finds either nothing done or the stage complete;
- ``open/<region>/<instance>/<incident>.json`` marks an incident not yet finished; the
  reconciler (``reconcile.py``) lists only that prefix and drives late incidents on.

Every incident ends with a ``report.json`` (a diagnosis, or a failure that says why) and
a ``state/40-notified.json`` once every channel has had its last word.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..cloud.ecs import CloudError, EcsApi
from ..cloud.store import (
    AlreadyExists,
    NotFound,
    ObjectStore,
    StoreError,
    check_key,
    check_prefix,
    retry_transient,
)
from ..settings import Settings
from .events import Accepted, CrashEvent, Rejected, Skipped, parse_events
from .wording import say

log = logging.getLogger("crashdiag.pipeline")

STATES = {"received": "00", "collecting": "10", "waiting": "15", "collected": "20", "diagnosed": "30", "notified": "40", "failed": "90"}
# An upload over LOG_MAX_BYTES is kept as its head (this much at most: the boot's first
# lines, ``Linux version`` and ``Command line``, sit in its first kilobytes) and its tail,
# each cut at a line end looked for within UPLOAD_LINE_PROBE bytes.
UPLOAD_HEAD_BYTES = 1024 * 1024
UPLOAD_LINE_PROBE = 64 * 1024
TERMINAL = "notified"  # told (or every channel gave its last word): nothing more will happen
OPEN = "open/"


class Invoker(Protocol):
    def invoke_async(self, function: str, payload: bytes) -> None: ...


class ClaimHeld(Exception):
    """Another invocation holds a live claim on this stage: this one fails, so that FC
    retries it later (a silent success would end FC's retries with nothing done)."""


class AttemptsExhausted(Exception):
    """The stage was claimed as often as it may be; the incident ends as a failure."""

    def __init__(self, stage: str, attempts: int) -> None:
        super().__init__(f"{stage} was attempted {attempts} times without finishing")
        self.stage, self.attempts = stage, attempts


@dataclass(frozen=True)
class Claim:
    stage: str
    number: int
    owner: str
    lease_until: float


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False, default=str).encode("utf-8")


def new_owner() -> str:
    """An owner id for a call made outside Function Compute (replay, tests)."""
    return f"local-{uuid.uuid4().hex[:16]}"


def open_key(prefix: str) -> str:
    """incidents/<region>/<instance>/<incident>/ -> open/<region>/<instance>/<incident>.json"""
    return check_key(OPEN + prefix.removeprefix("incidents/").rstrip("/") + ".json")


@dataclass
class IngestSummary:
    accepted: list[str] = field(default_factory=list)  # incident prefixes created
    duplicates: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # claimed earlier, collect (re)started now

    def to_json(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "skipped": self.skipped, "rejected": self.rejected,
                "resumed": self.resumed}


class Pipeline:
    def __init__(
        self,
        store: ObjectStore,
        ecs: EcsApi | None,
        invoker: Invoker | None,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        notifier: Any = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ecs = ecs
        self.invoker = invoker
        self.settings = settings
        self.clock = clock  # waits inside collect
        self.sleep = sleep
        self.wall = wall  # leases, deadlines: epoch seconds
        self.notifier = notifier  # crashdiag.notify.Notifier; built from settings on first use

    # --- store helpers -----------------------------------------------------------------

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        """Store calls retry transient failures (5xx, timeouts) with backoff and jitter."""
        return retry_transient(fn, self.sleep)

    def _put(self, key: str, data: bytes | BinaryIO, content_type: str = "application/json", if_absent: bool = False) -> bool:
        """Write an object (bytes, or a seekable binary file from where it stands); with
        if_absent, return False when it already existed."""
        at = None if isinstance(data, bytes | bytearray) else data.tell()

        def once() -> None:
            if at is not None:
                data.seek(at)  # a retried write sends the file again from its start
            self.store.put(key, data, content_type=content_type, if_absent=if_absent)

        try:
            self._retrying(once)
            return True
        except AlreadyExists:
            return False

    def _create_owned(self, key: str, doc: dict) -> tuple[bool, dict]:
        """Create ``key`` once. (True, doc) when it is ours: created now, or created by this
        very call whose reply was lost (the retry's 409 is settled by reading the token back)."""
        try:
            self._retrying(lambda: self.store.put(key, _json(doc), content_type="application/json", if_absent=True))
            return True, doc
        except AlreadyExists:
            theirs = self._get_json(key) or {}
            return theirs.get("token") == doc.get("token"), theirs

    def _get(self, key: str) -> bytes:
        return self._retrying(lambda: self.store.get(key))

    def _get_json(self, key: str) -> dict | None:
        try:
            value = json.loads(self._get(key))
        except NotFound:
            return None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _exists(self, key: str) -> bool:
        return bool(self._retrying(lambda: self.store.exists(key)))

    def _delete(self, key: str) -> None:
        self._retrying(lambda: self.store.delete(key))

    def set_state(self, prefix: str, state: str, **detail: Any) -> bool:
        """Append a state to the incident's state machine; False if it was already there."""
        key = f"{prefix}state/{STATES[state]}-{state}.json"
        return self._put(key, _json({"state": state, "at": _now(), "t": self.wall(), **detail}), if_absent=True)

    def states(self, prefix: str) -> list[str]:
        keys = self._retrying(lambda: self.store.list(f"{prefix}state/"))
        return [k.rsplit("/", 1)[1].split("-", 1)[1].removesuffix(".json") for k in keys]

    # --- claims with an owner and a lease -----------------------------------------------

    def claims(self, prefix: str, stage: str) -> list[tuple[int, dict]]:
        """Every claim taken on a stage, oldest first."""
        base = f"{prefix}claims/{stage}/"
        out = []
        for key in self._retrying(lambda: self.store.list(base)):
            name = key[len(base):].removesuffix(".json")
            if name.isdigit():
                out.append((int(name), self._get_json(key) or {}))
        return sorted(out, key=lambda c: c[0])

    def claim(self, prefix: str, stage: str, owner: str, lease: float, max_attempts: int) -> Claim:
        """Take the stage for ``owner`` (an FC request id). Raises ClaimHeld while another
        owner's lease is live, AttemptsExhausted once ``max_attempts`` claims were taken.
        A claim of the same owner whose lease is live is a retry of that owner's attempt
        (FC retries an async invocation under its request id only after it ended): taken over."""
        now = self.wall()
        taken = self.claims(prefix, stage)
        n = 1
        if taken:
            last_n, last = taken[-1]
            if last.get("owner") != owner and float(last.get("lease_until", 0)) > now:
                raise ClaimHeld(f"{stage} of {prefix} is held by {last.get('owner')} until {last.get('lease_until')}")
            n = last_n + 1
        died = sum(1 for _, c in taken if not c.get("released"))
        if died + 1 > max_attempts:
            raise AttemptsExhausted(stage, died)
        doc = {"stage": stage, "attempt": n, "owner": owner, "token": uuid.uuid4().hex, "at": now, "lease_until": now + lease}
        ours, theirs = self._create_owned(f"{prefix}claims/{stage}/{n:03d}.json", doc)
        if not ours:  # a racing invocation took this number a moment ago: its lease is live
            raise ClaimHeld(f"{stage} of {prefix} was just claimed by {theirs.get('owner')}")
        return Claim(stage, n, owner, doc["lease_until"])

    def release(self, prefix: str, claim: Claim) -> None:
        """End ``claim`` on purpose (collect waiting for its guest): its lease is over and it
        does not count against STAGE_MAX_ATTEMPTS."""
        key = f"{prefix}claims/{claim.stage}/{claim.number:03d}.json"
        doc = self._get_json(key) or {}
        if doc.get("owner") == claim.owner:
            doc.update({"released": True, "lease_until": self.wall()})
            self._put(key, _json(doc))

    # --- the index of open incidents (read by the reconciler) ---------------------------

    def open_marker(self, prefix: str) -> dict | None:
        return self._get_json(open_key(prefix))

    def come_back_at(self, prefix: str, when: float, why: str, **extra: Any) -> None:
        """Ask the reconciler to look at the incident again at ``when`` (epoch seconds) and
        not before: a stage that waits (for a guest, a lease) says so here."""
        marker = self.open_marker(prefix) or {"prefix": prefix}
        marker.update(extra)
        marker.update({"next_check": when, "why": why})
        self._put(open_key(prefix), _json(marker))

    def close(self, prefix: str) -> None:
        """The incident is finished: drop it from the reconciler's index."""
        try:
            self._delete(open_key(prefix))
        except NotFound:
            pass

    # --- stage 1: ingest -----------------------------------------------------------------

    def ingest(self, payload: bytes | str | dict | list, owner: str | None = None) -> IngestSummary:
        """Every event of a delivery, each on its own: one event's failure (a bad id, a
        store or FC error) is recorded for that event and the others go on. A transient
        failure is raised at the end, after the others, so that EventBridge redelivers."""
        owner = owner or new_owner()
        summary = IngestSummary()
        transient: list[Exception] = []
        for outcome in parse_events(payload):
            try:
                if isinstance(outcome, Accepted):
                    self._accept(outcome.event, summary, owner)
                elif isinstance(outcome, Skipped):
                    log.info("skipped event: %s", outcome.reason)
                    summary.skipped.append({"reason": outcome.reason, "code": outcome.code, "status": outcome.status})
                else:
                    self._reject(outcome, summary)
            except Exception as exc:  # noqa: BLE001 - any failure of one event is that event's alone
                self._event_failed(outcome, exc, summary)
                if _transient(exc):
                    transient.append(exc)
        if transient:
            raise transient[0]
        return summary

    def _accept(self, ev: CrashEvent, summary: IngestSummary, owner: str) -> None:
        """Order: the delivery's record, the open marker, the incident claim (event.json),
        the async invoke of collect, and last ``state/00-received``, which says collect was
        started. A delivery that finds event.json but no ``received`` starts collect again;
        so does the reconciler, for an incident whose deliveries all stopped before it."""
        prefix = check_prefix(ev.prefix)
        record = self._private({"event": ev.to_json(), "received_at": _now()})
        self._put(f"{prefix}events/{ev.status}.json", _json(record), if_absent=True)
        record = {**record, "owner": owner, "token": uuid.uuid4().hex}
        self._put(open_key(prefix), _json({"prefix": prefix, "record": record, "next_check": self.wall() + self.settings.ingest_deadline,
                                           "why": "collect not yet started"}), if_absent=True)
        ours, _ = self._create_owned(f"{prefix}event.json", record)
        if not ours:
            if self.states(prefix):  # received or later: collect was started
                log.info("duplicate delivery of incident %s (%s)", ev.incident_id, ev.status)
                summary.duplicates.append(prefix)
                return
            log.info("incident %s was claimed but collect never confirmed started: starting it", ev.incident_id)
        self.start_collect(prefix, ev.to_json())
        (summary.accepted if ours else summary.resumed).append(prefix)

    def start_collect(self, prefix: str, ev: dict) -> None:
        """Invoke collect (async), then record that it was started."""
        ref = {"region": ev["region"], "instance_id": ev["instance_id"], "incident_id": ev["incident_id"]}
        if self.invoker is not None:
            self.invoker.invoke_async(self.settings.fc_collect_function, json.dumps(ref).encode())
        self.set_state(prefix, "received", code=ev.get("code"), status=ev.get("status"), host_failure=ev.get("host_failure"))

    def _reject(self, r: Rejected, summary: IngestSummary) -> None:
        self._record_failure(r.reason, r.excerpt, summary)

    def _event_failed(self, outcome: Any, exc: Exception, summary: IngestSummary) -> None:
        what = type(exc).__name__
        reason = f"the event could not be processed ({what}: {str(exc)[:200]})"
        ev = getattr(outcome, "event", None)
        excerpt = json.dumps(ev.to_json() if ev is not None else repr(outcome)[:2000], ensure_ascii=True, default=str)[:2000]
        log.error("event failed: %s", reason)
        try:
            self._record_failure(reason, excerpt, summary)
        except Exception:  # noqa: BLE001 - the store is down too: the raise at the end makes EventBridge redeliver
            summary.rejected.append({"reason": reason, "record": None})

    def _record_failure(self, reason: str, excerpt: str, summary: IngestSummary) -> None:
        digest = hashlib.sha256(excerpt.encode("utf-8", "replace")).hexdigest()[:20]
        key = f"failures/{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}/{digest}.json"
        doc = json.dumps({"reason": reason, "at": _now(), "excerpt": excerpt}, ensure_ascii=True, indent=2).encode()
        self._put(key, doc, if_absent=True)
        log.warning("rejected event: %s (recorded as %s)", reason, key)
        summary.rejected.append({"reason": reason, "record": key})

    # --- stage 2: collect -----------------------------------------------------------------

    def collect(self, ref: dict | bytes | str, owner: str | None = None) -> dict:
        """Fetch the crash log of one incident. Returns collect.json's content.

        Write order: collect.json (content), then crash.log (created once: its OSS trigger
        starts diagnose), then ``state/20-collected`` (done). On failure: collect.json, the
        failure report (report.md/html, then report.json, whose trigger starts notify),
        then ``state/90-failed``."""
        if not isinstance(ref, dict):
            ref = json.loads(ref)
        owner = owner or new_owner()
        prefix = self._prefix_from_ref(ref)
        done = self._collected(prefix)
        if done is not None:
            return done  # a retried invocation: the work is done
        record = self._get_json(f"{prefix}event.json")
        if record is None:
            raise ValueError(f"no incident at {prefix}")
        ev = record["event"]
        try:
            claim = self.claim(prefix, "collect", owner, self.settings.collect_lease_seconds, self.settings.stage_max_attempts)
        except AttemptsExhausted as e:
            lang = self.settings.lang
            return self.fail(prefix, say(lang, "collect_died", attempts=e.attempts), say(lang, "collect_died_advice"),
                             stage="collect")
        self.set_state(prefix, "collecting", owner=owner, attempt=claim.number)
        from .collect import Collector

        def upload(ttl: int, public: bool = False) -> str | None:
            if public:  # for an instance in another region (collect says why it needs one)
                put_public = getattr(self.store, "put_url_public", None)
                return put_public(f"{prefix}guest-upload.log", ttl) if put_public else None
            return self.store.put_url(f"{prefix}guest-upload.log", ttl)

        wait = self._guest_wait(prefix, ev)
        result = Collector(self.ecs, self.settings, self.clock, self.sleep, wait=wait).collect(
            ev["region"], ev["instance_id"], _since(ev), upload=upload, boot_after=_epoch(ev.get("execute_start_time"))
        )
        name = (result.get("instance") or {}).pop("name", None)  # from DescribeInstances; kept once, below
        if name and not ev.get("instance_name"):
            ev = {**ev, "instance_name": str(name)[:128]}
        if result.get("waiting"):
            return self._wait_for_guest(prefix, ev, result, claim)
        if wait.previous:  # provenance: how long we waited and what the console last showed
            prev = wait.previous
            result["waited"] = {"checks": prev.get("checks"), "since": prev.get("first_seen"), "until": wait.now,
                                "minutes": int((wait.now - float(prev.get("first_seen", wait.now))) // 60),
                                "last_seen": prev.get("reason"), "capture": prev.get("capture")}
            result["notes"].append(say(self.settings.lang, "waited", minutes=result["waited"]["minutes"],
                                       checks=prev.get("checks"), seen=prev.get("reason")))
        log_bytes = result.pop("_log", None)
        upload = None
        if result.get("log", {}).get("uploaded") == "yes":
            try:
                upload = self.read_upload(prefix, result)
            except NotFound:
                result["notes"].append(say(self.settings.lang, "upload_missing"))
        result["incident"] = ev
        result["collected_at"] = _now()
        result = self._private(result, record.get("redaction"))
        if not log_bytes and upload is None:
            return self.fail(prefix, result["failure"]["reason"], result["failure"]["advice"], stage="collect", collect=result)
        # content first; crash.log (its creation triggers diagnosis) after; the state last.
        self._put(f"{prefix}collect.json", _json(result))
        if isinstance(log_bytes, str):
            log_bytes = log_bytes.encode("utf-8", "replace")
        with upload or contextlib.nullcontext():
            self._put(f"{prefix}crash.log", upload or log_bytes, content_type="text/plain; charset=utf-8", if_absent=True)
        self.set_state(prefix, "collected", method=result["method"], complete=result["complete"])
        return result

    def read_upload(self, prefix: str, result: dict) -> BinaryIO | None:
        """The guest's upload as a temporary file to store as crash.log, its size looked at
        before any of it is read (a hostile guest can PUT any size to its URL). Up to
        LOG_MAX_BYTES it is copied whole; past that only its head (boot context: ``Linux
        version``, ``Command line``) and its tail (where a crash is) are read, by ranged reads,
        with a marker line between, and a note says so. Memory stays at one READ_CHUNK
        whatever the size. None (and a note) when the upload is empty: the excerpt serves.
        Records ``log.via``, ``log.uploaded_bytes`` and ``log.kept_bytes`` in ``result``."""
        key = f"{prefix}guest-upload.log"
        size = int(self._retrying(lambda: self.store.size(key)))
        meta = result.setdefault("log", {})
        meta["uploaded_bytes"] = size
        if size == 0:
            result["notes"].append(say(self.settings.lang, "upload_empty"))
            return None
        cap = self.settings.log_max_bytes
        out = tempfile.TemporaryFile(prefix="crashdiag-upload-")  # noqa: SIM115 - the caller closes it
        try:
            if size <= cap:
                kept = self._copy_window(key, out, 0, cap)
            else:
                kept = self._head_and_tail(key, out, size, cap, result)
        except BaseException:
            out.close()
            raise
        meta["via"] = "upload"
        meta["kept_bytes"] = kept
        out.seek(0)
        return out

    def _copy_window(self, key: str, out: BinaryIO, start: int, length: int) -> int:
        """Append ``length`` bytes (at most) of ``key`` from ``start`` to ``out``; a retried read
        starts again where this window began."""
        at = out.tell()

        def once() -> int:
            out.seek(at)
            out.truncate()
            return self.store.get_to_file(key, out, max_bytes=length, start=start)

        return int(self._retrying(once))

    def _head_and_tail(self, key: str, out: BinaryIO, size: int, cap: int, result: dict, *,
                       setting: str = "LOG_MAX_BYTES", whose: str = "the guest's upload",
                       lead: str = "lead_upload") -> int:
        """An oversized object's first lines and its last, cut at line ends, ``cap`` bytes in
        all with a marker line between them, appended to ``out``; ``result`` (collect.json)
        records the windows and a note."""
        probe = min(UPLOAD_LINE_PROBE, cap // 8)
        head_n = min(UPLOAD_HEAD_BYTES, cap // 4)
        # the head ends at its last newline, the tail begins after its first one (looked for
        # within ``probe`` bytes; a log without line ends there is cut where it is)
        tail_edge = self._retrying(lambda: self.store.get_range(key, max(0, head_n - probe), probe))
        nl = tail_edge.rfind(b"\n")
        if nl >= 0:
            head_n = max(0, head_n - probe) + nl + 1
        marker_room = 200
        tail_start = size - (cap - head_n - marker_room)
        head_edge = self._retrying(lambda: self.store.get_range(key, tail_start, probe))
        nl = head_edge.find(b"\n")
        if 0 <= nl < len(head_edge) - 1:
            tail_start += nl + 1
        tail_n = size - tail_start
        head = self._copy_window(key, out, 0, head_n)
        left_out = tail_start - head
        marker = (f"[crashdiag: {left_out} bytes of {whose} left out here: it was {size} bytes, over "
                  f"{setting}={cap}]\n").encode()
        if head:
            out.seek(-1, 1)
            if out.read(1) != b"\n":
                marker = b"\n" + marker  # the marker stands on a line of its own
        out.write(marker)
        tail = self._copy_window(key, out, tail_start, tail_n)
        result["complete"] = False
        result.setdefault("log", {})["kept"] = {"head": head, "tail": tail, "left_out": left_out}
        lang = self.settings.lang
        result.setdefault("notes", []).append(say(
            lang, "kept_head_tail", lead=say(lang, lead), size=_mib(size), setting=setting, cap=_mib(cap), head=_mib(head),
            tail=_mib(tail), left=_mib(left_out)))
        return head + len(marker) + tail

    # --- waiting for a guest that is saving a kdump capture (docs/PIPELINE.md) -------------

    def _guest_wait(self, prefix: str, ev: dict):
        """How long this incident may still wait for its guest: GUEST_WAIT_MINUTES after the
        crash (the event's executeStartTime, else when the first wait began)."""
        from .collect import GuestWait

        now = self.wall()
        previous = self._get_json(f"{prefix}waiting.json")
        start = _epoch(ev.get("execute_start_time")) or _epoch(ev.get("publish_time"))
        if previous and not start:
            start = float(previous.get("first_seen", now))
        if not start or start > now:
            start = now
        return GuestWait(now=now, deadline=start + 60 * self.settings.guest_wait_minutes,
                         stall_seconds=60 * self.settings.capture_stall_minutes, previous=previous)

    def _wait_for_guest(self, prefix: str, ev: dict, result: dict, claim: Claim) -> dict:
        """Record what the guest looks like now and end the invocation: the reconciler comes
        back (with backoff, never past the deadline) and collect runs again. Write order:
        waiting.json (what was seen), state/15-waiting once, the claim released (a wait is
        not a failed attempt), then the open marker's next check."""
        w = dict(result["waiting"])
        w.update({"instance_id": ev["instance_id"], "region": ev["region"], "attempts": result.get("attempts", []),
                  "notes": result.get("notes", [])})
        self._put(f"{prefix}waiting.json", _json(w))
        self.set_state(prefix, "waiting", reason=w["reason"], memory_gib=w.get("memory_gib"))
        self.release(prefix, claim)
        delay = min(60.0 * 2 ** (int(w["checks"]) - 1), 600.0)
        self.come_back_at(prefix, min(self.wall() + delay, float(w["deadline"]) + 1), f"waiting for the guest: {w['reason']}")
        if self.settings.early_notice:
            # Collect holds RunCommand and reads guest text: it sends nothing itself. early.json
            # (created once) triggers the notify function, which tells people once per channel.
            incident = {**ev, "event_time": ev.get("execute_start_time") or ev.get("publish_time")}
            self._put(f"{prefix}early.json", _json({"incident": incident, "waiting": w}), if_absent=True)
        log.info("%s waits for its guest: %s (check %d)", prefix, w["reason"], w["checks"])
        return {"waiting": w, "incident": ev}

    def _private(self, record: dict, previous: dict | None = None) -> dict:
        """What a stage stores besides crash.log: command-line secrets masked always; with
        CRASHDIAG_REDACT, IPs, host names (kept as salted digests in its ``redaction``
        record, for the stages after it) and the command line hidden (SECURITY.md)."""
        from ..reports.redact import mask_report, redact_record

        if self.settings.redact:
            return redact_record(record, previous=previous)
        return mask_report(record)

    def _collected(self, prefix: str) -> dict | None:
        """collect.json when collection already ended (marker, or its last object written)."""
        states = set(self.states(prefix))
        if not states & {"collected", "failed"}:
            if self._exists(f"{prefix}crash.log"):
                self.set_state(prefix, "collected")  # died after crash.log, before the state
            elif self._exists(f"{prefix}report.json"):
                self.set_state(prefix, "failed", reason="see report.json")  # died after the failure report
            else:
                return None
        return self._get_json(f"{prefix}collect.json") or {"method": None, "complete": False, "note": "no collect.json"}

    def fail(self, prefix: str, reason: str, advice: str, *, stage: str, collect: dict | None = None) -> dict:
        """End an incident as a failure that says why: the failure report (notified like any
        report), then ``state/90-failed``. Returns the collect record it was built from."""
        from ..reports.report import build_failure_report

        if collect is None:
            collect = self._get_json(f"{prefix}collect.json")
            if collect is None:
                record = self._get_json(f"{prefix}event.json") or {}
                ev = record.get("event") or {}
                collect = {"instance_id": ev.get("instance_id"), "region": ev.get("region"), "method": None, "complete": False,
                           "log": {}, "context": {}, "notes": [], "attempts": [], "incident": ev}
                if record.get("redaction"):
                    collect["redaction"] = record["redaction"]
        collect = dict(collect)
        collect["failure"] = {"reason": reason, "advice": advice, "stage": stage}
        if stage == "collect":
            self._put(f"{prefix}collect.json", _json(collect))
        self._write_report(prefix, build_failure_report(collect, self.settings.lang), None, collect.get("redaction"))
        self.set_state(prefix, "failed", reason=reason, advice=advice, stage=stage)
        return collect

    def _write_report(self, prefix: str, report: dict, raw_log: bytes | str | None, redaction: dict | None = None) -> bool:
        """report.md and report.html first, then report.json, which the notify stage
        listens to: written last, once (False when another invocation wrote it first).
        Everything written here (and so every notification built from it) goes through
        _private; the raw-log section of report.html too."""
        from ..reports.html_report import RawView, render_html
        from ..reports.redact import mask_secrets, redact_text, sealed_from
        from ..reports.report import render_markdown

        evidence = [str(e) for e in (report.get("diagnosis") or {}).get("evidence") or []]
        inc = report.get("incident") or {}
        if inc and not inc.get("account") and self.settings.account_id:
            inc["account"] = self.settings.account_id  # the stack's account: one bucket may hold many
        if "readiness" not in report and inc.get("instance_id") and inc.get("region"):
            from ..reports.readiness import last_audit

            report["readiness"] = last_audit(self.store, inc["region"], inc["instance_id"])  # None: never audited
        report = self._private(report, redaction)
        view = None
        if raw_log:
            # Only the parts of the log the page shows are read whole and redacted.
            sealed = sealed_from(report.get("redaction"))
            scrub = (lambda line: redact_text(line, (), sealed)) if self.settings.redact else mask_secrets
            view = RawView.of(raw_log, evidence)
            view = view.scrubbed(scrub) if view is not None else None
        lang = self.settings.lang
        self._put(f"{prefix}report.md", render_markdown(report, lang).encode("utf-8"), content_type="text/markdown; charset=utf-8")
        self._put(f"{prefix}report.html", render_html(report, lang, view).encode("utf-8"), content_type="text/html; charset=utf-8")
        return self._put(f"{prefix}report.json", _json(report), if_absent=True)

    def _prefix_from_ref(self, ref: dict) -> str:
        from .events import EVENT_ID, INSTANCE_ID, REGION

        region, inst, inc = ref.get("region", ""), ref.get("instance_id", ""), ref.get("incident_id", "")
        if not (REGION.match(str(region)) and INSTANCE_ID.match(str(inst)) and EVENT_ID.match(str(inc))):
            raise ValueError("collect needs a valid region, instance_id and incident_id")
        return check_prefix(f"incidents/{region}/{inst}/{inc}/")

    # --- stage 3: diagnose ----------------------------------------------------------------

    def diagnose(self, log_key: str, owner: str | None = None) -> dict:
        """Classify one crash log object and write the report beside it. An incident's
        diagnosis is claimed like collect; after STAGE_MAX_ATTEMPTS claims that never
        finished (a log that kills the function), the incident ends in a failure report."""

        check_key(log_key)
        owner = owner or new_owner()
        incident = log_key.startswith("incidents/") and log_key.endswith("/crash.log")
        if incident:
            prefix = log_key[: -len("crash.log")]
        elif log_key.startswith("inbox/"):
            prefix = f"reports/{log_key}/"
        else:
            raise ValueError(f"{log_key} is neither an incident crash.log nor under inbox/")
        existing = self._get_json(f"{prefix}report.json")
        if existing is not None:
            if incident:
                self._mark_reported(prefix, existing)
            return existing
        if incident:
            collect = self._get_json(f"{prefix}collect.json") or {}
            try:
                self.claim(prefix, "diagnose", owner, self.settings.diagnose_lease_seconds, self.settings.stage_max_attempts)
            except AttemptsExhausted as e:
                return self.diagnosis_did_not_finish(prefix, e.attempts)
        else:
            collect = {"method": "inbox", "complete": True, "log": {"path": log_key}, "context": {}}
        with tempfile.TemporaryDirectory(prefix="crashdiag-diagnose-") as tmp:
            report = self._diagnose_log(log_key, collect, Path(tmp) / "crash.log")
            self._write_report(prefix, report, report.pop("_raw"), collect.get("redaction"))
        if incident:
            self.set_state(prefix, "diagnosed", kind=report["diagnosis"]["kind"], rule=(report["diagnosis"]["rule"] or {}).get("id"))
        return report

    def _diagnose_log(self, log_key: str, collect: dict, path: Path) -> dict:
        """The report of the log at ``log_key``, which is streamed to ``path`` (never held
        whole: it costs a READ_CHUNK of memory and its size on disk; past DIAGNOSE_MAX_BYTES
        only its head and tail, as collect keeps an oversized upload) and classified from
        there. A small log is read back and handled as bytes, as the page shows a small log
        whole. The report's ``excerpt`` says where notify's excerpt lies in the log object,
        so notify reads only that window; ``_raw`` is what the page's raw view is built
        from (bytes or the path)."""
        from ..notify.content import excerpt_range
        from ..reports.html_report import WHOLE_BELOW
        from ..reports.report import build_report

        total = int(self._retrying(lambda: self.store.size(log_key)))
        cap = self.settings.diagnose_max_bytes
        with path.open("w+b") as out:  # read too: the head's last byte is looked at
            if total > cap:  # an inbox/ log bigger than the temporary disk should hold
                collect = {**collect, "notes": list(collect.get("notes") or []), "log": dict(collect.get("log") or {})}
                size = self._head_and_tail(log_key, out, total, cap, collect, setting="DIAGNOSE_MAX_BYTES",
                                           whose="the log", lead="lead_log")
            else:
                size = self._copy_window(log_key, out, 0, cap)
        budget = self.settings.classify_budget_seconds
        lang = self.settings.lang
        raw: bytes | str
        if size < WHOLE_BELOW:
            raw = path.read_bytes()
            report = build_report(raw, collect, lang, source=log_key, budget_s=budget)
        else:
            raw = str(path)
            report = build_report(b"", collect, lang, source=log_key, budget_s=budget, path=raw)
            if report.get("input_error"):
                report["input_error"] = str(report["input_error"]).replace(raw, log_key)
        with path.open("rb") as fh:
            if fh.read(2) != b"\x1f\x8b":  # a gzip log: notify sends the evidence lines instead
                start, end = excerpt_range(fh, size, report)
                kept = (collect.get("log") or {}).get("kept") if total > cap else None
                if kept:  # offsets in the windows -> in the object; an excerpt across the marker is dropped
                    head, left_out = int(kept["head"]), int(kept["left_out"])
                    marker = size - head - int(kept["tail"])
                    if start >= head + marker:
                        start, end = start - marker + left_out, end - marker + left_out
                    elif end > head:
                        start = end = -1
                if start >= 0:
                    report["excerpt"] = {"offset": start, "length": end - start}
        report["_raw"] = raw
        return report

    def diagnosis_did_not_finish(self, prefix: str, attempts: int) -> dict:
        lang = self.settings.lang
        self.fail(prefix, say(lang, "diagnose_died", attempts=attempts), say(lang, "diagnose_died_advice"), stage="diagnose")
        return self._get_json(f"{prefix}report.json") or {}

    def _mark_reported(self, prefix: str, report: dict) -> None:
        """A retry that finds report.json: make sure the state that follows it is there."""
        if report.get("failure"):
            self.set_state(prefix, "failed", reason=report["failure"].get("reason"), advice=report["failure"].get("advice"))
        else:
            self.set_state(prefix, "diagnosed", kind=(report.get("diagnosis") or {}).get("kind"))

    # --- stage 4: notify (crashdiag.notify; docs/NOTIFY.md) -------------------------------

    def _notifier(self):
        if self.notifier is None:
            from ..notify import build_notifier

            self.notifier = build_notifier(self.settings, self.store, outbox_dir=self.settings.outbox_dir)
        return self.notifier

    def notify(self, report_key: str) -> dict:
        """Tell people about one new report.json (DingTalk, email); returns notify.json.
        An incident's early.json (collect waits for a kdump capture) is the early notice."""
        if report_key.endswith("/early.json"):
            return self.notify_early(report_key)
        return self._mark_notified(self._notifier().notify_report(report_key))

    def notify_early(self, early_key: str) -> dict:
        """"crashed, waiting for the dump", once per channel; the incident stays open."""
        check_key(early_key)
        if not (early_key.startswith("incidents/") and early_key.endswith("/early.json")):
            raise ValueError(f"{early_key} is not an incident's early.json")
        doc = self._get_json(early_key) or {}
        prefix = early_key[: -len("early.json")]
        out = self._notifier().notify_early(prefix, doc.get("incident") or {}, doc.get("waiting") or {})
        told = [name for name, status in out["early"].items() if status in ("sent", "sent before")]
        return {"incident": prefix, "told": bool(told), "early": True,
                "channels": {name: {"status": status} for name, status in out["early"].items()}}

    def flush_notifications(self) -> list[dict]:
        """Send what the notification outbox still owes (digests, retries, follow-ups)."""
        return [self._mark_notified(s) for s in self._notifier().flush()]

    def _mark_notified(self, summary: dict) -> dict:
        """When every channel has had its last word: ``state/40-notified``, then the
        incident leaves the reconciler's index."""
        prefix = summary["incident"]
        if summary["complete"] and prefix.startswith("incidents/"):
            self.set_state(prefix, "notified", told=summary["told"],
                           channels={name: c["status"] for name, c in summary["channels"].items()})
            self.close(prefix)
        return summary


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _epoch(value: str | None) -> int | None:
    """Epoch seconds of an event time (``2026-11-26T10:00:01Z``, ``...+08:00``), or None."""
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp())


def _transient(exc: Exception) -> bool:
    """Errors worth a redelivery: the store or FC failing, not the event's content."""
    from ..cloud.invoke import InvokeError

    return isinstance(exc, (StoreError, InvokeError)) and not isinstance(exc, (NotFound, AlreadyExists))


def _since(ev: dict) -> int:
    """Epoch seconds a guest crash log must be newer than: a little before the event."""
    for k in ("execute_start_time", "publish_time"):
        v = ev.get(k)
        if v:
            try:
                t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
                if t.tzinfo is None:
                    t = t.replace(tzinfo=dt.timezone.utc)
                return max(0, int(t.timestamp()) - 3600)  # kdump writes before ECS publishes
            except ValueError:
                continue
    return 0


__all__ = ["Pipeline", "IngestSummary", "CloudError", "STATES", "ClaimHeld", "AttemptsExhausted", "Claim", "open_key"]
