"""``crashdiag replay EVENT``: run the whole pipeline in-process on one sample event.

Embedded local defaults: a directory as the object store (``out/store``), simulated
instances (``events/instances/``) on which the real collection script runs, and the
OSS trigger replaced by a direct call. With ``OSS_BUCKET`` and credentials in the
environment the store is the real bucket; without ``CRASHDIAG_INSTANCES_DIR`` and with
credentials, collection talks to the real ECS API.

After diagnosis the notify stage runs: with ``DINGTALK_WEBHOOK`` / ``SMTP_HOST`` +
``MAIL_TO`` set it sends for real; a channel that is not configured writes its message
to the outbox folder instead (``out/outbox``: the DingTalk payload as JSON, the email as
.eml), and the card is printed.

On simulated instances, time is simulated too: the clock starts at the event's time and
moves only when the pipeline waits. An incident that waits for its guest (a kdump
capture) is driven on by the reconciler, as the timer would, until it ends: a capture of
ninety minutes replays in seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any

from .cloud.invoke import InlineInvoker
from .pipeline.stages import Pipeline
from .settings import Settings


def _default_instances() -> str:
    # The repository's sample instances, when run from a checkout.
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        d = base / "events" / "instances"
        if d.is_dir():
            return str(d)
    return ""


def outbox_dir(settings: Settings) -> str:
    """Where replay writes the messages of channels that are not configured."""
    return settings.outbox_dir or str(Path(settings.store_dir).parent / "outbox")


class SimulatedTime:
    """A wall clock that moves only when slept or set: replay's time on simulated instances."""

    def __init__(self, start: float) -> None:
        self.t = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.t += max(0.0, seconds)

    def advance_to(self, t: float) -> None:
        with self._lock:
            self.t = max(self.t, t)


def _event_time(payload: bytes) -> float | None:
    """When the replayed crash happened (the earliest executeStartTime or publishTime)."""
    from .pipeline.events import Accepted, parse_events

    times = []
    for outcome in parse_events(payload):
        if isinstance(outcome, Accepted):
            for k in ("execute_start_time", "publish_time"):
                v = getattr(outcome.event, k, None)
                try:
                    times.append(dt.datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp())
                    break
                except ValueError:
                    continue
    return min(times) if times else None


def build_local_pipeline(settings: Settings, notifier: Any = None, clock: SimulatedTime | None = None) -> Pipeline:
    from .pipeline.runtime import build_ecs, build_notifier, build_store

    store = build_store(settings)
    ecs = build_ecs(settings) if (settings.instances_dir or settings.has_credentials) else None
    notifier = notifier or build_notifier(settings, store, outbox_dir=outbox_dir(settings))
    if clock is not None and settings.instances_dir:
        if hasattr(ecs, "clock"):
            ecs.clock = clock  # the simulated instance's capture runs on the same time
        pipeline = Pipeline(store, ecs, None, settings, notifier=notifier, clock=clock, sleep=clock.sleep, wall=clock)
    else:
        pipeline = Pipeline(store, ecs, None, settings, notifier=notifier)

    def collect_then_diagnose(payload: bytes) -> None:
        ref = json.loads(payload)
        pipeline.collect(ref)
        early = f"incidents/{ref['region']}/{ref['instance_id']}/{ref['incident_id']}/early.json"
        if store.exists(early):  # the OSS trigger on early.json (the notice goes once per channel)
            pipeline.notify(early)
        base = f"incidents/{ref['region']}/{ref['instance_id']}/{ref['incident_id']}/"
        if store.exists(f"{base}crash.log"):  # the OSS trigger on crash.log, in-process
            pipeline.diagnose(f"{base}crash.log")
        if store.exists(f"{base}report.json"):  # the OSS trigger on report.json: a diagnosis or a failure
            pipeline.notify(f"{base}report.json")

    pipeline.invoker = InlineInvoker({settings.fc_collect_function: collect_then_diagnose})
    return pipeline


