"""Property tests: no input makes the classifier raise anything but LogInputError."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import load_case
from crashdiag.classifier.classify import classify_bytes
from crashdiag.classifier.logtext import LogInputError

CASES = Path(__file__).with_name("cases")
REAL = [load_case(p).log for p in sorted((CASES / "seed").glob("*.txt"))[:8]]
KEYS = {"kind", "title", "fingerprint", "rule", "fix_status", "kernel", "crash", "modules", "reports"}


def _classify(data: bytes) -> dict | None:
    try:
        r = classify_bytes(data)
    except LogInputError as exc:
        assert str(exc)  # a reason, always
        return None
    assert KEYS <= r.keys()
    assert isinstance(r["title"], str)
    return r


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _classify(data)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=3000))
def test_random_text(text):
    _classify(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(REAL) - 1), st.randoms(use_true_random=False), st.integers(1, 30))
def test_mangled_real_logs(i, rnd: random.Random, edits):
    lines = REAL[i].split(b"\n")
    junk = [b"", b"...", b"Call Trace:", b"RIP: 0010:", b"Modules linked in:", b"CPU: x PID: y Comm:", b"\xff\xfe",
            b"Kernel panic - not syncing:", b"[ 1.0] ", b"<IRQ>", b"BUG: ", b"---[ end trace", b"\x1b[", b"Tainted:"]
    for _ in range(edits):
        op = rnd.randrange(4)
        pos = rnd.randrange(len(lines) + 1)
        if op == 0 and lines:
            del lines[min(pos, len(lines) - 1)]
        elif op == 1:
            lines.insert(pos, rnd.choice(junk))
        elif op == 2 and lines:
            j = min(pos, len(lines) - 1)
            cut = rnd.randrange(len(lines[j]) + 1)
            lines[j] = lines[j][:cut]
        else:
            lines.insert(pos, bytes(rnd.randrange(256) for _ in range(rnd.randrange(40))))
    _classify(b"\n".join(lines))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(REAL) - 1), st.integers(0, 10_000))
def test_truncated_real_logs(i, cut):
    data = REAL[i][: cut % (len(REAL[i]) + 1)]
    r = _classify(data)
    if r is not None and r["kind"] != "none":
        assert r["confidence"] in ("high", "medium", "low")
