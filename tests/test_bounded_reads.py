"""A guest's upload is read by size first: over LOG_MAX_BYTES only its head and its tail
are kept (ranged reads, a marker line between, a note in collect.json and the report);
diagnose and notify read the log in bounded pieces. Everything over real HTTP: the
guest's curl and oss2 against the OSS stand-in, the ECS SDK against its stand-in."""

# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from fixtures_world import event, instances, report_of, world  # noqa: F401

from fixtures_oss import oss_standin, oss_store  # noqa: F401

EVENTS_LOGS = Path(__file__).resolve().parents[1] / "events" / "logs"
BIG = "eventbridge-crash-big-messages.json"  # i-bp1bigmessages06: a 2 MB /var/log/messages, hung task near its end
CAP = 300_000


def _needs_uploader() -> None:
    if not (shutil.which("curl") or shutil.which("wget")):
        pytest.skip("neither curl nor wget on this machine: the guest cannot upload")


def _whole(world) -> bytes:
    return (world.instances / "i-bp1bigmessages06" / "root" / "var" / "log" / "messages").read_bytes()


def _oversized(world) -> str:
    _needs_uploader()
    world.pipeline.settings = dataclasses.replace(world.pipeline.settings, log_max_bytes=CAP)
    [prefix] = world.ingest(event(BIG)).accepted
    return prefix


def test_an_upload_over_the_cap_is_kept_as_head_marker_and_tail(world, oss_standin):
    prefix = _oversized(world)
    whole = _whole(world)
    assert len(whole) > 4 * CAP
    crash = world.store.get(f"{prefix}crash.log")
    assert len(crash) <= CAP
    head, marker, tail = re.split(rb"(?m)^(\[crashdiag: \d+ bytes of the guest's upload left out here[^\n]*\n)", crash)
    assert whole.startswith(head) and head.endswith(b"\n")
    assert b"Linux version" in head and b"Command line:" in head  # the boot's context
    assert whole.endswith(tail) and whole[-len(tail) - 1:-len(tail)] == b"\n"  # cut at a line end
    left_out = len(whole) - len(head) - len(tail)
    assert f"{left_out} bytes".encode() in marker and f"it was {len(whole)} bytes".encode() in marker
    # each read was a bounded ranged GET sent with OSS's standard range behaviour
    assert oss_standin.ranges and all(behaviour == "standard" for _, behaviour, _ in oss_standin.ranges)
    gets = [r for r in oss_standin.requests if r.startswith("GET ") and "guest-upload.log" in r]
    assert len(gets) == 4  # two line-end probes and two windows, all ranged (collect reads before diagnose)
    spans = [tuple(int(x) for x in spec.removeprefix("bytes=").split("-")) for spec, _, _ in oss_standin.ranges[:4]]
    assert sum(b - a + 1 for a, b in spans) < CAP + 2 * 64 * 1024  # never more than the windows and probes

    collect = json.loads(world.store.get(f"{prefix}collect.json"))
    assert collect["complete"] is False
    log = collect["log"]
    assert log["uploaded_bytes"] == len(whole) and log["kept_bytes"] == len(crash)
    assert log["kept"] == {"head": len(head), "tail": len(tail), "left_out": left_out}
    [note] = [n for n in collect["notes"] if "over LOG_MAX_BYTES" in n]
    assert note.startswith("the guest uploaded 1.9 MiB, over LOG_MAX_BYTES (0.3 MiB); kept the first")

    rep = report_of(world, prefix)
    assert note in rep["collection"]["notes"]
    assert rep["diagnosis"]["kind"] == "hung_task"  # the crash was in the tail
    assert "over LOG_MAX_BYTES" in world.store.get(f"{prefix}report.html").decode()
    assert "over LOG\\_MAX\\_BYTES" in world.store.get(f"{prefix}report.md").decode()


def test_an_upload_within_the_cap_is_kept_whole(world):
    _needs_uploader()
    [prefix] = world.ingest(event(BIG)).accepted
    whole = _whole(world)
    assert world.store.get(f"{prefix}crash.log") == whole
    log = json.loads(world.store.get(f"{prefix}collect.json"))["log"]
    assert log["uploaded_bytes"] == log["kept_bytes"] == len(whole) and "kept" not in log