def replay(payload: bytes, settings: Settings, notifier: Any = None) -> dict[str, Any]:
    """Replay one event file; returns a JSON-able summary (and ``cards``: the messages sent)."""
    try:
        start = _event_time(payload)
    except Exception:  # noqa: BLE001 - a malformed event is ingest's to reject, with its reason
        start = None
    clock = SimulatedTime((start + 60) if start else time.time()) if settings.instances_dir else None
    pipeline = build_local_pipeline(settings, notifier, clock)
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("events"), list) and data["events"] and isinstance(data["events"][0], dict) and "oss" in data["events"][0]:
        result = _replay_oss(pipeline, payload)
    else:
        summary = pipeline.ingest(payload)
        if clock is not None:
            _drive_waiting(pipeline, summary.accepted, clock)
        pipeline.flush_notifications()  # what a storm held back goes out as one digest (the timer, in-process)
        incidents = []
        for prefix in summary.accepted + summary.duplicates:
            incidents.append(_incident(pipeline, prefix, duplicate=prefix in summary.duplicates))
        result = {"ingest": summary.to_json(), "incidents": incidents}
    result["cards"] = _cards(pipeline)
    return result


def _drive_waiting(pipeline: Pipeline, prefixes: list[str], clock: SimulatedTime) -> None:
    """Incidents waiting for their guest: move the clock to their next check and run the
    reconciler, as its timer would, until each has a report (bounded: the wait has a deadline)."""
    from .pipeline.reconcile import Reconciler

    for _ in range(500):
        waiting = [p for p in prefixes if not pipeline.store.exists(f"{p}report.json") and "waiting" in pipeline.states(p)]
        if not waiting:
            return
        due = [float((pipeline.open_marker(p) or {}).get("next_check", clock())) for p in waiting]
        clock.advance_to(min(due))
        Reconciler(pipeline, workers=1).run()


