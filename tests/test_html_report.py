"""The incident page: what it shows, that it is self-contained and strict, and that
guest text in it stays text."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest
from markupsafe import Markup

from corpus import all_cases, load_case
from crashdiag.cloud.store import LocalStore
from crashdiag.replay import replay
from crashdiag.reports.html_report import (
    CSP,
    RAW_LOG_TAIL,
    evidence_context,
    guilty_function,
    render_html,
)
from crashdiag.reports.pages import environment
from crashdiag.reports.report import build_report
from crashdiag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "cases" / "seed"
KDUMP = "incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-bp1crash0kdump01/"
HOSTILE_COMM = "<img src=x onerror=alert(1)>"
HOSTILE_LINE = "<script>document.title='pwned'</script>"


def replay_events(store_dir: Path, *names: str) -> LocalStore:
    """The real pipeline on sample events, local store and simulated instances, no
    environment (a short wait: the boot-loop instance never answers)."""
    settings = Settings.from_env({}, store_dir=str(store_dir), instances_dir=str(ROOT / "events" / "instances"), lang="en",
                                 collect_poll_seconds=0.05, collect_wait_seconds=2)
    for name in names:
        replay((ROOT / "events" / name).read_bytes(), settings)
    return LocalStore(store_dir)


@pytest.fixture(scope="module")
def kdump(tmp_path_factory) -> tuple[dict, bytes]:
    store = replay_events(tmp_path_factory.mktemp("store"), "eventbridge-crash-kdump-executing.json")
    return json.loads(store.get(KDUMP + "report.json")), store.get(KDUMP + "crash.log")


def seed_report(name: str, lang: str = "en", **incident) -> tuple[dict, bytes]:
    log = load_case(SEED / name).log
    collect = {"method": "inbox", "complete": True, "log": {"path": f"inbox/{name}"}, "incident": incident}
    return build_report(log, collect, lang, source=f"inbox/{name}"), log


def hostile_log() -> bytes:
    log = load_case(SEED / "09-blk-mq-timeout-null-deref.txt").log.decode()
    log = log.replace("Comm: kworker/0:1H", "Comm: " + HOSTILE_COMM)
    return (log + f"[8837401.190000] {HOSTILE_LINE}\n[8837401.190001] ![x](http://evil/x.png) \u202eevil\n").encode()


class Structure(HTMLParser):
    """Collects tags and checks that every non-void element is closed in order."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Structure:
    s = Structure()
    s.feed(page)
    s.close()
    assert not s.errors, s.errors[:5]
    assert not s.stack, s.stack
    return s


