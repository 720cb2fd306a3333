"""`make chaos`: kill the pipeline at every crash point and check nothing is lost.

A census run of each scenario records every store write (put, delete) and every external
call (ECS, FC invoke, DingTalk / email delivery) each stage makes. Then, for each of those
points, a fresh run kills the process just before the point and another just after it
(``Killed``, a BaseException: nothing in our code catches it; the store keeps what was
written); at a conditional create a third run lands the write and loses the reply (the
connection resets, our retry gets 409 FileAlreadyExists).

After the kill the harness delivers what the platform would: FC's async retries of the
dead invocation (MaxAsyncRetryAttempts from template.yml, same request id), EventBridge's
redelivery (3 tries) and the ``Executed`` event after ``Executing``, the OSS triggers of
crash.log and report.json for objects that exist, the notify_flush timer every minute and
the reconcile timer every five, on a simulated clock, until nothing is left to do.

Each run then must end with: the incident's report.json of the same kind as the run
without a kill (a diagnosis, or the failure that says why), ``state/40-notified``, no
``open/`` marker, nothing queued, and each channel told once. The parts are real: the
pipeline, the reconciler and the notifier over a LocalStore and the simulated ECS (which
runs the real guest script); only the kills and the platform are the harness's.

Prints a table per stage and last one line:
``chaos: <P> crash points, <R> runs, lost <L>, stuck <S>, duplicate notices <D>``.
Exit status 1 unless L, S and D are 0.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "shared") not in sys.path:
    sys.path.insert(0, str(ROOT / "shared"))

EVENTS = ROOT / "events"
EVENTBRIDGE_TRIES = 3  # template.yml: PushRetryStrategy BACKOFF_RETRY (3 tries)
STAGES = ("ingest", "collect", "diagnose", "notify", "flush", "reconcile")


class Killed(BaseException):
    """The process dies here (timeout, out of memory, the instance recycled)."""


def fc_retries() -> int:
    """MaxAsyncRetryAttempts of the async stages, as template.yml deploys them."""
    import yaml

    t = yaml.safe_load((ROOT / "template.yml").read_text(encoding="utf-8"))
    found = {r["Properties"]["FunctionName"]: r["Properties"].get("AsyncConfiguration", {}).get("MaxAsyncRetryAttempts")
             for r in t["Resources"].values() if r["Type"] == "ALIYUN::FC::Function"}
    values = {found[f] for f in ("collect", "diagnose", "notify")}
    assert len(values) == 1, found
    return int(values.pop())


@dataclass(frozen=True)
class Point:
    """One crash point: the n-th time a stage makes this kind of call on this key."""

    scenario: str
    stage: str
    op: str  # put, put-once (conditional create), delete, ecs.<call>, invoke.<function>, deliver.<channel>
    what: str  # the key without the incident's prefix, or the call's target
    n: int

    @property
    def label(self) -> str:
        return f"{self.stage}: {self.op} {self.what}" + (f" #{self.n}" if self.n > 1 else "")


@dataclass(frozen=True)
class Kill:
    point: Point
    when: str  # before | after | lost-reply


class Tap:
    """Counts the calls of the running stage and kills at the chosen one."""

    def __init__(self, scenario: str, kill: Kill | None) -> None:
        self.scenario, self.kill = scenario, kill
        self.stage = "ingest"
        self.seen: Counter[tuple[str, str, str]] = Counter()
        self.census: list[Point] = []
        self.fired = False
        self.window: set[str] = set()  # channels whose provider took a message the ledger has not recorded yet
        self.window_at_kill: set[str] = set()

    def killed(self, what: str) -> Killed:
        self.window_at_kill = set(self.window)
        return Killed(what)

    def wrote(self, key: str) -> None:
        m = re.search(r"/notify/(\w+)/a\d{3}-(\w+)\.json$", key)
        if m and m.group(2) != "claim":
            self.window.discard(m.group(1))

    def at(self, op: str, what: str) -> str | None:
        """Register a call; returns 'before' / 'after' / 'lost-reply' when it is the kill."""
        what = _generic(what)
        self.seen[(self.stage, op, what)] += 1
        p = Point(self.scenario, self.stage, op, what, self.seen[(self.stage, op, what)])
        self.census.append(p)
        if self.kill is not None and not self.fired and self.kill.point == p:
            self.fired = True
            return self.kill.when
        return None


def _generic(key: str) -> str:
    for marker in ("incidents/", "open/"):
        if key.startswith(marker):
            parts = key.split("/")
            return marker + "…/" + "/".join(parts[4:]) if marker == "incidents/" else "open/…"
    if key.startswith("failures/"):
        return "failures/…"
    if key.startswith("notify/"):
        parts = key.split("/")
        return "/".join(parts[:2]) + "/…"
    return key


class ChaosStore:
    """The object store as the provider behaves, with the harness's kills: a LocalStore."""

    def __init__(self, inner, tap: Tap, on_created) -> None:
        self.inner, self.tap, self.on_created = inner, tap, on_created

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream", if_absent: bool = False) -> None:
        from crashdiag.cloud.store import StoreUnavailable

        kill = self.tap.at("put-once" if if_absent else "put", key)
        if kill == "before":
            raise self.tap.killed(key)
        existed = self.inner.exists(key)
        self.inner.put(key, data, content_type=content_type, if_absent=if_absent)
        self.tap.wrote(key)
        if not existed:
            self.on_created(key)  # the OSS trigger fires whoever dies next
        if kill == "after":
            raise self.tap.killed(key)
        if kill == "lost-reply":
            raise StoreUnavailable(f"oss put {key!r}: request failed (ConnectionResetError)")

    def delete(self, key: str) -> None:
        kill = self.tap.at("delete", key)
        if kill == "before":
            raise self.tap.killed(key)
        self.inner.delete(key)
        if kill == "after":
            raise self.tap.killed(key)

    def __getattr__(self, name: str) -> Any:  # reads and URLs: the inner store's own
        return getattr(self.inner, name)

    def put_url(self, key: str, ttl: int) -> str | None:
        return None


