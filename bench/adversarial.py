"""Hostile logs (issue #11): the worst time any catalogue pattern's trap text costs.

For every pattern of every rule file, the trap texts of tests/hostile.py (the shortest
text the pattern matches and each piece of it before an unbounded repeat) are repeated
into one line of SIZE bytes and placed before, inside and after the rule's own positive
fixture; each log is classified and timed. Then the worst piece, the review's two traps
(160 KB of "XFS: " grown to 5 MB; the IPv6 candidate "a:a:...g") and a 5 MB log of short
hostile lines go through classification alone and through diagnose + notify with
CRASHDIAG_REDACT=1 (a local store and the outbox). Targets: 3 s to classify, 5 s through
diagnose and notify, for any input up to 5 MB.

    python bench/adversarial.py [--size BYTES] [--top N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "tests"))

BIG = 5 * 1024 * 1024


def _timed(fn, *args, **kw) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def per_pattern(size: int) -> list[tuple[float, str, str, str, str]]:
    """(seconds, rule, pattern, piece, where) for the slowest placement of each pattern."""
    from corpus import load_case
    from crashdiag.classifier.classify import classify_bytes
    from hostile import catalogue_patterns, hostile_line, place, positive_fixture, trap_texts

    rows = []
    fixtures: dict[str, tuple[bytes, int]] = {}
    for t in catalogue_patterns():
        if t.rule not in fixtures:
            log = load_case(positive_fixture(t.rule)).log
            fixtures[t.rule] = (log, (classify_bytes(log).get("crash") or {}).get("line") or 1)
        log, at = fixtures[t.rule]
        worst = (0.0, "", "")
        for piece in trap_texts(t.pattern):
            line = hostile_line(piece, size)
            for where in ("before", "inside", "after"):
                s, _ = _timed(classify_bytes, place(log, line, where, at))
                worst = max(worst, (s, piece, where))
        rows.append((worst[0], t.rule, t.pattern, worst[1], worst[2]))
    rows.sort(reverse=True)
    return rows


def big_inputs(worst_piece: str, worst_rule: str) -> dict[str, bytes]:
    from corpus import load_case
    from hostile import hostile_line, place, positive_fixture

    bad_page = load_case(ROOT / "tests" / "cases" / "public" / "other-rhel7.7-azure-bad-page-state-omicli.txt").log
    fixture = load_case(positive_fixture(worst_rule)).log
    ipv6 = ("a:" * (BIG // 2) + "g").encode()
    short_lines = b"".join(b"[  100.000000] XFS: a:a:a:a:a:a:a:a:g 10.0.0.1 password=x " + b"XFS: " * 30 + b"\n"
                           for _ in range(BIG // 220))
    return {
        f"worst catalogue piece {worst_piece[:30]!r} ({worst_rule}), one 5 MB line": place(fixture, hostile_line(worst_piece, BIG), "inside", 1),
        "'XFS: ' x 5 MB inside a generic report": place(bad_page, hostile_line("XFS: ", BIG), "inside", 1),
        "IPv6 candidate 'a:a:...g', one 5 MB line": place(bad_page, ipv6.decode(), "inside", 1),
        "5 MB of short hostile lines (XFS, IPv6, IPv4, password=)": bad_page + b"\n" + short_lines,
    }


def through_pipeline(name: str, data: bytes) -> float:
    """Seconds for diagnose + notify of one inbox log, CRASHDIAG_REDACT=1, outbox channel."""
    from crashdiag.cloud.store import LocalStore
    from crashdiag.pipeline.stages import Pipeline
    from crashdiag.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"CRASHDIAG_REDACT": "1"}, store_dir=f"{tmp}/store", outbox_dir=f"{tmp}/outbox")
        store = LocalStore(f"{tmp}/store")
        key = "inbox/hostile.log"
        store.put(key, data)
        pipe = Pipeline(store, None, None, settings)
        t = time.perf_counter()
        pipe.diagnose(key)
        pipe.notify(f"reports/{key}/report.json")
        return time.perf_counter() - t


def run(size: int = 300_000, top: int = 5) -> list[tuple[str, str, str, str]]:
    """Rows for bench/run.py's table: (measure, ours, reference, note)."""
    from crashdiag.classifier.classify import classify_bytes

    logging.getLogger("crashdiag").setLevel(logging.ERROR)
    rows = per_pattern(size)
    out = []
    n = len(rows)
    for s, rule, pattern, piece, where in rows[:top]:
        out.append((f"hostile line {size // 1000} KB: {rule} {pattern[:40]!r}, piece {piece[:24]!r} {where}",
                    f"{s * 1000:.0f} ms", f"worst of 3 placements; {n} patterns", "outcome checked in tests/test_hostile.py"))
    _, worst_rule, _, worst_piece, _ = rows[0]
    for name, data in big_inputs(worst_piece, worst_rule).items():
        c, result = _timed(classify_bytes, data)
        p = through_pipeline(name, data)
        out.append((f"hostile 5 MB: {name}", f"classify {c:.2f} s; diagnose+notify (redact) {p:.2f} s",
                    f"kind {result['kind']}", "target 3 s / 5 s: " + ("PASS" if c <= 3 and p <= 5 else "FAIL")))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=300_000, help="bytes of each per-pattern hostile line")
    ap.add_argument("--top", type=int, default=5, help="how many of the slowest patterns to show")
    args = ap.parse_args()
    for row in run(args.size, args.top):
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
