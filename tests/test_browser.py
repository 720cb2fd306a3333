"""The pages in a real browser: Debian's Chromium, headless, with JavaScript on.

The pages carry no script, so any console message from them is an error: a script that
a hostile log smuggled in, or a resource the CSP refused. A control page shows that
this harness does see both (an uncaught error, a CSP refusal) and that scripts do run
here, so their absence on our pages means something.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fixtures_world import replay_events

from corpus import load_case
from crashdiag.reports.fleet import rebuild_fleet
from crashdiag.reports.html_report import CSP, render_html
from crashdiag.reports.report import build_report

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "cases" / "seed"
KDUMP = "incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-bp1crash0kdump01/"
HOSTILE_COMM = "<img src=x onerror=alert(1)>"
HOSTILE_LINE = "<script>document.title='pwned'</script>"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run")


def _find_or_install_chromium() -> str | None:
    """Debian's chromium; installed with apt-get when missing and we are root."""
    exe = shutil.which("chromium")
    if exe or os.geteuid() != 0 or not shutil.which("apt-get"):
        return exe
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            subprocess.run(cmd, capture_output=True, env=env, timeout=900)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if shutil.which("chromium"):
            break
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = _find_or_install_chromium()
    if not exe:
        pytest.skip("chromium is not installed and apt-get could not install it (apt-get install -y chromium)")
    return exe


class Browser:
    def __init__(self, exe: str, profile: Path) -> None:
        self.exe = exe
        self.profile = profile

    def run(self, url: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [self.exe, *FLAGS, f"--user-data-dir={self.profile}", "--enable-logging=stderr", "--v=0", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    def dom(self, url: str) -> tuple[str, list[str]]:
        """The DOM after load, and the console lines the page produced."""
        p = self.run(url, "--dump-dom")
        assert p.returncode == 0, p.stderr[-3000:]
        return p.stdout, console_errors(p.stderr, url)


def console_errors(stderr: str, url: str) -> list[str]:
    """Console messages from this page, and script or CSP errors from anywhere."""
    out = []
    for line in stderr.splitlines():
        if (":CONSOLE" in line and url in line) or re.search(r"Uncaught|Refused to|Content Security Policy", line):
            out.append(line)
    return out


@pytest.fixture
def browser(chromium, tmp_path) -> Browser:
    return Browser(chromium, tmp_path / "profile")


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 for the directory ``site``; yields (dir, base URL)."""
    site = tmp_path / "site"
    site.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Elements(HTMLParser):
    """Every element with its attributes, and the document's title (the first <title>:
    the others are SVG tooltips)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title" and sum(1 for t, _ in self.tags if t == "title") == 1

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def elements(dom: str) -> Elements:
    e = Elements()
    e.feed(dom)
    return e


def hostile_report() -> tuple[dict, bytes]:
    log = load_case(SEED / "09-blk-mq-timeout-null-deref.txt").log.decode()
    log = log.replace("Comm: kworker/0:1H", "Comm: " + HOSTILE_COMM) + f"[8837401.190000] {HOSTILE_LINE}\n"
    data = log.encode()
    collect = {"method": "kdump", "complete": True, "log": {"path": "/var/crash/x/vmcore-dmesg.txt"},
               "incident": {"incident_id": "e-evil", "instance_id": "i-bp1evil", "region": "cn-hangzhou",
                            "instance_name": HOSTILE_COMM, "code": "InstanceFailure.Reboot", "execute_start_time": "2026-11-26T09:00:00Z"}}
    report = build_report(data, collect, "en", source="incidents/cn-hangzhou/i-bp1evil/e-evil/crash.log")
    assert report["diagnosis"]["crash"]["comm"] == HOSTILE_COMM
    return report, data


# --- the harness sees what it must ----------------------------------------------------------


def test_control_pages_show_the_harness_sees_scripts_and_csp(browser, tmp_path):
    live = tmp_path / "live.html"
    live.write_text("<!DOCTYPE html><html><head><title>t</title></head><body>"
                    "<script>document.title='ran'</script><script>undefinedFn()</script></body></html>")
    dom, errors = browser.dom(live.as_uri())
    assert elements(dom).title == "ran"  # scripts run in this browser
    assert any("Uncaught" in e for e in errors)
    strict = tmp_path / "strict.html"
    strict.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}">'
                      "<title>t</title></head><body><script>document.title='ran'</script></body></html>")
    dom, errors = browser.dom(strict.as_uri())
    assert elements(dom).title == "t"  # the CSP blocked it
    assert any("Content Security Policy" in e or "Refused to" in e for e in errors)


# --- the incident page ----------------------------------------------------------------------


def test_incident_page_over_http(browser, served, tmp_path):
    site, base = served
    store = replay_events(tmp_path / "store", "eventbridge-crash-kdump-executing.json")
    report = json.loads(store.get(KDUMP + "report.json"))
    (site / "report.html").write_text(render_html(report, "en", store.get(KDUMP + "crash.log")), encoding="utf-8")
    url = f"{base}/report.html"
    dom, errors = browser.dom(url)
    assert errors == []
    e = elements(dom)
    ids = {a.get("id") for _, a in e.tags}
    assert {"summary", "cause", "fix", "evidence", "trace", "modules", "collection", "readiness", "raw"} <= ids
    assert e.title.startswith("Crash report: BUG: unable to handle kernel NULL pointer dereference in blk_mq_rq_timed_out")
    assert '<tr class="guilty"><td>RIP</td>' in dom and "guilty frame" in dom
    assert dom.count('<tr class="unrel">') == sum(1 for f in report["diagnosis"]["call_trace"] if not f["reliable"])
    assert '<details class="raw">' in dom and "yum update -y kernel" in dom
    assert not {t for t, _ in e.tags} & {"script", "img", "iframe"}