def _cards(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The DingTalk messages this replay delivered (or wrote to the outbox), as text."""
    from .notify.messages import card_text

    out = []
    for d in getattr(pipeline.notifier, "delivered", []):
        if d["channel"] == "dingtalk":
            out.append({"ref": d["ref"], "transport": d["transport"], "outcome": d["outcome"], "text": card_text(d["message"])})
    return out


def _notifications(store: Any, prefix: str) -> list[dict[str, Any]]:
    key = f"{prefix}notify.json"
    if not store.exists(key):
        return []
    doc = json.loads(store.get(key))
    out = []
    for name, c in doc.get("channels", {}).items():
        last = (c.get("attempts") or [{}])[-1]
        out.append({"channel": name, "status": c.get("status"), "transport": c.get("transport"), "detail": last.get("detail"),
                    "artifact": last.get("artifact"), "via": last.get("via")})
    return out


def _incident(pipeline: Pipeline, prefix: str, duplicate: bool) -> dict[str, Any]:
    store = pipeline.store
    out: dict[str, Any] = {"incident_id": prefix.rstrip("/").rsplit("/", 1)[1], "prefix": prefix, "duplicate": duplicate,
                           "states": pipeline.states(prefix), "report": None, "report_url": None, "notifications": []}
    key = f"{prefix}report.json"
    if store.exists(key):
        out["report"] = key
        page = f"{prefix}report.html"  # the page people open; report.json is for tools
        out["report_url"] = store.url(page if store.exists(page) else key, pipeline.settings.report_link_ttl)
        out["diagnosis"] = json.loads(store.get(key))
        out["notifications"] = _notifications(store, prefix)
    if store.exists(f"{prefix}waiting.json"):
        w = json.loads(store.get(f"{prefix}waiting.json"))
        out["waited"] = {"checks": w.get("checks"), "reason": w.get("reason"),
                         "minutes": int((float(w.get("checked_at", 0)) - float(w.get("first_seen", 0))) // 60)}
    failed = f"{prefix}state/90-failed.json"
    if store.exists(failed):
        out["failure"] = json.loads(store.get(failed))
    return out


def _replay_oss(pipeline: Pipeline, payload: bytes) -> dict[str, Any]:
    from .pipeline.events import parse_oss_events

    results = []
    for created in parse_oss_events(payload):
        key = created.key
        if not pipeline.store.exists(key):
            # The sample OSS event names inbox/vmcore-dmesg-sample.txt: seed the local store with it.
            sample = Path(__file__).resolve().parents[2] / "events" / "logs" / Path(key).name
            if key.startswith("inbox/") and sample.is_file():
                pipeline.store.put(key, sample.read_bytes(), content_type="text/plain")
        report = pipeline.diagnose(key)
        rkey = f"reports/{key}/report.json"
        pipeline.notify(rkey)  # the OSS trigger on reports/inbox/.../report.json
        results.append({"key": key, "report": rkey, "report_url": pipeline.store.url(rkey, 3600), "diagnosis": report,
                        "notifications": _notifications(pipeline.store, f"reports/{key}/")})
    pipeline.flush_notifications()
    return {"ingest": None, "incidents": [], "objects": results}


def render_replay(result: dict[str, Any], lang: str) -> str:
    from .reports.escape import plain
    from .reports.render import render_terminal

    lines: list[str] = []
    ing = result.get("ingest")
    if ing:
        for s in ing["skipped"]:
            lines.append(f"skipped: {plain(s['reason'])}")
        for r in ing["rejected"]:
            lines.append(f"rejected: {plain(r['reason'])} (recorded as {r['record']})")
    for inc in result.get("incidents", []):
        head = f"incident {inc['incident_id']}" + (" (duplicate delivery: already handled)" if inc["duplicate"] else "")
        lines.append(f"== {head}")
        lines.append(f"states: {' -> '.join(inc['states'])}")
        if inc.get("waited"):
            w = inc["waited"]
            lines.append(f"waited for the guest: {w['checks']} checks over {w['minutes']} min (simulated): {plain(w['reason'])}")
        if inc.get("failure"):
            f = inc["failure"]
            lines.append(f"failed: {plain(f.get('reason'))}")
            lines.append(f"what to do: {plain(f.get('advice'))}")
        if inc.get("diagnosis") and not inc.get("failure"):
            rep = inc["diagnosis"]
            col = rep["collection"]
            lines.append(f"collected: {col['method']} ({'complete' if col['complete'] else 'partial'})")
            if rep["incident"].get("host_failure"):
                lines.append("host failure (SystemFailure.Reboot): the guest may be innocent")
            lines.append(render_terminal(rep["diagnosis"], lang))
            for a in rep.get("advice", []):
                lines.append(f"advice: {a['text']}")
        if inc.get("report_url"):
            lines.append(f"report: {inc['report_url']}")
        lines += _notification_lines(inc.get("notifications") or [])
    for obj in result.get("objects", []):
        lines.append(f"== {obj['key']}")
        lines.append(render_terminal(obj["diagnosis"]["diagnosis"], lang))
        lines.append(f"report: {obj['report_url']}")
        lines += _notification_lines(obj.get("notifications") or [])
    for card in result.get("cards", []):
        where = "outbox" if card["transport"] == "outbox" else "sent to DingTalk"
        lines.append(f"-- DingTalk card ({where}: {card['outcome']}) " + "-" * 20)
        lines.append(card["text"].rstrip())
        lines.append("-" * 60)
    return "\n".join(lines)


def _notification_lines(notes: list[dict[str, Any]]) -> list[str]:
    from .reports.escape import plain

    out = []
    for n in notes:
        where = n.get("artifact") or n.get("transport")
        out.append(f"notify {n['channel']}: {n['status']} ({plain(where)})" + (f": {plain(n['detail'])}" if n.get("detail") and n["status"] != "sent" else ""))
    return out


def default_settings(store: str | None, instances: str | None, lang: str | None) -> Settings:
    s = Settings.from_env(store_dir=store, instances_dir=instances, lang=lang)
    if not s.instances_dir and not s.has_credentials:
        # Simulated instances answer at once: poll them briskly.
        s = Settings.from_env(store_dir=store, instances_dir=_default_instances(), lang=lang, collect_poll_seconds=0.05)
    return s
