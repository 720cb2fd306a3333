"""collect against an instance that is saving a kdump capture (issue: waiting is a state).

The simulated instance spends its first minutes after the crash in the capture kernel
(ECS Running, agent offline, the console showing makedumpfile's progress); these tests
drive the real Collector over it with a wall clock the test moves.
"""

from __future__ import annotations

from pathlib import Path

from crashdiag.cloud.simulate import SimulatedCloud
from crashdiag.pipeline.collect import Collector, GuestWait
from crashdiag.settings import Settings

INSTANCES = Path(__file__).resolve().parents[1] / "events" / "instances"
REGION = "cn-hangzhou"


class Wall:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def collector(cloud, wall, settings, previous=None, deadline_after=7200.0, started=None):
    started = wall() if started is None else started
    wait = GuestWait(now=wall(), deadline=started + deadline_after, stall_seconds=settings.capture_stall_minutes * 60,
                     previous=previous)
    slept = []
    c = Collector(cloud, settings, clock=wall, sleep=lambda s: (slept.append(s), setattr(wall, "t", wall.t + s)), wait=wait)
    return c, slept


def run(c, instance):
    return c.collect(REGION, instance, 0, upload=lambda ttl, public=False: None)


def test_a_capture_in_progress_is_waited_for_without_sleeping():
    wall = Wall()
    cloud = SimulatedCloud.from_dir(INSTANCES, clock=wall)
    s = Settings(collect_poll_seconds=0.01)
    c, slept = collector(cloud, wall, s)
    r = run(c, "i-bp1bigcapture0007")
    assert r["waiting"]["capture"]["phase"] in ("saving_vmcore", "capture_booting")
    assert r["waiting"]["memory_gib"] == 512 and r["waiting"]["checks"] == 1
    assert r["failure"] is None and r["method"] is None
    assert slept == []  # no idle wait inside the function
    assert ("RunCommand", "i-bp1bigcapture0007") not in cloud.calls


def test_the_capture_ends_and_the_log_is_collected_from_vmcore_dmesg():
    wall = Wall()
    cloud = SimulatedCloud.from_dir(INSTANCES, clock=wall)
    s = Settings(collect_poll_seconds=0.01)
    first, _ = collector(cloud, wall, s)
    r = run(first, "i-bp1bigcapture0007")
    prev = r["waiting"]
    # three function timeouts later, still capturing, with progress
    wall.t += 1800
    r2 = run(collector(cloud, wall, s, previous=prev, started=prev["first_seen"])[0], "i-bp1bigcapture0007")
    assert r2["waiting"]["checks"] == 2 and r2["waiting"]["token"] != prev["token"]
    # after the capture (5,400 s) the guest answers
    wall.t += 4000
    r3 = run(collector(cloud, wall, s, previous=r2["waiting"], started=prev["first_seen"])[0], "i-bp1bigcapture0007")
    assert "waiting" not in r3
    assert r3["method"] == "kdump" and b"blk_mq_rq_timed_out" in r3["_log"]


def test_a_hung_capture_ends_on_the_console_with_the_reason():
    wall = Wall()
    cloud = SimulatedCloud.from_dir(INSTANCES, clock=wall)
    s = Settings(collect_poll_seconds=0.01, collect_wait_seconds=30, capture_stall_minutes=20)
    r = run(collector(cloud, wall, s)[0], "i-bp1capturehung09")
    prev = r["waiting"]
    for _ in range(6):  # the console stops at 37% and stays there
        wall.t += 600
        r = run(collector(cloud, wall, s, previous=prev, started=prev["first_seen"])[0], "i-bp1capturehung09")
        if "waiting" not in r:
            break
        prev = r["waiting"]
    assert "waiting" not in r
    assert r["method"] == "console"
    assert any("no progress" in n and "hung" in n for n in r["notes"])
    assert b"blk_mq_rq_timed_out" in r["_log"]  # the panic is still on the console


def test_at_the_deadline_the_console_is_diagnosed_with_the_reason():
    wall = Wall()
    cloud = SimulatedCloud.from_dir(INSTANCES, clock=wall)
    s = Settings(collect_poll_seconds=0.01, collect_wait_seconds=30, capture_stall_minutes=10_000)
    r = run(collector(cloud, wall, s, deadline_after=3000)[0], "i-bp1bigcapture0007")
    prev = r["waiting"]
    wall.t += 3001
    r = run(collector(cloud, wall, s, previous=prev, started=prev["first_seen"], deadline_after=3000)[0],
            "i-bp1bigcapture0007")
    assert "waiting" not in r and r["method"] == "console"
    assert any("deadline" in n for n in r["notes"])


def test_a_failed_capture_still_leaves_vmcore_dmesg():
    wall = Wall()
    cloud = SimulatedCloud.from_dir(INSTANCES, clock=wall)
    s = Settings(collect_poll_seconds=0.01)
    r = run(collector(cloud, wall, s)[0], "i-bp1capturefail08")
    prev = r["waiting"]
    wall.t += 1600  # the capture gave up at 61% and rebooted
    r = run(collector(cloud, wall, s, previous=prev, started=prev["first_seen"])[0], "i-bp1capturefail08")
    assert "waiting" not in r and r["method"] == "kdump"


def test_without_a_wait_the_collector_behaves_as_before():
    wall = Wall()
    cloud = SimulatedCloud.from_dir(INSTANCES, clock=wall)
    s = Settings(collect_poll_seconds=0.01, collect_wait_seconds=30)
    c = Collector(cloud, s, clock=wall, sleep=lambda x: setattr(wall, "t", wall.t + x))
    r = run(c, "i-bp1bigcapture0007")
    assert "waiting" not in r and r["method"] == "console"
