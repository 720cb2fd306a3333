"""Hostile lines built from the catalogue's own patterns (tests/test_hostile.py, bench/adversarial.py).

A backtracking engine is slow on text that almost matches: a pattern's literal prefix
repeated many times, each copy starting a match that a later ``.*`` or ``\\S+`` carries to
the end of the line before it fails. For every pattern of every rule file this module
builds those texts: the shortest text the pattern matches, and each piece of it that comes
before an unbounded repeat (``XFS: `` for ``XFS(?: \\(...\\))?: .*(?:a|b)``), each repeated
to the size asked for. A new rule's patterns are covered the day it lands.
"""

from __future__ import annotations

import re._constants as C
import re._parser as P
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corpus import load_case
from crashdiag.classifier.catalogue import Rule, load_catalogue

FIELDS = ("text", "text_any", "not_text", "panic", "context_any")
_CANDIDATES = "a1 x-_.:(/)[]=,;'\"#eEZ\t" + string.printable
TIMESTAMP = "[  100.000000] "


def _class_member(ch: str, items: list) -> bool:
    negate = False
    hit = False
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            hit |= ord(ch) == av
        elif op is C.RANGE:
            hit |= av[0] <= ord(ch) <= av[1]
        elif op is C.CATEGORY:
            hit |= {
                C.CATEGORY_DIGIT: ch.isdigit(), C.CATEGORY_NOT_DIGIT: not ch.isdigit(),
                C.CATEGORY_SPACE: ch.isspace(), C.CATEGORY_NOT_SPACE: not ch.isspace(),
                C.CATEGORY_WORD: ch.isalnum() or ch == "_", C.CATEGORY_NOT_WORD: not (ch.isalnum() or ch == "_"),
            }.get(av, False)
    return hit != negate


def _char(items: list) -> str:
    return next((c for c in _CANDIDATES if _class_member(c, items)), "a")


def _minimal(seq) -> Iterator[tuple[str, bool]]:
    """(text, unbounded_follows) for each element: the shortest text it matches, and
    whether it is a repeat without an upper bound (where a trap's prefix ends)."""
    for op, av in seq:
        if op is C.LITERAL:
            yield chr(av), False
        elif op is C.NOT_LITERAL:
            yield ("a" if av != ord("a") else "b"), False
        elif op is C.ANY:
            yield "a", False
        elif op is C.IN:
            yield _char(av), False
        elif op is C.CATEGORY:
            yield _char([(op, av)]), False
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            body = "".join(t for t, _ in _minimal(sub))
            yield body * lo, hi == C.MAXREPEAT
        elif op is C.SUBPATTERN:
            yield from _minimal(av[-1])
        elif op is C.BRANCH:
            yield from _minimal(av[1][0])
        # anchors and the like match no text


def trap_texts(pattern: str) -> list[str]:
    """The shortest text the pattern matches and each prefix of it that ends where an
    unbounded repeat starts (without repeats of empty text)."""
    out: list[str] = []
    acc = ""
    for text, unbounded in _minimal(P.parse(pattern)):
        if unbounded and acc.strip() and acc not in out:
            out.append(acc)
        acc += text
    if acc.strip() and acc not in out:
        out.append(acc)
    return out


def hostile_line(piece: str, size: int) -> str:
    """One log line: the piece repeated to about ``size`` characters."""
    return TIMESTAMP + (piece * (size // max(1, len(piece)) + 1))[:size]


@dataclass(frozen=True)
class Target:
    rule: str
    field: str
    pattern: str
    path: Path  # the rule file


def catalogue_patterns(rules: tuple[Rule, ...] | None = None) -> list[Target]:
    out = []
    for r in rules or load_catalogue():
        spec = r.match_spec
        for f in FIELDS:
            pats = spec.get(f)
            if pats is None:
                continue
            for p in [pats] if isinstance(pats, str) else pats:
                out.append(Target(r.id, f, p, r.path))
    return out


def positive_fixture(rule_id: str) -> Path:
    """A corpus case that a person expects to match the rule (there is one for every rule)."""
    from corpus import CASES

    for p in sorted(CASES.rglob("*.txt")):
        if rule_id in load_case(p).get("EXPECT_RULE"):
            return p
    raise LookupError(rule_id)


def place(log: bytes, line: str, where: str, report_line: int) -> bytes:
    """The log with the line before (just above the report), inside (after the report's
    first line) or after (at the end of) the report."""
    lines = log.split(b"\n")
    at = {"before": max(0, report_line - 1), "inside": report_line, "after": len(lines)}[where]
    return b"\n".join([*lines[:at], line.encode(), *lines[at:]])