def test_hostile_log_stays_inert_text(browser, served):
    site, base = served
    report, data = hostile_report()
    page = render_html(report, "en", data)
    (site / "evil.html").write_text(page, encoding="utf-8")
    expected_title = re.search(r"<title>(.*?)</title>", page).group(1)
    dom, errors = browser.dom(f"{base}/evil.html")
    assert errors == []
    e = elements(dom)
    assert not [t for t, _ in e.tags if t in ("img", "script")]
    assert not any(k.startswith("on") for _, a in e.tags for k in a)
    assert e.title != "pwned" and "pwned" not in e.title
    assert e.title == expected_title.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&")
    # the hostile text is on the page, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom


# --- the fleet page -------------------------------------------------------------------------


def test_fleet_page_from_file_url(browser, tmp_path):
    store = replay_events(tmp_path / "store", "eventbridge-crash-kdump-executing.json", "eventbridge-crash-oom-messages.json",
                          "eventbridge-crash-journal-only.json")
    report, _ = hostile_report()
    store.put("incidents/cn-hangzhou/i-bp1evil/e-evil/report.json", json.dumps(report).encode())
    rebuild_fleet(store, "en")
    url = (tmp_path / "store" / "fleet" / "index.html").resolve().as_uri()
    dom, errors = browser.dom(url)
    assert errors == []
    e = elements(dom)
    svg = [a for t, a in e.tags if t == "svg"]
    assert len(svg) == 1 and svg[0].get("viewbox") == "0 0 1120 260"
    assert 'viewBox="0 0 1120 260"' in dom  # the HTML parser gave the SVG attribute its case
    assert sum(1 for t, _ in e.tags if t == "rect") >= 3
    ids = {a.get("id") for _, a in e.tags}
    assert {"summary", "per-day", "issues", "top", "instances"} <= ids
    assert "blk-mq-timeout-null-deref" in dom and "3.10.0-1160.88.1.el7" in dom
    assert not [t for t, _ in e.tags if t in ("img", "script")]
    assert e.title == "Crash overview · ecs-crashdiag"


# --- the screenshots tool -------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_screenshots_tool(chromium, tmp_path):
    env = dict(os.environ)
    for name in ("OSS_BUCKET", "CRASHDIAG_LANG", "CRASHDIAG_STORE_DIR"):
        env.pop(name, None)
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "screenshots.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    for name in ("incident.png", "fleet.png"):
        assert png_size(tmp_path / name) == (1280, 2000)
        assert (tmp_path / name).stat().st_size > 30_000  # a rendered page, not a blank one


# --- the fleet page's readiness section, two regions and two accounts ------------------------


def test_fleet_page_shows_readiness_exposure_regions_and_accounts(browser, tmp_path):
    import datetime as dt

    from test_regions import central_store

    from crashdiag.pipeline.audit import store_results
    from crashdiag.reports.readiness import unreachable

    store = central_store(tmp_path)
    evil_name = '<img src=x onerror="document.title=\'pwned\'">'
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    # a third account's instance whose name (set by whoever owns it) is hostile
    store_results(store, [unreachable("i-uf6evil0001", "ClientNotRunning", region="cn-shanghai", account="1111222233334444",
                                      name=evil_name)], today)
    rebuild_fleet(store, "en")
    page = tmp_path / "central" / "fleet" / "index.html"
    url = page.resolve().as_uri()
    dom, errors = browser.dom(url)
    assert errors == []
    e = elements(dom)
    ids = {a.get("id") for _, a in e.tags}
    assert {"readiness", "summary", "instances", "f-r0", "f-r1", "f-a0", "f-a1"} <= ids
    assert not [t for t, _ in e.tags if t in ("img", "script")]  # the hostile instance name stayed text
    assert e.title == "Crash overview · ecs-crashdiag"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    section = text[text.index("Ready for the next crash"):text.index("Instances not ready")]
    assert "3 / 6" in section  # Hangzhou's 4 tagged (3 ready), Shanghai's 1 tagged, the unreachable one
    assert "vm.panic_on_oom" in section and "sysctl -w vm.panic_on_oom=0" in section
    assert "blk-mq-timeout-null-deref" in section and "3.10.0-1160.88.1.el7" in section  # exposure with the kernel to upgrade to
    assert "cn-hangzhou" in text and "cn-shanghai" in text and "1234567890123456" in text and "6543210987654321" in text
    rows = [a.get("class", "") for t, a in e.tags if t == "tr" and "fr" in a.get("class", "").split()]
    assert any("r0" in c.split() for c in rows) and any("r1" in c.split() for c in rows)
    # the filters work without script: with a region's anchor targeted, the other region's rows go
    shots = {}
    for frag in ("", "#f-r0", "#f-r1"):
        out = tmp_path / f"shot{frag.strip('#') or 'all'}.png"
        p = browser.run(url + frag, f"--screenshot={out}", "--window-size=1200,2400", "--hide-scrollbars")
        assert p.returncode == 0 and out.exists(), p.stderr[-2000:]
        shots[frag] = out.read_bytes()
    assert len({shots[""], shots["#f-r0"], shots["#f-r1"]}) == 3
