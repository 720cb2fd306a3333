"""Every case in tests/cases classifies as its headers say."""

from __future__ import annotations

import pytest

from corpus import all_cases, generated_headers, write_case
from crashdiag.classifier.classify import classify_bytes

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, request):
    result = classify_bytes(case.log, source=case.name)
    got = generated_headers(result)
    if request.config.getoption("--regen"):
        write_case(case, got)
    for kind in case.get("EXPECT_KIND"):
        assert result["kind"] == kind, f"{case.name}: expected kind {kind}, got {result['kind']} ({result['title']})"
    for rule in case.get("EXPECT_RULE"):
        assert (result["rule"] or {}).get("id") == rule, f"{case.name}: expected rule {rule}, got {(result['rule'] or {}).get('id')}"
    for rule in case.get("NEAR_MISS"):
        assert (result["rule"] or {}).get("id") != rule, f"{case.name}: must not match {rule}"
    if request.config.getoption("--regen"):
        return
    want = [(k, v) for k, v in case.headers if k in dict(got)]
    assert want == got, f"{case.name}: generated headers differ (run make corpus-regen and review)"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_fatal_message_head_is_never_none(case):
    """Wherever a line carries one of the kernel's fatal message heads, the log is not 'none'."""
    from crashdiag.classifier.logtext import FATAL_HEAD, decode

    if FATAL_HEAD.search(decode(case.log)):
        assert classify_bytes(case.log, source=case.name)["kind"] != "none", case.name