def test_a_server_that_ignores_the_ranges_changes_nothing(world, oss_standin):
    """OSS answers a range it finds invalid (without the standard behaviour) with 200 and the
    whole object: collect's reads still keep only their windows, from the right offsets."""
    prefix = _oversized(world)
    expected = world.store.get(f"{prefix}crash.log")
    ranged = len(oss_standin.ranges)
    world.pipeline.settings = dataclasses.replace(world.pipeline.settings, log_max_bytes=CAP)
    oss_standin.serve_whole_next(ranged)  # every ranged GET of the next collection
    [prefix2] = world.ingest(event(BIG, eventId="e-bp1bigmessage0002")).accepted
    assert sum(whole for _, _, whole in oss_standin.ranges) == ranged
    assert world.store.get(f"{prefix2}crash.log") == expected
    assert report_of(world, prefix2)["diagnosis"]["kind"] == "hung_task"


def test_log_max_bytes_setting():
    from crashdiag.settings import Settings

    assert Settings.from_env({}).log_max_bytes == 64 * 1024 * 1024  # what the guest script sends at most
    assert Settings.from_env({"LOG_MAX_BYTES": "1000000"}).log_max_bytes == 1_000_000
    with pytest.raises(ValueError, match="LOG_MAX_BYTES must be at least"):
        Settings.from_env({"LOG_MAX_BYTES": "1000"})
    assert Settings.from_env({}).diagnose_max_bytes == 256 * 1024 * 1024
    with pytest.raises(ValueError, match="DIAGNOSE_MAX_BYTES must be at least"):
        Settings.from_env({"DIAGNOSE_MAX_BYTES": "1000"})


def test_notify_attaches_the_window_diagnose_found_with_one_ranged_read(world, oss_standin, tmp_path):
    prefix = _oversized(world)
    crash = world.store.get(f"{prefix}crash.log")
    window = report_of(world, prefix)["excerpt"]
    assert 0 < window["length"] <= 64 * 1024 and window["offset"] > 0
    excerpt = crash[window["offset"]:window["offset"] + window["length"]]
    assert b"blocked for more than 120 seconds" in excerpt  # around the crash report, not just the end
    world.pipeline.settings = dataclasses.replace(world.pipeline.settings, outbox_dir=str(tmp_path / "outbox"))
    seen, ranged = len(oss_standin.requests), len(oss_standin.ranges)
    world.pipeline.notify(f"{prefix}report.json")
    reads = [r for r in oss_standin.requests[seen:] if r.startswith("GET ") and r.split("?")[0].endswith("/crash.log")]
    assert len(reads) == 1 and len(oss_standin.ranges) == ranged + 1
    assert oss_standin.ranges[-1][:2] == (f"bytes={window['offset']}-{window['offset'] + window['length'] - 1}", "standard")
    [eml] = (tmp_path / "outbox").glob("*.eml")
    [att] = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default).iter_attachments()
    assert att.get_content().encode() == excerpt


