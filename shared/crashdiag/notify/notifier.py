"""Exactly once per incident and channel, quiet in a storm (docs/NOTIFY.md).

``notify_report`` runs on the OSS trigger of a new report.json. It records the incident
as a *notice* (once), puts a pointer to it in the outbox (``notify/pending/<day>/``), and
decides its mode once, stored with the notice:

- ``repeat``: the same instance crashed with the same fingerprint within
  NOTIFY_REPEAT_WINDOW: no page; it is counted in a follow-up;
- ``direct``: one of the first NOTIFY_BURST incidents of a storm window: sent now, alone;
- ``digest``: the storm is on: held for the next flush.

``flush`` runs every minute (a timer): it takes every outbox item a channel has not yet
done (held digest items, direct sends that failed or were throttled, repeats whose
follow-up is due) and sends one message per channel: the card when a single incident is
waiting, otherwise a digest grouped by fingerprint.

Every send claims its attempt in the incident's ledger first (``ledger.py``), so a
duplicated event, a retried invocation or two racing invocations never send one
incident twice on a channel; each robot message also claims a slot of the minute's
budget (NOTIFY_RATE_PER_MINUTE, 10 by default: at most 20 in any 60 seconds).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

from ..cloud.store import ObjectStore, check_key
from ..settings import Settings
from . import content
from .ledger import Ledger, Store, View
from .messages import Message, message_from_json
from .outcome import DEFERRED, FAILED, REJECTED, SENT, THROTTLED, TOO_LONG, Outcome

log = logging.getLogger("crashdiag.notify")

THROTTLE_SECONDS = 600  # DingTalk: over 20 a minute, then 10 minutes of silence (130101; 410100 is not said to differ)
GAVE_UP = "gave_up"
TERMINAL = (SENT, REJECTED, GAVE_UP)
OUTBOX_DAYS = 2  # a notice still owed after this long gets one last attempt, then is given up, on the record
DAILY_DAYS = 8  # the flush looks at daily digests queued within a week (their links live at most 7 days)
FLUSH_WORKERS = 32  # parallel store requests in a flush: 5,000 owed notices fit notify_flush's Timeout


class Channel(Protocol):
    name: str

    @property
    def transport(self) -> str: ...
    @property
    def rate_limited(self) -> bool: ...
    def fits(self, msg: Message) -> bool: ...
    def deliver(self, msg: Message, *, shorten: bool = False) -> Outcome: ...


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d")


def _minute(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y%m%dT%H%M")


def report_prefix(report_key: str) -> str:
    """The folder of a report.json the notifier accepts (an incident's, or an inbox log's)."""
    check_key(report_key)
    if not report_key.endswith("/report.json") or not report_key.startswith(("incidents/", "reports/inbox/")):
        raise ValueError(f"{report_key} is not an incident's or an inbox log's report.json")
    return report_key[: -len("report.json")]


def notice_id(prefix: str) -> str:
    """incidents/<region>/<instance>/<incident>/ -> <instance>.<incident>; inbox -> inbox.<hash>."""
    parts = prefix.rstrip("/").split("/")
    if parts[0] == "incidents" and len(parts) == 4:
        return f"{parts[2]}.{parts[3]}"
    return "inbox." + hashlib.sha256(prefix.encode()).hexdigest()[:16]


class Notifier:
    def __init__(self, store: ObjectStore, settings: Settings, channels: Sequence[Channel], *,
                 now: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = Store(store, sleep)
        self.settings = settings
        self.channels = list(channels)
        self.now = now
        # the last deliveries made through this notifier (replay prints the cards)
        self.delivered: deque[dict[str, Any]] = deque(maxlen=100)

    # -- the trigger: one new report ----------------------------------------------------------

    def notify_report(self, report_key: str) -> dict[str, Any]:
        prefix = report_prefix(report_key)
        report = self.store.get_json(report_key)
        if report is None:
            raise ValueError(f"no report at {report_key}")
        notice = self._notice(prefix, report_key, report)
        holder = uuid.uuid4().hex[:12]
        if notice["mode"] == "direct":
            cache: dict[str, Message] = {}
            for ch in self.channels:
                self._send_one(notice, ch, holder, report, cache)
        return self.summarise(notice)

    def notify_early(self, prefix: str, incident: dict[str, Any], waiting: dict[str, Any]) -> dict[str, Any]:
        """Before the diagnosis: "crashed, waiting for the dump" (docs/NOTIFY.md). Its own
        notice kind, with a ledger per channel under ``<incident>/early/``, so it goes out at
        most once per channel whatever retries; calling again retries a failed send. It is
        never held for a digest: a throttled robot skips it (the report will follow)."""
        from .content import early_card

        notice = {"id": notice_id(prefix) + ".early", "prefix": f"{prefix}early/", "instance_id": incident.get("instance_id"),
                  "instance_name": incident.get("instance_name"), "region": incident.get("region"),
                  "event_time": incident.get("event_time")}
        holder = uuid.uuid4().hex[:12]
        told: dict[str, str] = {}
        for ch in self.channels:
            led = Ledger(self.store, notice["prefix"], ch.name)
            now = self.now()
            v = led.view()
            if v.done:
                told[ch.name] = "sent before"
                continue
            if not self._open(led, v, now) or (ch.rate_limited and self._throttled(ch, now)):
                told[ch.name] = "skipped"
                continue
            if not led.claim(v.next, holder=holder, now=now, lease=self.settings.notify_lease_seconds, via="early"):
                told[ch.name] = "skipped"
                continue
            out = self._send_chunk(ch, [(notice, v, led)], lambda: early_card(notice, waiting, self.settings.lang),
                                   via="early", holder=holder)
            told[ch.name] = out.status
        return {"incident": prefix, "early": told}

    def _notice(self, prefix: str, report_key: str, report: dict[str, Any]) -> dict[str, Any]:
        key = f"{prefix}notify/notice.json"
        existing = self.store.get_json(key, immutable=True)
        if existing is not None:
            self._pointer(existing)
            return existing
        now = self.now()
        d = report.get("diagnosis") or {}
        inc = report.get("incident") or {}
        nid = notice_id(prefix)
        fp = str(d.get("fingerprint") or "")
        notice = {
            "id": nid, "prefix": prefix, "report_key": report_key, "created_at": now, "created_iso": _iso(now), "day": _day(now),
            "instance_id": inc.get("instance_id"), "instance_name": inc.get("instance_name"), "region": inc.get("region"),
            "event_time": inc.get("event_time"), "kind": d.get("kind"), "title": d.get("title"), "fingerprint": fp,
            "source_name": None if inc.get("instance_id") else str(report.get("source") or "").removeprefix("inbox/"),
            "mode": None, "repeat_of": None,
        }
        repeat_of = self._earlier_same_crash(notice) if notice["instance_id"] and fp.isalnum() and d.get("kind") != "none" else None
        if repeat_of:
            notice["mode"], notice["repeat_of"] = "repeat", repeat_of
        else:
            notice["mode"] = "direct" if self._burst_slot(nid, now) else "digest"
        self._pointer(notice)
        if not self.store.put(key, notice, if_absent=True):
            return self.store.get_json(key, immutable=True) or notice  # a racing invocation wrote it first: theirs stands
        log.info("notice %s: %s", nid, notice["mode"])
        return notice

    def _pointer(self, notice: dict[str, Any]) -> None:
        self.store.put(f"notify/pending/{notice['day']}/{notice['id']}.json", {"prefix": notice["prefix"], "at": notice["created_at"]},
                       if_absent=True)

    def _earlier_same_crash(self, notice: dict[str, Any]) -> str | None:
        """The first incident of the same instance and fingerprint within the repeat window,
        if it came before this one (by the time each was first seen, then by id)."""
        base = f"notify/fingerprints/{notice['instance_id']}/{notice['fingerprint']}/"
        mine = f"{base}{notice['id']}.json"
        if not self.store.put(mine, {"at": notice["created_at"], "prefix": notice["prefix"]}, if_absent=True):
            notice["created_at"] = float((self.store.get_json(mine, immutable=True) or {}).get("at", notice["created_at"]))
        me = (notice["created_at"], mine)
        earliest = None
        for key in self.store.list(base):
            if key == mine:
                continue
            other = self.store.get_json(key, immutable=True) or {}
            at = float(other.get("at", 0))
            if notice["created_at"] - self.settings.notify_repeat_window <= at and (at, key) < me:
                if earliest is None or (at, key) < earliest[0]:
                    earliest = ((at, key), other.get("prefix"))
        return earliest[1] if earliest else None

    def _burst_slot(self, nid: str, now: float) -> bool:
        """One of the storm window's NOTIFY_BURST slots (a conditional create), or none."""
        base = f"notify/burst/{int(now // max(1, self.settings.notify_storm_window))}/"
        return self._take_slot(base, self.settings.notify_burst, {"notice": nid, "at": now}, mine=lambda d: d.get("notice") == nid)

    def _take_slot(self, base: str, limit: int, doc: dict[str, Any], mine: Callable[[dict], bool] | None = None) -> bool:
        """Create one of ``base``<00..limit-1>.json; False when all are taken. The listing
        only says where to start: the conditional create decides."""
        taken = set(self.store.list(base))
        for n in range(max(0, limit)):
            key = f"{base}{n:02d}.json"
            if key not in taken and self.store.put(key, doc, if_absent=True):
                return True
        if mine is not None:  # a retry whose earlier try took a slot
            return any(mine(self.store.get_json(k, immutable=True) or {}) for k in sorted(taken))
        return False

    # -- sending ---------------------------------------------------------------------------------

    def _send_one(self, notice: dict[str, Any], ch: Channel, holder: str, report: dict[str, Any] | None,
                  cache: dict[str, Message]) -> Outcome | None:
        led = Ledger(self.store, notice["prefix"], ch.name)
        now = self.now()
        v = led.view()
        if not self._open(led, v, now):
            return None
        if ch.rate_limited and self._throttled(ch, now):
            return None  # held: the flush sends it when the robot may speak again
        n = v.next
        if not led.claim(n, holder=holder, now=now, lease=self.settings.notify_lease_seconds, via="direct"):
            return None  # a racing invocation took this attempt

        def build() -> Message:
            nonlocal report
            if report is None:
                report = self.store.get_json(notice["report_key"]) or {}
            ck = f"card:{ch.name == 'email'}"
            if ck not in cache:
                cache[ck] = self._card(notice, report, ch.name == "email")
            return cache[ck]

        return self._send_chunk(ch, [(notice, v, led)], build, via="direct", holder=holder)

    def _send_chunk(self, ch: Channel, members: list[tuple[dict, View, Ledger]], build: Callable[[], Message], *, via: str,
                    holder: str, digest_ref: str = "", reports: dict[str, dict | None] | None = None) -> Outcome:
        """Send one message about ``members`` (claimed) and record its outcome for each:
        one of the minute's robot slots first; a 460101 (too long) splits a digest in two
        or shortens a card, and sends again."""
        now = self.now()
        out = self._hold(ch, now, holder)
        msg = None
        if out is None:
            msg = build()
            out = self._deliver(ch, msg, [n["prefix"] for n, _, _ in members])
            if out.status == TOO_LONG:
                log.warning("%s: %s; %s", ch.name, out.detail, "splitting the digest" if digest_ref and len(members) > 1 else "shortening")
                if digest_ref and len(members) > 1:
                    mid = len(members) // 2
                    outs = [self._send_chunk(ch, half, partial(self._digest, half, f"{digest_ref}-{k}", reports=reports),
                                             via=via, holder=holder, digest_ref=f"{digest_ref}-{k}", reports=reports)
                            for k, half in (("a", members[:mid]), ("b", members[mid:]))]
                    return outs[0] if outs[0].status != SENT else outs[1]
                out = self._hold(ch, self.now(), holder) or ch.deliver(msg, shorten=True)
                if out.status == TOO_LONG:
                    out = Outcome(REJECTED, f"{out.detail}, even shortened", out.code)
        self._parallel(lambda m: self._after(m[2], ch, m[1].next, out, m[1].failures, via=via), members)
        self._expire(members, now, out)
        if digest_ref:
            self.store.put(f"notify/digests/{digest_ref}.{ch.name}.json",
                           {"channel": ch.name, "at": now, "members": [n["prefix"] for n, _, _ in members], **out.to_json()})
        return out

    def _hold(self, ch: Channel, now: float, holder: str) -> Outcome | None:
        """Why a robot message may not go out now (the robot is throttled, or this minute's
        budget is used up), or None when it may: then it has taken its slot."""
        if not ch.rate_limited:
            return None
        if self._throttled(ch, now):
            return Outcome(DEFERRED, "DingTalk throttles the robot; held for a later flush")
        if not self._rate_slot(ch, now, holder):
            return Outcome(DEFERRED, "this minute's robot message budget is used up; held for the next flush")
        return None

    def _deliver(self, ch: Channel, msg: Message, prefixes: list[str]) -> Outcome:
        out = ch.deliver(msg)
        self.delivered.append({"channel": ch.name, "transport": ch.transport, "ref": msg.ref, "message": msg,
                               "outcome": out.status, "incidents": prefixes})
        return out

    def _open(self, led: Ledger, v: View, now: float) -> bool:
        """Whether this channel still owes the incident a message and nobody is sending it."""
        if v.done or led.busy(v, now):
            return False
        if v.failures >= self.settings.notify_max_attempts or v.next > 999:
            led.finish(GAVE_UP, now=now, attempt=v.last, detail=f"gave up after {v.failures} failed attempts")
            return False
        return True

    def _after(self, led: Ledger, ch: Channel, n: int, out: Outcome, failures: int, via: str) -> None:
        now = self.now()
        led.record(n, out, now=now, via=via, transport=ch.transport)
        if out.status == SENT:
            led.finish(SENT, now=now, attempt=n, detail=out.detail, via=via)
        elif out.status == REJECTED:
            log.error("%s: %s (%s); not retried", ch.name, out.detail, led.prefix)
            led.finish(REJECTED, now=now, attempt=n, detail=out.detail, via=via)
        elif out.status == FAILED:
            if failures + 1 >= self.settings.notify_max_attempts:
                log.error("%s: %s (%s); giving up after %d attempts", ch.name, out.detail, led.prefix, failures + 1)
                led.finish(GAVE_UP, now=now, attempt=n, detail=out.detail, via=via)
            else:
                log.warning("%s: %s (%s); will retry", ch.name, out.detail, led.prefix)
        elif out.status == THROTTLED:
            log.warning("%s: %s; holding messages for %d s", ch.name, out.detail, THROTTLE_SECONDS)
            self.store.put(f"notify/throttle/{ch.name}.json", {"until": now + THROTTLE_SECONDS, "since": now, "detail": out.detail})

    def _throttled(self, ch: Channel, now: float) -> bool:
        mark = self.store.get_json(f"notify/throttle/{ch.name}.json")
        return bool(mark) and float(mark.get("until", 0)) > now

    def _rate_slot(self, ch: Channel, now: float, holder: str) -> bool:
        """One of this calendar minute's NOTIFY_RATE_PER_MINUTE robot messages."""
        return self._take_slot(f"notify/rate/{ch.name}/{_minute(now)}/", self.settings.notify_rate_per_minute, {"holder": holder, "at": now})

    def _card_of(self, notice: dict[str, Any], with_excerpt: bool) -> Message:
        return self._card(notice, self.store.get_json(notice["report_key"]) or {}, with_excerpt)

    def _card(self, notice: dict[str, Any], report: dict[str, Any], with_excerpt: bool) -> Message:
        prefix = notice["prefix"]
        ttl = self.settings.report_link_ttl
        try:
            # the self-contained HTML page when the pipeline wrote one, else the Markdown report
            page = f"{prefix}report.html" if self.store.raw.exists(f"{prefix}report.html") else f"{prefix}report.md"
            link = self.store.url(page, ttl)
        except Exception:  # a store that cannot presign: no link rather than no message
            link = ""
        excerpt = self._excerpt(notice, report) if with_excerpt else None
        return content.card(notice, report, self.settings.lang, link=link, link_ttl=ttl, excerpt=excerpt)

    def _excerpt(self, notice: dict[str, Any], report: dict[str, Any]) -> tuple[str, bytes] | None:
        """The log's window the report names (``excerpt``: diagnose found it), read with one
        ranged GET of at most EXCERPT_BYTES; the log itself is never read whole. A report
        without one (written before it existed, or of a gzip log) gets the evidence lines,
        or the log's last EXCERPT_BYTES when it has none."""
        name = f"crash-{notice['instance_id'] or 'inbox'}.log.txt"
        has_evidence = bool((report.get("diagnosis") or {}).get("evidence"))
        key = str(report.get("source") or "")
        window = report.get("excerpt") if isinstance(report.get("excerpt"), dict) else {}
        offset, length = window.get("offset"), window.get("length")
        try:
            check_key(key)
            if isinstance(offset, int) and isinstance(length, int) and offset >= 0 and length >= 0:
                data = self.store.get_range(key, offset, min(length, content.EXCERPT_BYTES))
            elif has_evidence:
                return content.evidence_excerpt(report, name)
            else:
                size = self.store.size(key)
                start = max(0, size - content.EXCERPT_BYTES)
                data = self.store.get_range(key, start, content.EXCERPT_BYTES)
                if start and b"\n" in data[:-1]:
                    data = data[data.index(b"\n") + 1:]  # from a line's start
        except Exception:  # the log is gone or unreadable: the evidence lines still say something
            return content.evidence_excerpt(report, name) if has_evidence else None
        from ..reports.redact import scrub_log

        return name, scrub_log(data, report)  # it leaves with the report: hidden as the report is

    # -- the timer: what is still owed ---------------------------------------------------------

    def _parallel(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Store-bound work over many notices at once; results in order."""
        items = list(items)
        if len(items) < 4:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(FLUSH_WORKERS, len(items))) as pool:
            return list(pool.map(fn, items))

    def flush(self) -> list[dict[str, Any]]:
        """Send what the outbox still owes, one message per channel; returns the summaries of
        the incidents it touched. Scales with what is owed: one listing of the outbox, then
        each notice's ledger read, claimed and recorded in parallel."""
        now = self.now()
        notices = self._pending_notices(now)
        holder = uuid.uuid4().hex[:12]
        touched: dict[str, dict[str, Any]] = {}
        for ch in self.channels:
            if ch.rate_limited and self._throttled(ch, now):
                continue
            fresh: list[tuple[dict, View, Ledger]] = []
            repeats: list[tuple[dict, View, Ledger]] = []

            def look(notice: dict[str, Any], ch: Channel = ch) -> tuple[dict, View, Ledger, bool]:
                led = Ledger(self.store, notice["prefix"], ch.name)
                v = led.view()
                return notice, v, led, (not v.done and self._open(led, v, now))

            for notice, v, led, owed in self._parallel(look, notices):
                if v.done:
                    continue
                if not owed:
                    touched[notice["id"]] = notice
                    continue
                if notice["mode"] == "direct" and not v.attempted and now - float(notice["created_at"]) < self.settings.notify_lease_seconds:
                    continue  # its own invocation is sending it right now
                (repeats if notice["mode"] == "repeat" else fresh).append((notice, v, led))
            due = bool(repeats) and (bool(fresh) or now - min(float(n["created_at"]) for n, _, _ in repeats) >= self.settings.notify_followup_interval)
            batch = fresh + (repeats if due else [])
            ref = self._digest_ref(now, [n["id"] for n, _, _ in batch]) if batch else ""
            took = self._parallel(
                lambda nvl, ref=ref: nvl[2].claim(nvl[1].next, holder=holder, now=now, lease=self.settings.notify_lease_seconds, via=ref),
                batch)
            claimed = [nvl for nvl, ok in zip(batch, took, strict=True) if ok]
            if not claimed:
                continue
            for notice, _, _ in claimed:
                touched[notice["id"]] = notice
            if len(claimed) == 1 and claimed[0][0]["mode"] != "repeat":
                notice = claimed[0][0]
                build = partial(self._card_of, notice, ch.name == "email")
                out = self._send_chunk(ch, claimed, build, via="flush", holder=holder)
                log.info("flush %s: one incident: %s", ch.name, out.status)
                continue
            reports: dict[str, dict | None] = {}
            chunks = self._chunks(ch, claimed, ref, reports)
            for k, members in enumerate(chunks, 1):
                part_ref = ref if len(chunks) == 1 else f"{ref}-p{k}"
                build = partial(self._digest, members, part_ref, part=(k, len(chunks)), reports=reports)
                out = self._send_chunk(ch, members, build, via=ref, holder=holder, digest_ref=part_ref, reports=reports)
                log.info("flush %s: %d incident(s) in message %d of %d: %s", ch.name, len(members), k, len(chunks), out.status)
        self.flush_daily()
        return self._parallel(self.summarise, touched.values())

    def _expire(self, claimed: list[tuple[dict, View, Ledger]], now: float, out: Outcome) -> None:
        """A notice owed for OUTBOX_DAYS has had its last attempt (this one): unless it went
        out, its channel gives up, on the record, instead of waiting on for ever."""
        if out.status in (SENT, REJECTED):
            return
        limit = OUTBOX_DAYS * 86400
        for notice, v, led in claimed:
            if now - float(notice.get("created_at", now)) >= limit:
                log.error("%s: %s still unsent after %d days: giving up", led.base, notice["id"], OUTBOX_DAYS)
                led.finish(GAVE_UP, now=now, attempt=v.next,
                           detail=f"expired: still unsent after {OUTBOX_DAYS} days ({out.status}: {out.detail})")

    # -- the daily digest (queued by notify/digest.py) -------------------------------------------

    def link(self, key: str) -> str:
        """The URL people open for ``key``, valid for REPORT_LINK_TTL."""
        return self.store.url(key, self.settings.report_link_ttl)

    def _daily_parts(self, day: str) -> list[tuple[str, dict[str, Any]]]:
        doc = self.store.get_json(f"fleet/digests/{day}.json", immutable=True) or {}
        return [(f"fleet/digests/{day}/p{k:02d}/", part) for k, part in enumerate(doc.get("parts") or [], 1)]

    def flush_daily(self, days: list[str] | None = None) -> None:
        """Send the queued parts of daily digests (``days``, else those queued in the last
        week, as long as their links live) that a robot still owes, through the same
        budget, throttle mark, ledger and retries as incidents."""
        from .digest import DAILY_CHANNELS

        now = self.now()
        if days is None:
            recent = {_day(now - k * 86400) for k in range(DAILY_DAYS)}
            queued = [k.rsplit("/", 1)[1].removesuffix(".json") for k in self.store.list("notify/daily/")]
            days = [d for d in queued if d in recent]
        settled = {k.rsplit("/", 1)[1].removesuffix(".json") for k in self.store.list("notify/daily-settled/")}
        holder = uuid.uuid4().hex[:12]
        for day in sorted(d for d in days if d not in settled):
            for ch in (c for c in self.channels if c.name in DAILY_CHANNELS):
                for prefix, part in self._daily_parts(day):
                    led = Ledger(self.store, prefix, ch.name)
                    v = led.view()
                    if not self._open(led, v, self.now()):
                        continue
                    if ch.rate_limited and self._throttled(ch, self.now()):
                        break  # the rest waits for a later flush
                    if not led.claim(v.next, holder=holder, now=self.now(), lease=self.settings.notify_lease_seconds, via=f"daily-{day}"):
                        continue
                    entry = {"prefix": prefix, "id": f"daily-{day}"}
                    out = self._send_chunk(ch, [(entry, v, led)], partial(message_from_json, part), via=f"daily-{day}", holder=holder)
                    log.info("daily digest %s, %s: %s", day, prefix, out.status)
            status = self.daily_status(day)
            if status["status"] != "queued":
                self.store.put(f"fleet/digests/{day}.sent.json", {**status, "at": now})
                self.store.put(f"notify/daily-settled/{day}.json", {"at": now, "status": status["status"]}, if_absent=True)

    def daily_status(self, day: str) -> dict[str, Any]:
        """Each part's last word per channel: sent, rejected, gave_up, or still queued."""
        from .digest import DAILY_CHANNELS

        parts = []
        for prefix, _ in self._daily_parts(day):
            for ch in (c for c in self.channels if c.name in DAILY_CHANNELS):
                done, attempts = Ledger(self.store, prefix, ch.name).history()
                parts.append({"part": prefix, "channel": ch.name, "transport": ch.transport,
                              "status": done.get("outcome") if done else "queued",
                              "detail": (done or (attempts[-1] if attempts else {})).get("detail")})
        states = {p["status"] for p in parts}
        status = "queued" if "queued" in states or not parts else "sent" if states == {SENT} else "incomplete"
        return {"status": status, "parts": parts}

    def _pending_notices(self, now: float) -> list[dict[str, Any]]:
        """Every notice still owed: one listing of ``notify/pending/`` (a pointer is deleted
        once its notice is settled, so this grows with what is owed, whatever its age)."""
        pointers = self.store.list("notify/pending/")
        days = sorted({k.split("/")[2] for k in pointers if k.count("/") == 3})
        settled = {f"{day}/{k.rsplit('/', 1)[1]}" for day in days for k in self.store.list(f"notify/settled/{day}/")}
        live = []
        for key in pointers:
            if "/".join(key.split("/")[2:4]) in settled:
                self._drop_pointer(key)  # settled before pointers were dropped: tidy up
            else:
                live.append(key)

        def load(key: str) -> dict[str, Any] | None:
            ptr = self.store.get_json(key, immutable=True) or {}
            prefix = str(ptr.get("prefix") or "")
            if not prefix:
                return None
            notice = self.store.get_json(f"{prefix}notify/notice.json", immutable=True)
            if notice is None:
                # the trigger stopped between the pointer and the notice: finish its work
                try:
                    report_key = f"{report_prefix(prefix + 'report.json')}report.json"
                    report = self.store.get_json(report_key)
                    notice = self._notice(prefix, report_key, report) if report else None
                except ValueError:
                    notice = None
            return notice

        out, seen = [], set()
        for notice in self._parallel(load, live):
            if notice is not None and notice["prefix"] not in seen:
                seen.add(notice["prefix"])
                out.append(notice)
        return sorted(out, key=lambda n: (float(n.get("created_at", 0)), n["id"]))

    def _drop_pointer(self, key: str) -> None:
        try:
            self.store._retrying(lambda: self.store.raw.delete(key))
        except Exception as exc:  # noqa: BLE001 - a pointer left behind costs one more look, nothing else
            log.warning("could not drop %s: %s", key, type(exc).__name__)

    @staticmethod
    def _digest_ref(now: float, ids: list[str]) -> str:
        h = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:10]
        return f"digest-{dt.datetime.fromtimestamp(now, dt.timezone.utc):%Y%m%dT%H%M%S}-{h}"

    def _chunks(self, ch: Channel, claimed: list[tuple[dict, View, Ledger]], ref: str,
                reports: dict[str, dict | None]) -> list[list[tuple[dict, View, Ledger]]]:
        """The claimed incidents in digest order, cut into runs whose digest fits one message
        of the channel (halving until each does): a storm too big for one robot message
        goes out in several, every incident in exactly one."""
        sizes: dict[str, int] = {}
        for n, _, _ in claimed:
            if n["mode"] != "repeat":
                g = self._group(n)
                sizes[g] = sizes.get(g, 0) + 1
        rank = {g: i for i, g in enumerate(sorted(sizes, key=lambda g: -sizes[g]))}
        ordered = sorted(claimed, key=lambda c: (c[0]["mode"] == "repeat", rank.get(self._group(c[0]), 0),
                                                 float(c[0].get("created_at", 0)), c[0]["id"]))

        def split(items: list[tuple[dict, View, Ledger]]) -> list[list[tuple[dict, View, Ledger]]]:
            if len(items) == 1 or ch.fits(self._digest(items, ref, part=(1, 2), reports=reports)):
                return [items]
            mid = len(items) // 2
            return split(items[:mid]) + split(items[mid:])

        return split(ordered)

    @staticmethod
    def _group(notice: dict[str, Any]) -> str:
        return notice.get("fingerprint") or f"kind:{notice.get('kind')}"

    def _digest(self, claimed: list[tuple[dict, View, Ledger]], ref: str, *, part: tuple[int, int] | None = None,
                reports: dict[str, dict | None] | None = None) -> Message:
        fresh_notices = [n for n, _, _ in claimed if n["mode"] != "repeat"]
        repeats = [n for n, _, _ in claimed if n["mode"] == "repeat"]
        reports = {} if reports is None else reports
        fresh = []
        for n in fresh_notices:
            group = self._group(n)
            if group not in reports:  # one report per group gives its cause and first step
                reports[group] = self.store.get_json(n["report_key"])
            fresh.append((n, reports[group]))
        msg = content.digest(fresh, repeats, self.settings.lang, ref, part)
        if part and part[0] > 1:
            msg.mention = False  # @ people once per digest, not once per part
        return msg

    # -- the record ---------------------------------------------------------------------------

    def summarise(self, notice: dict[str, Any]) -> dict[str, Any]:
        """Write <incident>/notify.json from the ledger: who was told, how, every attempt."""
        now = self.now()
        channels: dict[str, Any] = {}
        for ch in self.channels:
            led = Ledger(self.store, notice["prefix"], ch.name)
            done, attempts = led.history()
            if done:
                status = done.get("outcome")
            elif attempts and "outcome" not in attempts[-1] and float(attempts[-1].get("lease_until") or 0) > now:
                status = "in_progress"
            else:
                status = "pending"
            channels[ch.name] = {"transport": ch.transport, "status": status, "attempts": attempts, "done": done}
        doc = {
            "incident": notice["prefix"], "notice": {k: notice.get(k) for k in ("id", "mode", "repeat_of", "created_iso", "fingerprint")},
            "channels": channels,
            "told": any(c["status"] == SENT for c in channels.values()),
            "complete": all(c["status"] in TERMINAL for c in channels.values()),
            "updated_at": _iso(now),
        }
        if not self.channels:
            doc["note"] = "no channel configured: DINGTALK_WEBHOOK and SMTP_HOST/MAIL_TO are unset"
        self.store.put(f"{notice['prefix']}notify.json", doc)
        if doc["complete"]:  # the flush no longer needs to look at it
            self.store.put(f"notify/settled/{notice['day']}/{notice['id']}.json", {"at": now, "told": doc["told"]}, if_absent=True)
            self._drop_pointer(f"notify/pending/{notice['day']}/{notice['id']}.json")
        return doc
