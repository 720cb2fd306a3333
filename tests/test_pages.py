"""The page templates: Jinja2 stays out of the functions that write no page, and the
templates keep to the escaping filters (tests/test_html_report.py and tests/test_fleet.py
check the pages themselves)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "shared" / "crashdiag" / "reports" / "templates"

# What each handler builds on its first invocation, and the page-side modules its work
# imports (notify reads report.json and links report.html; the flush sends the digest,
# which reads the fleet index through reports.fleet).
FIRST_USE = {
    "on_ecs_event": "pipeline_for('ingest')",
    "collect": "pipeline_for('collect')",
    "notify": "pipeline_for('notify'); import crashdiag.notify.content, crashdiag.reports.html_report",
    "notify_flush": "pipeline_for('notify'); import crashdiag.notify.digest, crashdiag.reports.fleet",
}


def loaded_after(function: str, code: str, tmp_path: Path) -> set[str]:
    """Which of jinja2 and markupsafe a fresh interpreter holds after importing the
    handler module of ``function`` (as FC does) and running ``code``."""
    probe = (
        "import sys\n"
        f"sys.path[:0] = [{str(ROOT / 'functions' / function)!r}, {str(ROOT / 'shared')!r}, {str(ROOT / 'tests')!r}]\n"
        "import index\n"
        "from crashdiag.pipeline.runtime import pipeline_for\n"
        f"{code}\n"
        "print(' '.join(m for m in ('jinja2', 'markupsafe') if m in sys.modules))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "CRASHDIAG_STORE_DIR": str(tmp_path / "store"),
           "CRASHDIAG_FC_ENDPOINT": "http://127.0.0.1:9", "ECS_ENDPOINT": "http://127.0.0.1:9"}  # never contacted
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


@pytest.mark.parametrize("function", sorted(FIRST_USE))
def test_functions_that_write_no_page_never_load_jinja2(function, tmp_path):
    assert loaded_after(function, FIRST_USE[function], tmp_path) == set()


@pytest.mark.parametrize("function", ["diagnose", "fleet"])
def test_the_page_writers_load_it_on_their_first_page_only(function, tmp_path):
    """The probe above can see Jinja2: importing a page writer loads nothing, a page does."""
    assert loaded_after(function, "", tmp_path) == set()
    page = ("from crashdiag.reports.fleet import render_fleet_html, empty_index; render_fleet_html(empty_index())"
            if function == "fleet" else
            "from crashdiag.reports.html_report import render_html; render_html({'diagnosis': {'kind': 'none'}})")
    assert loaded_after(function, page, tmp_path) == {"jinja2", "markupsafe"}


def test_templates_use_only_escaping_output():
    """Guest text must reach a page through {{ }} (escape.h) or |text/|lines. Jinja's
    own join, escape and replace escape with markupsafe alone (no control or bidi
    characters replaced, no bound) and |safe or autoescape false would let it through raw."""
    names = sorted(p.name for p in TEMPLATES.glob("*.j2"))
    assert {"base.html.j2", "macros.html.j2", "incident.html.j2", "fleet.html.j2", "page.css.j2"} <= set(names)
    for name in names:
        src = (TEMPLATES / name).read_text()
        assert not re.search(r"\|\s*(safe|join|e|escape|replace|forceescape|urlize|xmlattr|tojson)\b", src), name
        assert "autoescape" not in src and "Markup" not in src and "<script" not in src.lower(), name