def assert_self_contained(page: str) -> None:
    s = parse(page)
    head = page[: page.index("</head>")]
    assert head.index('http-equiv="Content-Security-Policy"') < head.index("<style>")
    metas = [a for t, a in s.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert metas == [{"http-equiv": "Content-Security-Policy", "content": CSP}]
    tags = {t for t, _ in s.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "form", "input", "base"}
    assert not any(k.startswith("on") for _, a in s.tags for k in a)
    assert not any(a.get("src") for _, a in s.tags)
    assert not re.search(r"@import|url\(", page)
    for _, a in s.tags:  # links only to documents, never javascript:
        assert not str(a.get("href", "")).lower().startswith(("javascript:", "data:"))


# --- the page -------------------------------------------------------------------------------


def test_incident_page_shows_every_part(kdump):
    report, log = kdump
    page = render_html(report, "en", log)
    assert_self_contained(page)
    for section in ("summary", "cause", "fix", "suspect", "evidence", "trace", "modules", "collection", "readiness", "raw"):
        assert f'id="{section}"' in page, section
    text = " ".join(parse(page).text)
    # summary card
    for fact in ("i-bp1kdumpel7demo01", "cn-hangzhou", "2026-11-26 10:00:01 UTC", "null_deref", "NULL pointer dereference",
                 "kernel bug", "high", "3.10.0-1160.80.1.el7.x86_64", "blk-mq-timeout-null-deref", "5f9192bddf08b23e"):
        assert fact in text, fact
    # cause, remedy and the exact commands
    rule = report["diagnosis"]["rule"]
    assert rule["remedy_steps"][1] in text
    for cmd in rule["check_commands"] + rule["fix_commands"]:
        assert cmd in text, cmd
    # fix status against the running kernel
    assert "affected: the running kernel predates the fix" in text and "3.10.0-1160.88.1.el7" in text
    # provenance and readiness
    assert "kdump vmcore-dmesg" in text and "complete" in text
    assert "/var/crash/127.0.0.1-2026-11-26-10:00:01/vmcore-dmesg.txt" in text
    assert "kernel.panic is 0" in text
    # raw log folded away
    assert re.search(r'<details class="raw"><summary>Raw log \(4\.2 KB\)</summary><pre>\[8837401\.113325\] BUG', page)


def test_guilty_frame_marked_and_unreliable_frames_dimmed(kdump):
    report, _ = kdump
    page = render_html(report, "en", None)
    trace = page[page.index('id="trace"'):page.index('id="modules"')]
    rows = re.findall(r"<tr( class=\"(\w+)\")?>(.*?)</tr>", trace)
    guilty = [r for r in rows if r[1] == "guilty"]
    assert len(guilty) == 1 and "RIP" in guilty[0][2] and "blk_mq_rq_timed_out" in guilty[0][2] and "guilty frame" in guilty[0][2]
    frames = report["diagnosis"]["call_trace"]
    dimmed = [r for r in rows if r[1] == "unrel"]
    assert len(dimmed) == sum(1 for f in frames if not f["reliable"])
    assert all("<td>?</td>" in r[2] for r in dimmed)


def test_guilty_frame_in_the_trace_when_the_rip_is_plumbing():
    report, _ = seed_report("06-cgroup-css-release-list-del.txt")
    d = report["diagnosis"]
    assert guilty_function(d) == "css_release_work_fn"
    page = render_html(report, "en", None)
    assert re.search(r'<tr class="guilty"><td></td><td>css_release_work_fn\+0x[0-9a-f]+', page)


def test_suspect_module_with_its_flags_and_the_modules_table():
    report, log = seed_report("10-eudp-module-strnlen.txt")
    mods = report["diagnosis"]["modules"]
    assert mods["suspect"] == "eudp"
    page = render_html(report, "en", log)
    suspect = page[page.index('id="suspect"'):page.index('id="evidence"')]
    assert "<code>eudp</code>" in suspect and "(E)" in suspect and "E unsigned" in suspect
    table = page[page.index('id="modules"'):page.index('id="collection"')]
    flagged = re.findall(r'<tr class="flag"><td><code>([\w-]+)</code>', table)
    assert set(flagged) == set(mods["out_of_tree"]) == {"AliSecGuard", "emp", "eudp"}
    assert "in the call trace" in table
    # unflagged distribution modules are folded
    assert "<details><summary>" in table and "more modules" in table


def test_evidence_lines_highlighted_in_their_context(kdump):
    report, log = kdump
    page = render_html(report, "en", log)
    ev = page[page.index('id="evidence"'):page.index('id="trace"')]
    hits = re.findall(r'<div class="l hit"><span class="n">(\d+)</span>(.*?)</div>', ev)
    lines = log.decode().splitlines()
    assert len(hits) == len(report["diagnosis"]["evidence"])
    for no, text in hits:  # the numbers are the log's own line numbers
        assert lines[int(no) - 1].startswith(text.replace("&lt;", "<").replace("&gt;", ">")[:60])
    assert re.search(r'<div class="l"><span class="n">3</span>\[8837401\.114892\] PGD', ev)  # context, not a hit


def test_evidence_without_raw_log_is_listed_plainly(kdump):
    report, _ = kdump
    page = render_html(report, "en", None)
    assert "Evidence (the raw log is not available" in page
    assert "The raw log is not attached to this page." in page


def test_evidence_context_numbers_and_gaps():
    text = "".join(f"line {i}\n" for i in range(1, 101))
    rows = evidence_context(text, ["line 10", "line 12", "line 60", "not there"], around=2)
    assert rows is not None
    got = [(r[0], r[2]) if r else None for r in rows]
    assert got == [(8, False), (9, False), (10, True), (11, False), (12, True), (13, False), (14, False), None,
                   (58, False), (59, False), (60, True), (61, False), (62, False)]
    assert rows[2][1] == "line 10"
    assert evidence_context(text, ["nope"]) is None
    # the first and last lines, and a text without a final newline
    rows = evidence_context("a\nb\nc", ["a", "c"], around=1)
    assert [(r[0], r[1], r[2]) for r in rows if r] == [(1, "a", True), (2, "b", False), (3, "c", True)]


def test_raw_log_is_bounded_to_its_end_and_gzip_is_read():
    report, log = seed_report("09-blk-mq-timeout-null-deref.txt")
    filler = b"".join(b"[    1.%06d] filler line number %d of a long boot\n" % (i, i) for i in range(40000))
    big = filler + log
    assert len(big) > 4 * RAW_LOG_TAIL
    page = render_html(report, "en", gzip.compress(big))
    raw = page[page.index('id="raw"'):]
    assert "last 200.0 KB of" in raw
    assert len(raw) < RAW_LOG_TAIL * 1.3
    assert "filler line number 0 of" not in raw and "blk_mq_rq_timed_out" in raw
    # the evidence is still found in context far into the log
    ev = page[page.index('id="evidence"'):page.index('id="trace"')]
    assert re.search(r'<span class="n">4000\d</span>', ev)


def test_chinese_labels():
    report, log = seed_report("01-oom-panic-on-oom.txt", lang="zh")
    page = render_html(report, "zh", log)
    assert_self_contained(page)
    assert '<html lang="zh-CN">' in page
    for label in ("宕机诊断报告", "原因", "处理建议", "调用栈", "日志来源", "原始日志", "配置导致"):
        assert label in page, label
    assert "vm.panic_on_oom" in page


def test_no_crash_and_unreadable_logs_render():
    for data in (b"[    0.000000] Linux version 5.10.0\n[    1.0] all good\n", b"\x7fELF" + bytes(range(256)) * 8):
        report = build_report(data, {}, "en", source="x")
        page = render_html(report, "en", data)
        assert_self_contained(page)
        assert "No crash report was found" in page or "The log could not be read" in page


def test_host_failure_and_console_collection(tmp_path):
    store = replay_events(tmp_path / "s", "eventbridge-system-failure-bootloop.json")
    key = next(k for k in store.list("incidents/") if k.endswith("/report.json"))
    report = json.loads(store.get(key))
    page = render_html(report, "en", store.get(key.replace("report.json", "crash.log")))
    assert_self_contained(page)
    assert "the guest may be innocent" in page
    assert "serial console (GetInstanceConsoleOutput)" in page and "cut (a window of a larger log)" in page


# --- hostile text ---------------------------------------------------------------------------


def test_hostile_guest_text_stays_text():
    log = hostile_log()
    report = build_report(log, {"method": "kdump", "complete": True, "log": {"path": "/var/crash/<b>x</b>"},
                                "incident": {"instance_id": "i-bp1x", "instance_name": '"><img src=x onerror=alert(2)>'},
                                "context": {"kdump_active": "<i>no</i>", "cmdline": "x"}}, "en", source="inbox/x")
    assert report["diagnosis"]["crash"]["comm"] == HOSTILE_COMM
    page = render_html(report, "en", log)
    assert_self_contained(page)
    assert "<img" not in page and "<script" not in page and "<b>x" not in page and "<i>no" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "\u202e" not in page
    title = re.search(r"<title>(.*?)</title>", page).group(1)
    assert "pwned" not in title and "<" not in title


def test_templates_escape_text_and_attributes_and_keep_their_own_markup():
    env = environment()
    page = env.from_string('<p class="{{ cls }}">{{ text }}{{ m }}{{ missing }}{{ hostile|text(5) }}</p>')
    got = page.render(cls='x" onclick="y', text="<b>", m=Markup("<b>ok</b>"), missing=None,
                      hostile="\u202e<i>long text")
    assert got == '<p class="x&quot; onclick=&quot;y">&lt;b&gt;<b>ok</b>?&lt;i&gt;…</p>'
    lines = env.from_string("<pre>{{ v|lines }}</pre>").render(v=["<a>", "b\x1b"])
    assert lines == "<pre>&lt;a&gt;\nb?</pre>"
    with pytest.raises(jinja2.UndefinedError):  # a name the code did not pass is an error, not a blank
        env.from_string("{{ not_passed }}").render()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_corpus_log_renders_well_formed(lang):
    for case in all_cases():
        report = build_report(case.log, {}, lang, source=case.path.name)
        page = render_html(report, lang, case.log)
        s = parse(page)
        assert not {t for t, _ in s.tags} & {"script", "img", "iframe", "object"}, case.path


# --- the command ----------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shared"))
    env.pop("CRASHDIAG_LANG", None)
    return subprocess.run([sys.executable, "-m", "crashdiag.cli", *args], capture_output=True, env=env, cwd=ROOT)


def test_cli_report_html_markdown_and_json(tmp_path):
    log = SEED / "09-blk-mq-timeout-null-deref.txt"
    out = tmp_path / "page.html"
    p = run("report", str(log), "--html", str(out))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    assert_self_contained(page)
    assert "blk-mq-timeout-null-deref" in page and "a local file" in page
    gz = tmp_path / "vmcore-dmesg.txt.gz"
    gz.write_bytes(gzip.compress(log.read_bytes()))
    p = run("report", str(gz), "--html", "-", "--lang", "zh")
    assert p.returncode == 0 and "宕机诊断报告" in p.stdout.decode() and "blk_mq_rq_timed_out" in p.stdout.decode()
    p = run("report", str(log))
    assert p.returncode == 0 and p.stdout.decode().startswith("# Crash report: BUG")
    d = json.loads(run("report", str(log), "--json").stdout)
    assert d["schema_version"] == 1 and d["diagnosis"]["rule"]["id"] == "blk-mq-timeout-null-deref"


def test_cli_report_bad_input(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        p = run("report", str(path), "--html", str(tmp_path / "o.html"))
        assert p.returncode == 2 and b"Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.html").exists()


def test_a_large_log_file_is_paged_from_a_stream(tmp_path):
    """crashdiag report --html on a log above WHOLE_BELOW reads it as a stream: the page
    still shows the evidence with its line numbers in the whole log, and the log's end."""
    import subprocess
    import sys

    from crashdiag.reports.html_report import WHOLE_BELOW

    _, log = seed_report("09-blk-mq-timeout-null-deref.txt")
    filler = b"".join(b"[    1.%06d] filler line number %d of a long boot\n" % (i % 10**6, i) for i in range(120_000))
    path = tmp_path / "big.log"
    path.write_bytes(filler + log + filler[:4000])
    assert path.stat().st_size > WHOLE_BELOW
    out = tmp_path / "page.html"
    subprocess.run([sys.executable, "-m", "crashdiag.cli", "report", "--html", str(out), str(path)], check=True,
                   capture_output=True, cwd=ROOT)
    page = out.read_text()
    hit = filler.count(b"\n") + 1 + log.split(b"\n").index(next(ln for ln in log.split(b"\n") if b"BUG: unable to handle" in ln))
    ev = page[page.index('id="evidence"'):page.index('id="trace"')]
    assert f'<span class="n">{hit}</span>' in ev and "blk_mq_rq_timed_out" in ev
    raw = page[page.index('id="raw"'):]
    assert "last 200.0 KB of" in raw and "filler line number 119999 of" in raw and "filler line number 100000 of" not in raw