class ChaosEcs:
    """The simulated ECS region, with kills around each API call."""

    CALLS = ("instance_status", "cloud_assistant_online", "run_command", "invocation_result", "console_output")

    def __init__(self, inner, tap: Tap) -> None:
        self.inner, self.tap = inner, tap

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if name not in self.CALLS:
            return fn

        def call(*a: Any, **k: Any) -> Any:
            kill = self.tap.at(f"ecs.{name}", name)
            if kill == "before":
                raise self.tap.killed(name)
            out = fn(*a, **k)
            if kill == "after":
                raise self.tap.killed(name)
            return out

        return call


class Platform:
    """Function Compute's async queue, EventBridge, OSS triggers and the timers, on a
    simulated clock."""

    def __init__(self, tap: Tap, refuse_ingest: bool = False) -> None:
        self.tap = tap
        self.queue: list[dict] = []  # {"function", "payload", "request_id", "tries", "at"}
        self.t = 1_800_000_000.0
        self.ids = 0
        self.refuse = refuse_ingest  # FC refuses every invoke made by ingest (throttled)

    # clocks
    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s

    def request_id(self) -> str:
        self.ids += 1
        return f"req-{self.ids:05d}"

    # FC async invoke (the Invoker protocol)
    def invoke_async(self, function: str, payload: bytes) -> None:
        from crashdiag.cloud.invoke import InvokeError

        kill = self.tap.at(f"invoke.{function}", function)
        if kill == "before":
            raise self.tap.killed(function)
        if self.refuse and self.tap.stage == "ingest":
            raise InvokeError(f"async invocation of {function} failed (429)")
        self.queue.append({"function": function, "payload": payload, "request_id": self.request_id(), "tries": 0, "at": self.t})
        if kill == "after":
            raise self.tap.killed(function)

    def oss_trigger(self, key: str) -> None:
        if key.startswith("incidents/") and key.endswith("/crash.log"):
            fn = "diagnose"
        elif key.startswith("incidents/") and key.endswith("/report.json"):
            fn = "notify"
        else:
            return
        body = {"events": [{"eventName": "ObjectCreated:PutObject", "oss": {"bucket": {"name": "chaos"}, "object": {"key": key}},
                            "region": "cn-hangzhou"}]}
        self.queue.append({"function": fn, "payload": json.dumps(body).encode(), "request_id": self.request_id(), "tries": 0,
                           "at": self.t})


