"""`make storm`: a crash storm through the pipeline, against the local stand-ins.

500 events (by default) for 300 distinct instances: duplicates and redeliveries, both
event forms, both statuses, 10% malformed, a mix of crash kinds (the six simulated
instance templates in events/instances/) and of collection outcomes (kdump, journal,
syslog, serial console, nothing at all). They go through the real pipeline with a pool of
workers, over real HTTP: oss2 → OSS stand-in, the ECS SDK → ECS stand-in (which runs the
real guest script), and FC's async invocation run in-line by the worker.

Notifications go to a DingTalk robot stand-in (signature checked, 20 messages a minute
enforced with errcode 130101) and an SMTP stand-in, with the notify stage run for every
report and the outbox flushed each (simulated) minute until nothing is owed.

Pass condition: every valid event is accounted for exactly once (one incident per eventId,
each ending in a report or a recorded failure), duplicates are suppressed, every malformed
event is recorded, every incident is told on both channels, no channel sends one incident
twice, and the robot never answers 130101 (never more than 20 messages a minute). Prints a
summary table; exits non-zero when the condition fails.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "shared", ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

TEMPLATES = ["i-bp1kdumpel7demo01", "i-bp1oompanic0002", "i-bp1ubuntu0000003", "i-bp1bootloop00004",
             "i-bp1journalonly05", "i-bp1bigmessages06"]


@dataclass
class StormResult:
    events_in: int = 0
    valid_events: int = 0
    distinct_incidents: int = 0
    incidents_created: int = 0
    duplicates_suppressed: int = 0
    skipped: int = 0
    rejected: int = 0
    rejected_recorded: int = 0
    reports: int = 0
    failures: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    methods: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    robot_messages: int = 0
    robot_max_per_minute: int = 0
    robot_throttled: int = 0
    emails: int = 0
    incidents_told: int = 0
    flushes: int = 0
    deaths: int = 0
    dropped_deliveries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> str:
        rows = [
            ("events in", self.events_in), ("valid crash events", self.valid_events),
            ("incidents created", self.incidents_created), ("distinct eventIds", self.distinct_incidents),
            ("duplicates suppressed", self.duplicates_suppressed), ("skipped (not a crash)", self.skipped),
            ("malformed, recorded", f"{self.rejected_recorded}/{self.rejected}"), ("reports written", self.reports),
            ("recorded failures", sum(self.failures.values())),
            ("incidents told (both channels)", self.incidents_told),
            ("robot messages (max in one minute)", f"{self.robot_messages} ({self.robot_max_per_minute})"),
            ("robot throttled (130101)", self.robot_throttled), ("emails", self.emails),
            ("outbox flushes", self.flushes), ("invocations that died", self.deaths),
            ("wall time", f"{self.wall_s:.1f} s"), ("events per second", f"{self.events_in / max(self.wall_s, 1e-9):.1f}"),
        ]
        out = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
        out.append("")
        out.append("kinds: " + ", ".join(f"{k} {v}" for k, v in self.kinds.most_common()))
        out.append("collected from: " + ", ".join(f"{k} {v}" for k, v in self.methods.most_common()))
        for reason, n in self.failures.most_common():
            out.append(f"failure x{n}: {reason}")
        out.append("PASS" if self.ok else "FAIL:\n  " + "\n  ".join(self.problems))
        return "\n".join(out)


def make_events(n_events: int, n_instances: int, seed: int = 7) -> tuple[list[bytes], dict[str, str]]:
    """Events plus the instance -> template map they refer to."""
    rnd = random.Random(seed)
    instances = {f"i-storm{i:08d}": TEMPLATES[i % len(TEMPLATES)] for i in range(n_instances)}
    ids = list(instances)
    events: list[bytes] = []
    n_malformed = n_events // 10
    valid_budget = n_events - n_malformed
    # Every instance crashes once; the rest of the budget is redeliveries and the other status.
    base = []
    for i, inst in enumerate(ids):
        base.append((inst, f"e-storm{i:08d}"))
    while len(events) < valid_budget:
        inst, eid = base[len(events)] if len(events) < len(base) else rnd.choice(base)
        status = rnd.choice(["Executing", "Executed"])
        form = rnd.choice(["eventbridge", "cloudmonitor"])
        code = "SystemFailure.Reboot" if instances[inst] == "i-bp1bootloop00004" else "InstanceFailure.Reboot"
        events.append(_event(form, eid, inst, status, code))
    for i in range(n_malformed):
        kind = i % 4
        if kind == 0:
            events.append(b'{"specversion": "1.0", "source": "acs.ecs", "data": ')
        elif kind == 1:
            events.append(_event("eventbridge", f"e-bad{i:06d}", "i-NOT;valid", "Executing"))
        elif kind == 2:
            events.append(json.dumps({"specversion": "1.0", "id": f"w{i}", "source": "acs.rds", "data": {}}).encode())
        else:
            events.append(json.dumps([1, 2, 3]).encode())
    rnd.shuffle(events)
    return events, instances


def _event(form: str, eid: str, inst: str, status: str, code: str = "InstanceFailure.Reboot") -> bytes:
    details = {"eventId": eid, "instanceId": inst, "eventType": code, "eventStatus": status,
               "publishTime": "2026-11-26T10:02:31Z", "executeStartTime": "2026-11-26T10:00:01Z"}
    if form == "eventbridge":
        ev = {"specversion": "1.0", "id": f"eb-{eid}-{status}", "source": "acs.ecs", "type": f"ecs:Instance:{code}",
              "subject": f"acs:ecs:cn-hangzhou:1234567890123456:instance/{inst}", "aliyunregionid": "cn-hangzhou",
              "data": details}
    else:
        ev = {"product": "ECS", "resourceId": f"acs:ecs:cn-hangzhou:1234567890123456:instance/{inst}",
              "regionId": "cn-hangzhou", "name": f"Instance:{code}:{status}", "id": f"cm-{eid}-{status}", "content": details}
    return json.dumps(ev).encode()


def build_cloud(instances: dict[str, str]):
    from crashdiag.cloud.simulate import SimInstance, SimulatedCloud

    templates = {t: SimInstance.from_dir(ROOT / "events" / "instances" / t) for t in TEMPLATES}
    cloud = {}
    for inst, t in instances.items():
        tpl = templates[t]
        cloud[inst] = SimInstance(inst, tpl.region, tpl.root, tpl.name, list(tpl.statuses), tpl.agent_online,
                                  tpl.running_polls, tpl.error_code, tpl.console)
    # A few collection outcomes beyond the templates': nothing at all to collect.
    for inst in list(cloud)[5::37]:
        cloud[inst].error_code, cloud[inst].console = "ClientNotResponse", None
    return SimulatedCloud(cloud)


class Wall:
    """The notifier's and the robot stand-in's clock: real time plus what the storm skips
    ahead between outbox flushes (the timer function runs once a minute)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.offset += seconds


