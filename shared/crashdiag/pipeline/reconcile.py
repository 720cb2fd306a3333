"""The reconciler: a timer that drives on incidents that stopped short of their end.

Function Compute retries an async invocation a few times and then gives up into the
failure queue; EventBridge retries a delivery a few times; an OSS trigger fires once. An
incident whose stage died after all of those would wait forever. Every few minutes the
reconciler lists ``open/`` (one marker per unfinished incident, written at ingest and
deleted when the incident is told: the listing grows with the open incidents, never with
the bucket), skips markers whose ``next_check`` is still ahead, and for each one due:

- not started (event.json, no ``received``): invoke collect;
- collecting, no live claim: invoke collect again; after STAGE_MAX_ATTEMPTS claims, or
  RECONCILE_MAX_KICKS restarts that never ran, the incident ends as a failure report;
- collected, no report: the same for diagnose ("diagnosis did not finish ...");
- report.json, not yet told: invoke notify (the ledger keeps it once per channel);
- told: drop the marker.

It only invokes and writes small records: the heavy work stays in the stage functions,
whose claims make a second start harmless. A stage that must wait (a lease, a guest that
is still capturing) says so with ``Pipeline.come_back_at``; the marker's ``next_check``
holds it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .stages import OPEN, TERMINAL, Pipeline
from .wording import say

log = logging.getLogger("crashdiag.reconcile")


class Reconciler:
    def __init__(self, pipeline: Pipeline, *, workers: int = 8) -> None:
        self.p = pipeline
        self.s = pipeline.settings
        self.workers = workers

    def run(self) -> dict[str, Any]:
        """One pass over the open incidents that are due; returns what it did, counted."""
        now = self.p.wall()
        keys = self.p._retrying(lambda: self.p.store.list(OPEN))
        with ThreadPoolExecutor(self.workers) as pool:
            markers = list(pool.map(self.p._get_json, keys))
        due = [(k, m) for k, m in zip(keys, markers, strict=True) if m and float(m.get("next_check", 0)) <= now]
        actions: Counter[str] = Counter()
        with ThreadPoolExecutor(self.workers) as pool:
            for what in pool.map(lambda km: self._one(km[1], now), due):
                actions[what] += 1
        summary = {"open": len(keys), "due": len(due), "actions": dict(actions)}
        log.info("reconcile: %s", summary)
        return summary

    def _one(self, marker: dict, now: float) -> str:
        prefix = str(marker.get("prefix") or "")
        try:
            return self.drive(prefix, marker, now)
        except Exception as exc:  # noqa: BLE001 - one incident's trouble must not stop the others
            log.error("reconcile %s: %s: %s", prefix, type(exc).__name__, exc)
            return f"error ({type(exc).__name__})"

    def drive(self, prefix: str, marker: dict, now: float) -> str:
        p, s = self.p, self.s
        kicks: dict[str, int] = dict(marker.get("kicks") or {})
        states = set(p.states(prefix))
        if TERMINAL in states:
            p.close(prefix)
            return "closed"
        record = p._get_json(f"{prefix}event.json")
        if record is None:
            if not isinstance(marker.get("record"), dict):
                p.close(prefix)
                return "dropped (no event)"
            p._create_owned(f"{prefix}event.json", marker["record"])  # ingest died before its claim
            record = marker["record"]
        ev = record["event"]

        def later(seconds: float, why: str) -> None:
            p.come_back_at(prefix, now + seconds, why, kicks=kicks)

        def kick(stage: str) -> bool:
            kicks[stage] = kicks.get(stage, 0) + 1
            return kicks[stage] <= s.reconcile_max_kicks

        if not states:  # collect was never confirmed started
            if not kick("collect"):
                return self._fail(prefix, "collect", say(self.s.lang, "never_started"), later)
            p.start_collect(prefix, ev)
            later(s.collect_lease_seconds, "collect started by the reconciler")
            return "started collect"

        report = p._get_json(f"{prefix}report.json")
        if report is not None:
            p._mark_reported(prefix, report)
            if not kick("notify"):
                p.set_state(prefix, "notified", told=False, reason=f"notify did not finish after {s.reconcile_max_kicks} restarts")
                p.close(prefix)
                return "gave up notifying"
            self._invoke(s.fc_notify_function, {"key": f"{prefix}report.json"})
            later(s.notify_deadline, "notify restarted")
            return "restarted notify"

        if p._exists(f"{prefix}crash.log"):
            stage, lease, fn, payload = "diagnose", s.diagnose_lease_seconds, s.fc_diagnose_function, {"key": f"{prefix}crash.log"}
        else:
            stage, lease, fn = "collect", s.collect_lease_seconds, s.fc_collect_function
            payload = {"region": ev["region"], "instance_id": ev["instance_id"], "incident_id": ev["incident_id"]}
        claims = p.claims(prefix, stage)
        if claims and float(claims[-1][1].get("lease_until", 0)) > now:
            p.come_back_at(prefix, float(claims[-1][1]["lease_until"]) + 1, f"{stage} is running", kicks=kicks)
            return f"{stage} running"
        died = [c for c in claims if not c[1].get("released")]  # a released claim waited on purpose
        if len(died) >= s.stage_max_attempts:
            if stage == "diagnose":
                p.diagnosis_did_not_finish(prefix, len(died))
                later(s.notify_deadline, "diagnosis did not finish: failure report written")
                return "failed (diagnose)"
            return self._fail(prefix, "collect", say(self.s.lang, "collect_died", attempts=len(died)), later)
        # A guest that collect is waiting for (a kdump capture): the visit is a scheduled
        # re-check, not a restart of a stage that never ran, until its deadline is past.
        waiting = p._get_json(f"{prefix}waiting.json") if stage == "collect" and "waiting" in states else None
        rechecking = waiting is not None and now < float(waiting.get("deadline", 0)) + lease
        if not rechecking and not kick(stage):
            return self._fail(prefix, stage, say(self.s.lang, "never_ran", stage=stage, kicks=s.reconcile_max_kicks), later)
        self._invoke(fn, payload)
        if rechecking:
            marker = p.open_marker(prefix)  # None: the incident ended within the call (an inline invoker)
            if marker is not None and float(marker.get("next_check", 0)) <= now:  # collect set no next check
                later(lease, "collect re-checks the guest")
            return "re-checked the guest"
        later(lease, f"{stage} restarted")
        return f"restarted {stage}"

    def _fail(self, prefix: str, stage: str, reason: str, later) -> str:
        self.p.fail(prefix, reason, say(self.s.lang, "reconcile_advice"),
                    stage=stage)
        later(self.s.notify_deadline, "failed: the failure report is being told")
        return f"failed ({stage})"

    def _invoke(self, function: str, payload: dict) -> None:
        if self.p.invoker is None:
            raise RuntimeError("the reconciler needs an invoker (CRASHDIAG_FC_ENDPOINT)")
        self.p.invoker.invoke_async(function, json.dumps(payload).encode())
