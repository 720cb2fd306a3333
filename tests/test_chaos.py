"""A quick subset of `make chaos` (bench/chaos.py): kills at a sample of crash points of one
incident, then the platform's retries, redeliveries, triggers and timers; nothing may be
lost, left open or told twice. And the harness can fail: with a deliberate regression it
reports losses."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import chaos  # noqa: E402


def test_chaos_subset_loses_nothing_and_tells_once():
    res = chaos.chaos([chaos.SCENARIOS["direct"], chaos.SCENARIOS["failure"]], every=4)
    assert res.points >= 15 and res.runs >= 2 * res.points
    assert res.ok, res.table(verbose=True)
    for stage in ("ingest", "collect", "diagnose", "notify"):
        assert res.rows[stage]["runs"] > 0, stage
    assert res.table().splitlines()[-1].startswith(f"chaos: {res.points} crash points, {res.runs} runs, lost 0, stuck 0")


def test_chaos_catches_a_claim_that_is_never_taken_over(tmp_path):
    """Remove the lease takeover: an incident whose collect died after its claim ends as a
    failure instead of a diagnosis, and the harness says it was lost."""
    scn = chaos.SCENARIOS["direct"]
    clean, census = chaos.run(scn, None, workdir=tmp_path)
    claim = next(p for p in census if p.stage == "collect" and p.what.endswith("claims/collect/001.json"))
    out, _ = chaos.run(scn, chaos.Kill(claim, "after"), workdir=tmp_path, regression="no-takeover")
    assert out.kind != clean.kind and out.kind.startswith("failure"), out
    good, _ = chaos.run(scn, chaos.Kill(claim, "after"), workdir=tmp_path)
    assert good.kind == clean.kind and not (good.lost or good.stuck or good.duplicates), good
