"""The pipeline stages, free of Function Compute: ingest → collect → diagnose → notify.

Each stage is a method of ``Pipeline``, which is given its store, ECS API and
invoker (so tests and replay inject stand-ins, and handlers build the real ones once
per instance). Every stage is idempotent: a redelivered event, a retried invocation
or two racing invocations find the incident's objects already written (conditional
creates) and resume rather than redo. Every incident ends with a ``report.json`` or a
``state/90-failed.json`` that says why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..cloud.ecs import CloudError, EcsApi
from ..cloud.store import (
    AlreadyExists,
    NotFound,
    ObjectStore,
    check_key,
    check_prefix,
    retry_transient,
)
from ..settings import Settings
from .events import Accepted, CrashEvent, Rejected, Skipped, parse_events

log = logging.getLogger("crashdiag.pipeline")

STATES = {"received": "00", "collecting": "10", "collected": "20", "diagnosed": "30", "notified": "40", "failed": "90"}


class Invoker(Protocol):
    def invoke_async(self, function: str, payload: bytes) -> None: ...


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False, default=str).encode("utf-8")


@dataclass
class IngestSummary:
    accepted: list[str] = field(default_factory=list)  # incident prefixes created
    duplicates: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "skipped": self.skipped, "rejected": self.rejected}


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
    ) -> None:
        self.store = store
        self.ecs = ecs
        self.invoker = invoker
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.notifier = notifier  # crashdiag.notify.Notifier; built from settings on first use

    # --- store helpers -----------------------------------------------------------------

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        """Store calls retry transient failures (5xx, timeouts) with backoff and jitter."""
        return retry_transient(fn, self.sleep)

    def _put(self, key: str, data: bytes, content_type: str = "application/json", if_absent: bool = False) -> bool:
        """Write an object; with if_absent, return False when it already existed."""
        try:
            self._retrying(lambda: self.store.put(key, data, content_type=content_type, if_absent=if_absent))
            return True
        except AlreadyExists:
            return False

    def _get(self, key: str) -> bytes:
        return self._retrying(lambda: self.store.get(key))

    def _get_json(self, key: str) -> dict | None:
        try:
            return json.loads(self._get(key))
        except NotFound:
            return None

    def set_state(self, prefix: str, state: str, **detail: Any) -> bool:
        """Append a state to the incident's state machine; False if it was already there."""
        key = f"{prefix}state/{STATES[state]}-{state}.json"
        return self._put(key, _json({"state": state, "at": _now(), **detail}), if_absent=True)

    def states(self, prefix: str) -> list[str]:
        keys = self._retrying(lambda: self.store.list(f"{prefix}state/"))
        return [k.rsplit("/", 1)[1].split("-", 1)[1].removesuffix(".json") for k in keys]

    # --- stage 1: ingest -----------------------------------------------------------------

    def ingest(self, payload: bytes | str | dict | list) -> IngestSummary:
        summary = IngestSummary()
        for outcome in parse_events(payload):
            if isinstance(outcome, Accepted):
                self._accept(outcome.event, summary)
            elif isinstance(outcome, Skipped):
                log.info("skipped event: %s", outcome.reason)
                summary.skipped.append({"reason": outcome.reason, "code": outcome.code, "status": outcome.status})
            else:
                self._reject(outcome, summary)
        return summary

    def _accept(self, ev: CrashEvent, summary: IngestSummary) -> None:
        prefix = check_prefix(ev.prefix)
        record = self._private({"event": ev.to_json(), "received_at": _now()})
        self._put(f"{prefix}events/{ev.status}.json", _json(record), if_absent=True)
        if not self._put(f"{prefix}event.json", _json(record), if_absent=True):
            log.info("duplicate delivery of incident %s (%s)", ev.incident_id, ev.status)
            summary.duplicates.append(prefix)
            return
        self.set_state(prefix, "received", code=ev.code, status=ev.status, host_failure=ev.host_failure)
        summary.accepted.append(prefix)
        ref = {"region": ev.region, "instance_id": ev.instance_id, "incident_id": ev.incident_id}
        if self.invoker is not None:
            self.invoker.invoke_async(self.settings.fc_collect_function, json.dumps(ref).encode())

    def _reject(self, r: Rejected, summary: IngestSummary) -> None:
        digest = hashlib.sha256(r.excerpt.encode("utf-8", "replace")).hexdigest()[:20]
        key = f"failures/{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}/{digest}.json"
        self._put(key, _json({"reason": r.reason, "at": _now(), "excerpt": r.excerpt}), if_absent=True)
        log.warning("rejected event: %s (recorded as %s)", r.reason, key)
        summary.rejected.append({"reason": r.reason, "record": key})

    # --- stage 2: collect -----------------------------------------------------------------

    def collect(self, ref: dict | bytes | str) -> dict:
        """Fetch the crash log of one incident. Returns collect.json's content."""
        if not isinstance(ref, dict):
            ref = json.loads(ref)
        prefix = self._prefix_from_ref(ref)
        done = self._get_json(f"{prefix}collect.json")
        if done is not None:
            return done  # a retried invocation: the work is done
        record = self._get_json(f"{prefix}event.json")
        if record is None:
            raise ValueError(f"no incident at {prefix}")
        ev = record["event"]
        if not self._claim_collect(prefix):
            log.info("collection of %s is already running in another invocation", prefix)
            return {"in_progress": True}
        from .collect import Collector

        def upload(ttl: int, public: bool = False) -> str | None:
            if public:  # for an instance in another region (collect says why it needs one)
                put_public = getattr(self.store, "put_url_public", None)
                return put_public(f"{prefix}guest-upload.log", ttl) if put_public else None
            return self.store.put_url(f"{prefix}guest-upload.log", ttl)

        result = Collector(self.ecs, self.settings, self.clock, self.sleep).collect(
            ev["region"], ev["instance_id"], _since(ev), upload=upload, boot_after=_epoch(ev.get("execute_start_time"))
        )
        name = (result.get("instance") or {}).pop("name", None)  # from DescribeInstances; kept once, below
        if name and not ev.get("instance_name"):
            ev = {**ev, "instance_name": str(name)[:128]}
        log_bytes = result.pop("_log", None)
        if result.get("log", {}).get("uploaded") == "yes":
            try:
                log_bytes = self._get(f"{prefix}guest-upload.log")
                result["log"]["via"] = "upload"
            except NotFound:
                result["notes"].append("the guest said it uploaded the log, but the object is missing; using the excerpt")
        result["incident"] = ev
        result["collected_at"] = _now()
        result = self._private(result, record.get("redaction"))
        if log_bytes:
            self._put(f"{prefix}collect.json", _json(result), if_absent=True)
            # crash.log is the object whose creation triggers diagnosis: write it last.
            self._put(f"{prefix}crash.log", log_bytes, content_type="text/plain; charset=utf-8", if_absent=True)
            self.set_state(prefix, "collected", method=result["method"], complete=result["complete"])
        else:
            self._put(f"{prefix}collect.json", _json(result), if_absent=True)
            self.set_state(prefix, "failed", reason=result["failure"]["reason"], advice=result["failure"]["advice"])
            # A failure is news too: its report.json goes through the same notify stage.
            from ..reports.report import build_failure_report

            self._write_report(prefix, build_failure_report(result, self.settings.lang), None, result.get("redaction"))
        return result

    def _private(self, record: dict, previous: dict | None = None) -> dict:
        """What a stage stores besides crash.log: command-line secrets masked always; with
        CRASHDIAG_REDACT, IPs, host names (kept as salted digests in its ``redaction``
        record, for the stages after it) and the command line hidden (SECURITY.md)."""
        from ..reports.redact import mask_report, redact_record

        if self.settings.redact:
            return redact_record(record, previous=previous)
        return mask_report(record)

    def _write_report(self, prefix: str, report: dict, raw_log: bytes | None, redaction: dict | None = None) -> None:
        """report.md and report.html first, then report.json, which the notify stage
        listens to: written last, once. Everything written here (and so every notification
        built from it) goes through _private; the raw-log section of report.html too."""
        from ..reports.html_report import render_html
        from ..reports.redact import mask_log, redact_log, sealed_from
        from ..reports.report import render_markdown

        report = self._private(report, redaction)
        if raw_log:
            raw_log = redact_log(raw_log, (), sealed_from(report.get("redaction"))) if self.settings.redact else mask_log(raw_log)
        lang = self.settings.lang
        self._put(f"{prefix}report.md", render_markdown(report, lang).encode("utf-8"), content_type="text/markdown; charset=utf-8")
        self._put(f"{prefix}report.html", render_html(report, lang, raw_log).encode("utf-8"), content_type="text/html; charset=utf-8")
        self._put(f"{prefix}report.json", _json(report), if_absent=True)

    def _claim_collect(self, prefix: str) -> bool:
        """Take the incident's collection. Two invocations at once (FC may start a retry
        while the first still runs): the second backs off. A claim older than one whole
        collection is a dead invocation's (FC killed it at its timeout): take it over."""
        if self.set_state(prefix, "collecting"):
            return True
        claim = self._get_json(f"{prefix}state/{STATES['collecting']}-collecting.json") or {}
        try:
            at = dt.datetime.fromisoformat(str(claim.get("at", "")).replace("Z", "+00:00"))
        except ValueError:
            return True
        age = (dt.datetime.now(dt.timezone.utc) - at).total_seconds()
        budget = self.settings.collect_wait_seconds + self.settings.collect_command_timeout + 60
        return age > budget

    def _prefix_from_ref(self, ref: dict) -> str:
        from .events import EVENT_ID, INSTANCE_ID, REGION

        region, inst, inc = ref.get("region", ""), ref.get("instance_id", ""), ref.get("incident_id", "")
        if not (REGION.match(str(region)) and INSTANCE_ID.match(str(inst)) and EVENT_ID.match(str(inc))):
            raise ValueError("collect needs a valid region, instance_id and incident_id")
        return check_prefix(f"incidents/{region}/{inst}/{inc}/")

    # --- stage 3: diagnose ----------------------------------------------------------------

    def diagnose(self, log_key: str) -> dict:
        """Classify one crash log object and write the report beside it."""
        from ..reports.report import build_report

        check_key(log_key)
        if log_key.startswith("incidents/") and log_key.endswith("/crash.log"):
            prefix = log_key[: -len("crash.log")]
            collect = self._get_json(f"{prefix}collect.json") or {}
        elif log_key.startswith("inbox/"):
            prefix = f"reports/{log_key}/"
            collect = {"method": "inbox", "complete": True, "log": {"path": log_key}, "context": {}}
        else:
            raise ValueError(f"{log_key} is neither an incident crash.log nor under inbox/")
        existing = self._get_json(f"{prefix}report.json")
        if existing is not None:
            return existing
        data = self._get(log_key)
        report = build_report(data, collect, self.settings.lang, source=log_key, budget_s=self.settings.classify_budget_seconds)
        self._write_report(prefix, report, data, collect.get("redaction"))
        if prefix.startswith("incidents/"):
            self.set_state(prefix, "diagnosed", kind=report["diagnosis"]["kind"], rule=(report["diagnosis"]["rule"] or {}).get("id"))
        return report

    # --- stage 4: notify (crashdiag.notify; docs/NOTIFY.md) -------------------------------

    def _notifier(self):
        if self.notifier is None:
            from ..notify import build_notifier

            self.notifier = build_notifier(self.settings, self.store, outbox_dir=self.settings.outbox_dir)
        return self.notifier

    def notify(self, report_key: str) -> dict:
        """Tell people about one new report.json (DingTalk, email); returns notify.json."""
        return self._mark_notified(self._notifier().notify_report(report_key))

    def flush_notifications(self) -> list[dict]:
        """Send what the notification outbox still owes (digests, retries, follow-ups)."""
        return [self._mark_notified(s) for s in self._notifier().flush()]

    def _mark_notified(self, summary: dict) -> dict:
        prefix = summary["incident"]
        if summary["complete"] and prefix.startswith("incidents/"):
            self.set_state(prefix, "notified", told=summary["told"],
                           channels={name: c["status"] for name, c in summary["channels"].items()})
        return summary


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


__all__ = ["Pipeline", "IngestSummary", "CloudError", "STATES"]
