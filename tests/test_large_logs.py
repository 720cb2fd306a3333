"""Big logs go through the windowed scanner: crashes anywhere are found, all of them,
in the order they happened, whatever the chunk boundaries."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from corpus import load_case
from crashdiag.classifier.classify import classify_bytes

SEED = Path(__file__).with_name("cases") / "seed"
OOPS = load_case(SEED / "09-blk-mq-timeout-null-deref.txt").log
VFS = load_case(SEED / "12-rootfs-mount-failure.txt").log
DIVIDE = load_case(SEED / "04-intel-pstate-divide-error.txt").log
WORDS = b"systemd audit eth0 link up scsi device attached usb ext4 mounted kworker session".split()


def filler(n_bytes: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    out, size, t = [], 0, 10.0
    while size < n_bytes:
        t += rnd.random()
        line = b"[%12.6f] " % t + b" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(4, 12))) + b"\n"
        out.append(line)
        size += len(line)
    return b"".join(out)


# Small chunk and window sizes make the same code paths run on a few hundred KB.
SMALL = {"whole_below": 8_192, "chunk": 16_384, "before": 4_096, "after": 8_192}


def test_crash_at_the_end_of_a_big_log():
    data = filler(400_000, 1) + OOPS
    r = classify_bytes(data, scan_options=SMALL)
    assert r["kind"] == "null_deref" and r["crash"]["rip_function"] == "blk_mq_rq_timed_out"
    assert r["input"]["windows"] >= 1


@pytest.mark.parametrize("offset", [0, 1, 7, 4_095, 4_096, 8_191, 16_383, 16_384, 16_385])
def test_chunk_boundaries_do_not_split_a_report(offset):
    data = filler(16_384 * 3 + offset, 2) + OOPS + filler(50_000, 3)
    r = classify_bytes(data, scan_options=SMALL)
    assert (r["kind"], r["rule"] and r["rule"]["id"]) == ("null_deref", "blk-mq-timeout-null-deref") or r["kind"] == "null_deref"
    assert len(r["call_trace"]) == len(classify_bytes(OOPS)["call_trace"])


def test_several_crashes_are_all_reported_in_order():
    data = filler(100_000, 4) + DIVIDE + filler(100_000, 5) + OOPS + filler(100_000, 6) + VFS
    r = classify_bytes(data, scan_options=SMALL)
    assert [x["kind"] for x in r["reports"]] == ["divide_error", "null_deref", "vfs_no_root"]
    assert r["kind"] == "divide_error"  # the first fatal report
    whole = classify_bytes(data)
    assert [x["title"] for x in whole["reports"]] == [x["title"] for x in r["reports"]]


def test_no_crash_in_a_big_log():
    r = classify_bytes(filler(300_000, 7), scan_options=SMALL)
    assert r["kind"] == "none"


def test_line_cap_fast_path_cuts_exactly_like_the_line_walk():
    """_LineCap jumps LINE_CAP bytes at a time when no line is that long; whatever the block
    boundaries, its output must equal the plain line-by-line cut."""
    import io
    import random

    from crashdiag.classifier import logtext as L

    rnd = random.Random(7)
    lines = []
    for _ in range(600):
        size = rnd.choice([0, 5, 60, 200, 200, 200, L.LINE_CAP - 1, L.LINE_CAP, L.LINE_CAP + 1, 3 * L.LINE_CAP])
        lines.append(bytes([rnd.choice(b"abc[].:")]) * size)
    data = b"\n".join(lines) + (b"" if rnd.random() < 0.5 else b"\n")
    want = b"\n".join(line[: L.LINE_CAP] for line in data.split(b"\n"))
    for block in (1000, L.LINE_CAP - 3, L.LINE_CAP + 7, 1 << 20):
        cap = L._LineCap(io.BytesIO(data), b"")
        got = b"".join(iter(lambda cap=cap, block=block: cap.read(block), b""))
        assert got == want, block