class Channel:
    """A channel's provider (the robot, the mail server): it keeps what it was given."""

    rate_limited = False
    transport = "chaos"

    def __init__(self, name: str, tap: Tap, inbox: list) -> None:
        self.name, self.tap, self.inbox = name, tap, inbox

    def deliver(self, msg, shorten: bool = False) -> Any:
        from crashdiag.notify.outcome import SENT, Outcome

        kill = self.tap.at(f"deliver.{self.name}", self.name)
        if kill == "before":
            raise self.tap.killed(self.name)
        self.inbox.append((self.name, msg.ref, self.tap.stage))
        self.tap.window.add(self.name)
        if kill == "after":
            raise self.tap.killed(self.name)
        return Outcome(SENT, "accepted")


@dataclass
class Scenario:
    name: str
    instance: str = "i-bp1kdumpel7demo01"
    event: str = "eventbridge-crash-kdump-executing.json"
    second: str | None = "cloudmonitor-crash-kdump-executed.json"
    burst: int = 3  # notify_burst: 0 holds every notice for the flush
    refuse_ingest: bool = False  # FC refuses every invoke ingest makes: the reconciler starts collect
    nothing_to_collect: bool = False


SCENARIOS = {
    "direct": Scenario("direct"),
    "digest": Scenario("digest", burst=0),
    "reconcile": Scenario("reconcile", refuse_ingest=True),
    "failure": Scenario("failure", nothing_to_collect=True),
}


@dataclass
class Outcome:
    kind: str  # the report's: "diagnosis" or "failure: <reason start>", or "none"
    lost: bool = False
    stuck: bool = False
    duplicates: int = 0  # extra deliveries on a channel
    resends: int = 0  # extra deliveries after a kill that followed the provider's acceptance
    notes: list[str] = field(default_factory=list)


def run(scn: Scenario, kill: Kill | None, *, workdir: Path, regression: str = "") -> tuple[Outcome, list[Point]]:
    """One incident through the platform, killed (or not) at one point."""
    from crashdiag.cloud.simulate import SimulatedCloud
    from crashdiag.cloud.store import LocalStore
    from crashdiag.notify.notifier import Notifier
    from crashdiag.pipeline.reconcile import Reconciler
    from crashdiag.pipeline.stages import OPEN, Pipeline
    from crashdiag.settings import Settings

    tap = Tap(scn.name, kill)
    plat = Platform(tap, scn.refuse_ingest)
    root = Path(tempfile.mkdtemp(dir=workdir))
    try:
        store = ChaosStore(LocalStore(root), tap, plat.oss_trigger)
        cloud = SimulatedCloud.from_dir(EVENTS / "instances")
        if scn.nothing_to_collect:
            cloud.instances[scn.instance].error_code, cloud.instances[scn.instance].console = "ClientNotResponse", None
        settings = Settings(collect_wait_seconds=60, collect_poll_seconds=1.0, collect_command_timeout=60, lang="en",
                            notify_burst=scn.burst)
        inbox: list = []
        channels = [Channel("dingtalk", tap, inbox), Channel("email", tap, inbox)]
        notifier = Notifier(store, settings, channels, now=plat, sleep=plat.sleep)
        p = Pipeline(store, ChaosEcs(cloud, tap), plat, settings, clock=plat, sleep=plat.sleep, notifier=notifier, wall=plat)
        if regression:
            _regress(p, regression)
        rec = Reconciler(p, workers=1)
        retries = fc_retries()

        def attempt(stage: str, fn) -> bool:
            tap.stage = stage
            try:
                fn()
                return True
            except Killed:
                return False
            except Exception:  # noqa: BLE001 - the platform sees a failed invocation
                return False

        # EventBridge: Executing, retried on failure; Executed a little later
        deliveries = [(EVENTS / scn.event).read_bytes()] + ([(EVENTS / scn.second).read_bytes()] if scn.second else [])
        for raw in deliveries:
            rid = plat.request_id()
            for _ in range(EVENTBRIDGE_TRIES):
                if attempt("ingest", lambda raw=raw, rid=rid: p.ingest(raw, owner=rid)):
                    break
                plat.sleep(10)
            plat.sleep(30)
            drain(p, plat, attempt, retries)
        for tick in range(1, 24 * 60):  # one simulated minute each, a day at most
            plat.sleep(60)
            drain(p, plat, attempt, retries)
            attempt("flush", p.flush_notifications)
            if tick % 5 == 0:
                attempt("reconcile", rec.run)
            drain(p, plat, attempt, retries)
            if not plat.queue and not store.list(OPEN) and tick > 20:
                break
        return judge(scn, tap, root, store, plat, inbox), tap.census
    finally:
        shutil.rmtree(root, ignore_errors=True)