class Killed(BaseException):
    """An invocation dies here (timeout, out of memory): nothing in the pipeline catches it."""


class DyingStore:
    """The store, with ``rate`` of the invocations dying at one of their writes (before or
    after it, at random). Which invocation is running is kept per thread."""

    def __init__(self, inner, rate: float, seed: int = 11) -> None:
        import threading

        self.inner, self.rate = inner, rate
        self.rnd = random.Random(seed)
        self.local = threading.local()
        self.lock = threading.Lock()
        self.deaths = 0

    def begin(self) -> None:
        """A new invocation starts on this thread: is it one that dies, and where?"""
        with self.lock:
            doomed = self.rnd.random() < self.rate
            self.local.countdown = self.rnd.randint(0, 12) if doomed else -1
            self.local.after = self.rnd.random() < 0.5

    def _maybe_die(self, when: str) -> None:
        if getattr(self.local, "countdown", -1) == 0 and (when == "after") == self.local.after:
            self.local.countdown = -1
            with self.lock:
                self.deaths += 1
            raise Killed()

    def _step(self) -> None:
        if getattr(self.local, "countdown", -1) > 0:
            self.local.countdown -= 1

    def put(self, key, data, **kw):
        self._maybe_die("before")
        self.inner.put(key, data, **kw)
        self._maybe_die("after")
        self._step()

    def delete(self, key):
        self._maybe_die("before")
        self.inner.delete(key)
        self._maybe_die("after")
        self._step()

    def __getattr__(self, name):
        return getattr(self.inner, name)


