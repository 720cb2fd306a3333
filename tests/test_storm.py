"""A small crash storm through the pipeline over the stand-ins (`make storm` runs 500)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from storm import run_storm  # noqa: E402


def test_storm_accounts_for_every_event_exactly_once():
    res = run_storm(n_events=80, n_instances=40, workers=6)
    assert res.ok, res.table()
    assert res.incidents_created == res.distinct_incidents == 40
    assert res.duplicates_suppressed == res.valid_events - 40 > 0
    assert res.rejected == res.rejected_recorded >= 8  # a batch [1, 2, 3] is three rejections
    assert res.reports + sum(res.failures.values()) == 40
    assert {"kdump", "journal", "messages", "console"} <= set(res.methods)
    # Notifications: everyone told once on both channels, the robot never over its limit.
    assert res.incidents_told == 40 and res.robot_throttled == 0
    assert res.robot_max_per_minute <= 20 and res.robot_messages < 40


def test_storm_with_deaths_still_reports_and_tells_every_incident():
    """A fifth of the invocations die at a random write (make storm runs 5% of 500): FC's
    retries, EventBridge's redeliveries and the reconciler still bring every incident to a
    report or a recorded failure, told on both channels, once in the ledger."""
    res = run_storm(n_events=60, n_instances=30, workers=4, deaths=0.2, seed=5)
    assert res.deaths > 0
    assert res.ok, res.table()
    assert res.reports + sum(res.failures.values()) == 30 == res.incidents_told