def drain(p, plat: Platform, attempt, retries: int) -> None:
    """Run FC's queued async invocations; a failed one is retried up to ``retries`` times
    under its request id, then dropped (into the on-failure queue: nobody reads it)."""
    from crashdiag.pipeline.events import keys_of_trigger

    for _ in range(200):
        if not plat.queue:
            return
        job = plat.queue.pop(0)
        fn, payload, rid = job["function"], job["payload"], job["request_id"]
        if fn == "collect":
            ok = attempt("collect", lambda payload=payload, rid=rid: p.collect(payload, owner=rid))
        elif fn == "diagnose":
            ok = attempt("diagnose", lambda payload=payload, rid=rid: [p.diagnose(k, owner=rid) for k in keys_of_trigger(payload)])
        else:
            ok = attempt("notify", lambda payload=payload: [p.notify(k) for k in keys_of_trigger(payload)])
        if not ok and job["tries"] < retries:
            plat.sleep(30)
            plat.queue.append({**job, "tries": job["tries"] + 1})


def judge(scn: Scenario, tap: Tap, root: Path, store, plat: Platform, inbox: list) -> Outcome:
    prefixes = sorted({"/".join(k.split("/")[:4]) + "/" for k in store.list("incidents/")})
    if len(prefixes) != 1:
        return Outcome("none", lost=True, notes=[f"{len(prefixes)} incidents"])
    prefix = prefixes[0]
    report = None
    if store.exists(f"{prefix}report.json"):
        report = json.loads(store.get(f"{prefix}report.json"))
    if report is None:
        kind = "none"
    elif report.get("failure"):
        kind = "failure: " + report["failure"]["reason"][:40]
    else:
        kind = "diagnosis: " + report["diagnosis"]["kind"]
    out = Outcome(kind)
    if report is None:
        out.lost = True
        out.notes.append("no report.json")
    states = [k.rsplit("/", 1)[1] for k in store.list(f"{prefix}state/")]
    if "40-notified.json" not in states or store.list("open/") or plat.queue:
        out.stuck = True
        out.notes.append(f"states {states}, open {store.list('open/')}, queued {len(plat.queue)}")
    per_channel = Counter(name for name, _, _ in inbox)
    for name in ("dingtalk", "email"):
        n = per_channel.get(name, 0)
        if n == 0:
            out.lost = True
            out.notes.append(f"{name}: never told")
        elif n > 1:
            if name in tap.window_at_kill:  # killed between the provider's acceptance and the ledger's record
                out.resends += n - 1
            else:
                out.duplicates += n - 1
                out.notes.append(f"{name}: told {n} times")
    return out


def _regress(p, name: str) -> None:
    """Deliberate regressions, to show the harness can fail (``--regress``)."""
    from crashdiag.pipeline.stages import ClaimHeld

    if name == "no-takeover":  # an expired lease is never taken over
        original = p.claim

        def claim(prefix, stage, owner, lease, max_attempts):
            if p.claims(prefix, stage):
                raise ClaimHeld("regression: no takeover")
            return original(prefix, stage, owner, lease, max_attempts)

        p.claim = claim
    elif name == "no-reconciler":
        from crashdiag.pipeline import reconcile

        reconcile.Reconciler.run = lambda self: {}
    else:
        raise SystemExit(f"unknown regression {name}")


