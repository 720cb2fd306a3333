"""A guest's log is hostile input (issue #11): every pattern over log text runs on RE2, so
no line can make classification or redaction backtrack. These tests check OUTCOMES (the
result is right on the traps); bench/adversarial.py measures how long they take."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from corpus import load_case
from crashdiag.classifier import regex
from crashdiag.classifier.catalogue import RuleError, load_catalogue
from crashdiag.classifier.classify import classify_bytes
from crashdiag.reports.redact import redact_log, redact_text
from hostile import catalogue_patterns, hostile_line, place, positive_fixture, trap_texts

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "shared" / "crashdiag"
BAD_PAGE = ROOT / "tests" / "cases" / "public" / "other-rhel7.7-azure-bad-page-state-omicli.txt"


def _rule_id(result: dict) -> str | None:
    return (result.get("rule") or {}).get("id")


# --- the traps the review found --------------------------------------------------------------


def test_a_160kb_line_of_xfs_inside_a_generic_report_is_classified_as_that_report():
    """`XFS(?: \\(...\\))?: .*(?:returned error -117|...)` backtracked for 11 s over this line
    inside a report of kind other (the XFS rules' kind); now the bad page state is found."""
    case = load_case(BAD_PAGE)
    data = place(case.log, hostile_line("XFS: ", 160_000), "inside", 1)
    result = classify_bytes(data)
    assert result["kind"] == "other" and _rule_id(result) == "bad-page-state"
    assert result["title"].startswith("BUG: Bad page state")


def test_an_ipv6_candidate_line_is_left_alone_and_real_addresses_on_it_are_hidden():
    trap = "a:" * 800 + "g"  # 1.6 KB: seconds of backtracking in the old candidate pattern
    assert redact_text(trap) == trap
    line = f"eth0: from fe80::1:2 and 10.0.0.5 {trap} to 2001:db8::7334."
    out = redact_text(line)
    assert out == f"eth0: from <ip> and <ip> {trap} to <ip>."
    big = ("a:" * 80_000 + "g ").encode() + b"fe80::1\n"
    assert redact_log(big).endswith(b" <ip>\n")


def test_a_line_of_many_printk_records_before_a_report_leaves_the_report():
    line = "login: " + " ".join(f"[{i:5d}.000000] x" for i in range(1, 20_000))
    result = classify_bytes(place(load_case(BAD_PAGE).log, line, "before", 1))
    assert result["kind"] == "other" and _rule_id(result) == "bad-page-state"


# --- the engine ------------------------------------------------------------------------------


def _modules_importing_re() -> list[str]:
    out = []
    for path in [*sorted((SHARED / "classifier").glob("*.py")), SHARED / "reports" / "redact.py"]:
        if path.name == "regex.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module in ("re", "sre_compile", "regex"):
                names = [node.module]
            if any(n == "re" or n.startswith("re.") for n in names):
                out.append(path.name)
    return out


def test_nothing_over_log_text_uses_the_backtracking_engine():
    """The classifier and the redactor import classifier.regex (RE2), never Python's re."""
    assert _modules_importing_re() == []


def test_regex_wrapper_behaves_like_re_for_what_the_code_uses():
    rx = regex.compile(r"(?P<func>[a-z_]+)\+(?P<off>0x[0-9a-f]+)")
    for text in ("RIP: do_exit+0x1f/0x20", "RIP: dö_exit do_exit+0x1f/0x20"):  # ASCII and not
        m = rx.search(text)
        assert m.group("func") == "do_exit" and m["off"] == "0x1f" and m.groupdict() == {"func": "do_exit", "off": "0x1f"}
        assert text[m.start():m.end()] == "do_exit+0x1f" and m.span("off")[1] == m.end()
    assert rx.match("RIP: do_exit+0x1") is None and rx.match("do_exit+0x1").group(0) == "do_exit+0x1"
    assert regex.compile(r"\d+").sub("N", "a1b22") == "aNbN"
    assert regex.compile(r"(\d)").sub(lambda m: m.group(1) * 2, "é1 2") == "é11 22"
    assert [m.group(0) for m in regex.compile(r"x*").finditer("axb")] == ["", "x", "", ""]
    assert regex.compile(r",\s*").split("a, b,c") == ["a", "b", "c"]
    assert regex.compile("abc", regex.IGNORECASE).search("xABC") is not None
    with pytest.raises(regex.error):
        regex.compile(r"a(?=b)")


def test_a_rule_pattern_re2_cannot_run_is_a_broken_catalogue(tmp_path):
    src = (SHARED / "classifier" / "rules" / "generic-mce.yaml").read_text()
    (tmp_path / "generic-mce.yaml").write_text(src.replace("match:\n", "match:\n  not_text: ['Machine check(?! events)']\n", 1))
    (tmp_path / "rule.schema.json").write_text((SHARED / "classifier" / "rules" / "rule.schema.json").read_text())
    with pytest.raises(RuleError, match=r"generic-mce.yaml: match.not_text pattern .* cannot run on RE2"):
        load_catalogue(str(tmp_path))
    cli = subprocess.run([sys.executable, "-m", "crashdiag.cli", "rules", "--check", "--rules", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert cli.returncode != 0 and "cannot run on RE2" in cli.stderr and "lookarounds" in cli.stderr


def test_the_time_budget_ends_classification_with_what_it_has():
    case = load_case(BAD_PAGE)
    full = classify_bytes(case.log)
    assert full["confidence"] != "low" or not any("time budget" in r for r in full["confidence_reasons"])
    cut = classify_bytes(case.log, budget_s=1e-9)
    assert cut["confidence"] == "low" and cut["input"]["time_budget_exceeded"] is True
    assert any(r.startswith("time budget") for r in cut["confidence_reasons"])


# --- adversarial lines generated from the catalogue --------------------------------------------

TARGETS = catalogue_patterns()
SIZE = 200_000


def test_every_rule_pattern_has_a_trap_text():
    assert len(TARGETS) >= len(load_catalogue())
    for t in TARGETS:
        texts = trap_texts(t.pattern)
        assert texts, t
        assert any(regex.compile(t.pattern).search(x) for x in texts), t  # the shortest match is one


@pytest.mark.parametrize("rule_id", sorted({t.rule for t in TARGETS}))
def test_catalogue_traps_around_a_report_leave_its_outcome(rule_id):
    """Each pattern's trap texts, as 200 KB lines placed before, inside or after the rule's
    own positive fixture, classify like the same log with the piece written once (kind and
    rule): the length of a hostile line changes nothing, and the report is still found."""
    case = load_case(positive_fixture(rule_id))
    base = classify_bytes(case.log)
    at = (base.get("crash") or {}).get("line") or 1
    for t in (t for t in TARGETS if t.rule == rule_id):
        for piece in trap_texts(t.pattern):
            for where in ("before", "inside", "after"):
                got = classify_bytes(place(case.log, hostile_line(piece, SIZE), where, at))
                if (got["kind"], _rule_id(got)) != (base["kind"], _rule_id(base)):  # the piece itself may count
                    want = classify_bytes(place(case.log, hostile_line(piece, len(piece)), where, at))
                    assert (got["kind"], _rule_id(got)) == (want["kind"], _rule_id(want)), (where, t.field, t.pattern, piece)
                assert got["kind"] == base["kind"], (where, t.field, t.pattern, piece)