def test_excerpt_range_finds_evidence_across_scan_pieces(tmp_path):
    from crashdiag.notify.content import _SCAN, EXCERPT_BYTES, excerpt_of, excerpt_range

    line = b"kernel: BUG: unable to handle page fault for address: ffff0000dead\n"
    filler = b"Nov 26 09:00:00 host app[1]: nothing to see here, just a line of noise\n"
    head = filler * ((_SCAN - 30) // len(filler))
    head += b"x" * (_SCAN - 30 - len(head))  # the evidence line straddles the first piece's end
    log = head + line + filler * 2000
    report = {"diagnosis": {"evidence": ["  BUG: unable to handle page fault for address: ffff0000dead  ",
                                         "not in the log at all, nowhere to be found"]}}
    path = tmp_path / "log"
    path.write_bytes(log)
    with path.open("rb") as fh:
        start, end = excerpt_range(fh, len(log), report)
    assert end - start <= EXCERPT_BYTES and start < len(head) < len(head) + len(line) <= end
    assert log[start - 1:start] == b"\n" and log[end - 1:end] == b"\n"
    assert excerpt_of(log, report, "x")[1] == log[start:end]  # the in-memory form agrees
    with path.open("rb") as fh:  # no evidence found: the end of the log
        assert excerpt_range(fh, len(log), {"diagnosis": {"evidence": ["absent from the log entirely"]}})[1] == len(log)


def test_diagnose_streams_a_large_log_and_still_redacts_the_page(tmp_path, monkeypatch):
    """A log over the page's whole-view size is downloaded in pieces to a temporary file,
    classified from there and shown as tail and evidence windows, redacted."""
    from crashdiag.cloud.store import LocalStore
    from crashdiag.pipeline.stages import Pipeline
    from crashdiag.reports.html_report import WHOLE_BELOW
    from crashdiag.settings import Settings

    crash = (EVENTS_LOGS / "vmcore-dmesg-sample.txt").read_bytes()
    noise = b"[ 1.000000] eth0: link up, peer 10.11.12.13 answering\n"
    log = noise * (WHOLE_BELOW // len(noise) + 1000) + crash
    store = LocalStore(tmp_path / "store")
    store.put("inbox/big.log", log)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the stdlib's temp dir, to see what is left there
    p = Pipeline(store, None, None, Settings(lang="en", redact=True))
    rep = p.diagnose("inbox/big.log")
    small = Pipeline(LocalStore(tmp_path / "small"), None, None, Settings(lang="en", redact=True))
    small.store.put("inbox/small.log", crash)
    assert rep["diagnosis"]["kind"] == small.diagnose("inbox/small.log")["diagnosis"]["kind"] != "none"
    assert "_raw" not in rep and rep["excerpt"]["offset"] > len(log) - len(crash) - 8192
    page = store.get("reports/inbox/big.log/report.html").decode()
    assert "10.11.12.13" not in page and "&lt;ip&gt;" in page
    assert not list(scratch.iterdir())  # the temporary copy is gone


def test_an_inbox_log_over_diagnose_max_bytes_is_diagnosed_from_its_head_and_tail(tmp_path):
    from crashdiag.cloud.store import LocalStore
    from crashdiag.pipeline.stages import Pipeline
    from crashdiag.settings import Settings

    crash = (EVENTS_LOGS / "vmcore-dmesg-sample.txt").read_bytes()
    noise = b"[ 1.000000] eth0: link up\n"
    log = b"[ 0.000000] Linux version 5.10.0 (builder)\n" + noise * (1_000_000 // len(noise)) + crash
    store = LocalStore(tmp_path / "store")
    store.put("inbox/huge.log", log)
    p = Pipeline(store, None, None, Settings(lang="en", diagnose_max_bytes=300_000, outbox_dir=str(tmp_path / "outbox")))
    rep = p.diagnose("inbox/huge.log")
    small = Pipeline(LocalStore(tmp_path / "small"), None, None, Settings(lang="en"))
    small.store.put("inbox/small.log", crash)
    assert rep["diagnosis"]["kind"] == small.diagnose("inbox/small.log")["diagnosis"]["kind"] != "none"
    [note] = rep["collection"]["notes"]
    assert note.startswith("the log is 1.0 MiB, over DIAGNOSE_MAX_BYTES (0.3 MiB); kept the first")
    assert rep["collection"]["complete"] is False
    # the excerpt's offsets are the object's, not the windows' copy
    window = rep["excerpt"]
    excerpt = log[window["offset"]:window["offset"] + window["length"]]
    assert window["offset"] > len(log) - len(crash) - 8192 and excerpt.strip()
    assert str(rep["diagnosis"]["evidence"][0]).strip().encode() in excerpt
    p.notify("reports/inbox/huge.log/report.json")
    [eml] = (tmp_path / "outbox").glob("*.eml")
    [att] = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default).iter_attachments()
    assert att.get_content().encode() == excerpt