class FunctionCompute:
    """What the platform does with invocations: FC runs an async invocation and retries it
    (MaxAsyncRetryAttempts 2) when it fails or dies; EventBridge redelivers a failed event
    (3 tries); OSS triggers fire on crash.log and report.json. Every invocation may die
    (``DyingStore``)."""

    RETRIES, EB_TRIES = 2, 3

    def __init__(self, pipeline, store, res) -> None:
        self.p, self.store, self.res = pipeline, store, res
        self.ids = __import__("itertools").count(1)

    def _run(self, fn) -> tuple[bool, object]:
        if isinstance(self.store, DyingStore):
            self.store.begin()
        try:
            return True, fn()
        except Killed:
            return False, None
        except Exception:  # noqa: BLE001 - a failed invocation: the platform retries it
            return False, None
        finally:
            if isinstance(self.store, DyingStore):
                self.store.local.countdown = -1

    def eventbridge(self, raw: bytes):
        rid = f"eb-{next(self.ids)}"
        for _ in range(self.EB_TRIES):
            ok, summary = self._run(lambda: self.p.ingest(raw, owner=rid))
            if ok:
                return summary
        self.res.dropped_deliveries += 1
        return None

    def invoke_async(self, function: str, payload: bytes) -> None:
        from crashdiag.pipeline.events import keys_of_trigger

        rid = f"fc-{next(self.ids)}"
        if function == "collect":
            ref = json.loads(payload)
            prefix = f"incidents/{ref['region']}/{ref['instance_id']}/{ref['incident_id']}/"
            self._async(lambda: self.p.collect(ref, owner=rid))
            if self.store.exists(f"{prefix}crash.log"):
                self.invoke_async("diagnose", json.dumps({"key": f"{prefix}crash.log"}).encode())
            elif self.store.exists(f"{prefix}report.json"):
                self.invoke_async("notify", json.dumps({"key": f"{prefix}report.json"}).encode())
        elif function == "diagnose":
            (key,) = keys_of_trigger(payload)
            self._async(lambda: self.p.diagnose(key, owner=rid))
            if self.store.exists(key.replace("crash.log", "report.json")):  # the OSS trigger on report.json
                self.invoke_async("notify", json.dumps({"key": key.replace("crash.log", "report.json")}).encode())
        else:
            (key,) = keys_of_trigger(payload)
            self._async(lambda: self.p.notify(key))

    def _async(self, fn) -> None:
        for _ in range(1 + self.RETRIES):
            if self._run(fn)[0]:
                return

    def timer(self, name: str, fn):
        ok, out = self._run(fn)
        return out if ok else True  # a timer that died may still owe something: go round again


def run_storm(n_events: int = 500, n_instances: int = 300, workers: int = 8, store=None, deaths: float = 0.0,
              seed: int = 11) -> StormResult:
    """Run a storm against fresh stand-ins (or an injected store) and check the outcome;
    ``deaths``: the share of invocations that die at a random write."""
    from crashdiag.cloud.ecs_sdk import SdkEcsApi
    from crashdiag.pipeline.stages import Pipeline
    from crashdiag.settings import Settings
    from standins.ecs import STANDIN_KEY_ID, STANDIN_SECRET, EcsStandIn

    events, instances = make_events(n_events, n_instances)
    cloud = build_cloud(instances)
    oss = None
    if store is None:
        from crashdiag.cloud.credentials import Credentials
        from crashdiag.cloud.oss_store import OssStore
        from standins.oss import OssStandIn

        oss = OssStandIn(keys={"storm": "storm"}, region="cn-hangzhou").start()
        bucket = f"storm-{random.Random().getrandbits(32):08x}"  # the stand-in's backend outlives it within a process
        oss.create_bucket(bucket)
        store = OssStore.connect(oss.endpoint, bucket, Credentials("storm", "storm"), region="cn-hangzhou")
    res = StormResult(events_in=len(events))
    import urllib.request

    from crashdiag.notify import build_notifier
    from standins.dingtalk import DingTalkStandIn
    from standins.smtp import SmtpStandIn

    wall = Wall()
    try:
        with EcsStandIn(cloud) as ecs_server, DingTalkStandIn(secret="SECstorm-signing", clock=wall) as robot, \
                SmtpStandIn("none") as smtp:
            ecs = SdkEcsApi(access_key_id=STANDIN_KEY_ID, access_key_secret=STANDIN_SECRET, endpoint=ecs_server.endpoint,
                            protocol="http", read_timeout=60, attempts=5, deadline=120, backoff_initial=0.05, backoff_max=0.5)
            # Simulated guests answer at once: a short budget keeps agent-offline waits short.
            settings = Settings(collect_wait_seconds=8, collect_poll_seconds=0.02, collect_command_timeout=60,
                                dingtalk_webhook=robot.webhook, dingtalk_secret=robot.secret, smtp_host="127.0.0.1",
                                smtp_port=smtp.port, smtp_security="none", mail_from="crashdiag@example.com",
                                mail_to="oncall@example.com")
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            notifier = build_notifier(settings, store, now=wall, sleep=wall.sleep, opener=direct)
            if deaths:
                store = DyingStore(store, deaths, seed=seed)
                notifier = build_notifier(settings, store, now=wall, sleep=wall.sleep, opener=direct)
            pipeline = Pipeline(store, ecs, None, settings, notifier=notifier, wall=wall)
            fc = FunctionCompute(pipeline, store, res)
            pipeline.invoker = fc
            t0 = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                summaries = [s for s in pool.map(lambda raw: fc.eventbridge(raw), events) if s is not None]
            # The notify_flush timer, once a minute, until the outbox owes nothing; the
            # reconcile timer every five, until no incident is left open.
            from crashdiag.pipeline.reconcile import Reconciler

            reconciler = Reconciler(pipeline)
            for tick in range(1, 400):
                wall.sleep(61)
                res.flushes += 1
                flushed = fc.timer("flush", pipeline.flush_notifications)
                if tick % 5 == 0:
                    fc.timer("reconcile", reconciler.run)
                if not flushed and not store.list("open/") and (not deaths or tick >= 5):
                    break
            res.wall_s = time.perf_counter() - t0
            if isinstance(store, DyingStore):
                res.deaths = store.deaths
                store = store.inner
            _account(res, summaries, store, events, deaths=bool(deaths))
            _account_notifications(res, robot, smtp, store)
    finally:
        if oss is not None:
            oss.stop()
    return res