def kills_for(points: list[Point]) -> list[Kill]:
    out = []
    for pt in dict.fromkeys(points):
        out += [Kill(pt, "before"), Kill(pt, "after")]
        if pt.op == "put-once":
            out.append(Kill(pt, "lost-reply"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    ap.add_argument("--every", type=int, default=1, help="take every n-th crash point (a quick subset)")
    ap.add_argument("--regress", default="", help="run with a deliberate regression: no-takeover, no-reconciler")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failing run")
    a = ap.parse_args(argv)
    import logging

    logging.getLogger("crashdiag").setLevel(logging.CRITICAL)
    res = chaos([SCENARIOS[s] for s in (a.scenario or sorted(SCENARIOS))], every=a.every, regression=a.regress)
    print(res.table(verbose=a.verbose))
    return 0 if res.ok else 1


@dataclass
class ChaosResult:
    rows: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[str] = field(default_factory=list)
    points: int = 0
    runs: int = 0
    wall_s: float = 0.0

    def count(self, stage: str, what: str, n: int = 1) -> None:
        self.rows[stage][what] += n

    @property
    def lost(self) -> int:
        return sum(r["lost"] for r in self.rows.values())

    @property
    def stuck(self) -> int:
        return sum(r["stuck"] for r in self.rows.values())

    @property
    def duplicates(self) -> int:
        return sum(r["duplicates"] for r in self.rows.values())

    @property
    def ok(self) -> bool:
        return self.lost == self.stuck == self.duplicates == 0

    def table(self, verbose: bool = False) -> str:
        out = ["| stage | crash points | runs | lost | stuck | duplicate notices | resent after a kill past the provider |",
               "|---|---|---|---|---|---|---|"]
        for stage in STAGES:
            r = self.rows.get(stage, Counter())
            out.append(f"| {stage} | {r['points']} | {r['runs']} | {r['lost']} | {r['stuck']} | {r['duplicates']} | {r['resends']} |")
        if verbose or not self.ok:
            out += [""] + self.failures[:60]
        resends = sum(r["resends"] for r in self.rows.values())
        out.append("")
        out.append(f"resent: {resends} (a kill after DingTalk or the mail server accepted a message and before the ledger recorded "
                   "it: the next attempt cannot know, and sends again rather than risk telling no one)")
        out.append(f"wall time {self.wall_s:.0f} s")
        out.append(f"chaos: {self.points} crash points, {self.runs} runs, lost {self.lost}, stuck {self.stuck}, "
                   f"duplicate notices {self.duplicates}")
        return "\n".join(out)


def chaos(scenarios: list[Scenario], *, every: int = 1, regression: str = "") -> ChaosResult:
    res = ChaosResult()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        work = Path(tmp)
        for scn in scenarios:
            clean, census = run(scn, None, workdir=work)
            if clean.lost or clean.stuck or clean.duplicates:
                res.failures.append(f"{scn.name}: the run without a kill fails: {clean.notes}")
                res.count("ingest", "lost")
                continue
            points = list(dict.fromkeys(census))[::max(1, every)]
            for pt in points:
                res.points += 1
                res.count(pt.stage, "points")
            for k in kills_for(points):
                o, _ = run(scn, k, workdir=work, regression=regression)
                res.runs += 1
                st = k.point.stage
                res.count(st, "runs")
                if o.kind != clean.kind:
                    o.lost = True
                    o.notes.append(f"ended as {o.kind!r}, not {clean.kind!r}")
                res.count(st, "lost", int(o.lost))
                res.count(st, "stuck", int(o.stuck))
                res.count(st, "duplicates", o.duplicates)
                res.count(st, "resends", o.resends)
                if o.lost or o.stuck or o.duplicates:
                    res.failures.append(f"{scn.name} | {k.point.label} | {k.when}: {'; '.join(o.notes)}")
    res.wall_s = time.perf_counter() - t0
    return res


if __name__ == "__main__":
    sys.exit(main())
