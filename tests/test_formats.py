"""The kind vocabulary is one list: the format table, the ranking, the rule schema and the
DESIGN contract must not drift apart."""

from __future__ import annotations

import json

from crashdiag.classifier import formats as F
from crashdiag.classifier.catalogue import RULES_DIR


def test_every_kind_is_ranked_and_the_schema_knows_it():
    assert set(F.RANK) == set(F.KINDS)
    schema = json.loads((RULES_DIR / "rule.schema.json").read_text())
    assert set(schema["properties"]["kinds"]["items"]["enum"]) == set(F.KINDS) - {"none"}
    assert F.FATAL_KINDS <= set(F.KINDS)
    assert {f.kind for f in F.FORMATS} <= set(F.KINDS)


def test_specific_kinds_outrank_generic_ones():
    # DESIGN: list_del corruption followed by kernel BUG at lib/list_debug.c is list_corruption.
    assert F.RANK["list_corruption"] > F.RANK["kernel_bug"] > F.RANK["invalid_opcode"]
    assert F.RANK["oom_panic"] > F.RANK["oom_kill"] and F.RANK["other"] < F.RANK["other_panic"]