def _account(res: StormResult, summaries, store, events, deaths: bool = False) -> None:
    from crashdiag.pipeline.events import Accepted, parse_events

    valid_ids = set()
    for raw in events:
        for o in parse_events(raw):
            if isinstance(o, Accepted):
                res.valid_events += 1
                valid_ids.add(o.event.prefix)
    res.distinct_incidents = len(valid_ids)
    created = [p for s in summaries for p in s.accepted]
    if deaths:  # an ingest that died after its claim is finished by a redelivery ("resumed") or the reconciler
        created = sorted(set(created) | {p for s in summaries for p in s.resumed}
                         | {k.rsplit("/", 1)[0] + "/" for k in store.list("incidents/") if k.endswith("/event.json")})
    res.incidents_created = len(created)
    # a delivery racing the first one may find the claim before collect was confirmed started
    # and start it again ("resumed"): still one incident, the delivery a duplicate
    res.duplicates_suppressed = sum(len(s.duplicates) + len(s.resumed) for s in summaries)
    res.skipped = sum(len(s.skipped) for s in summaries)
    res.rejected = sum(len(s.rejected) for s in summaries)
    res.rejected_recorded = sum(1 for s in summaries for r in s.rejected if store.exists(r["record"]))
    if len(created) != len(set(created)):
        res.problems.append("an incident was created twice")
    if set(created) != valid_ids:
        res.problems.append(f"{len(valid_ids - set(created))} valid incidents were never created")
    if not deaths and res.incidents_created + res.duplicates_suppressed != res.valid_events:
        res.problems.append("valid events do not add up to incidents + duplicates")
    for prefix in sorted(valid_ids):
        if not store.exists(f"{prefix}state/40-notified.json"):
            res.problems.append(f"{prefix} never reached notified")
    if store.list("open/"):
        res.problems.append(f"{len(store.list('open/'))} incidents left open")
    if res.rejected_recorded != res.rejected:
        res.problems.append("a malformed event was not recorded")
    for prefix in sorted(valid_ids):
        if store.exists(f"{prefix}report.json"):
            rep = json.loads(store.get(f"{prefix}report.json"))
            if rep.get("failure"):  # a failed collection's report (it is notified too)
                res.failures[rep["failure"]["reason"]] += 1
                continue
            res.reports += 1
            res.kinds[rep["diagnosis"]["kind"]] += 1
            res.methods[rep["collection"]["method"]] += 1
        elif store.exists(f"{prefix}state/90-failed.json"):
            res.failures[json.loads(store.get(f"{prefix}state/90-failed.json"))["reason"]] += 1
        else:
            res.problems.append(f"{prefix} ended neither in a report nor in a recorded failure")


def _account_notifications(res: StormResult, robot, smtp, store) -> None:
    from collections import Counter as _Counter

    res.robot_messages = len(robot.messages)
    res.emails = len(smtp.received)
    res.robot_throttled = robot.answered(130101)
    per_minute = _Counter(int(r.at // 60) for r in robot.requests if r.status == 200 and r.errcode == 0)
    res.robot_max_per_minute = max(per_minute.values(), default=0)
    if res.robot_throttled:
        res.problems.append(f"the robot answered 130101 (over 20 messages a minute) {res.robot_throttled} times")
    for key in store.list("incidents/"):
        if not key.endswith("/notify.json"):
            continue
        doc = json.loads(store.get(key))
        sent = {name: sum(1 for a in ch.get("attempts", []) if a.get("outcome") == "sent") for name, ch in doc["channels"].items()}
        if any(n > 1 for n in sent.values()):
            res.problems.append(f"{doc['incident']} was sent more than once: {sent}")
        if all(ch.get("status") == "sent" for ch in doc["channels"].values()):
            res.incidents_told += 1
    expected = res.reports + sum(res.failures.values())
    if res.incidents_told != expected:
        res.problems.append(f"{expected - res.incidents_told} incidents were not told on both channels")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--instances", type=int, default=300)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--deaths", type=float, default=0.0, help="share of invocations that die at a random write (0.05: 5%%)")
    a = ap.parse_args()
    import logging

    logging.getLogger("crashdiag").setLevel(logging.ERROR)  # the table counts rejections
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the stand-ins' access logs
    res = run_storm(a.events, a.instances, a.workers, deaths=a.deaths)
    print(res.table())
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
