"""The crash-log corpus under tests/cases: one case per file.

A case file is header lines, a blank line, then the raw log (syzkaller's layout).
Headers written by people, never rewritten:
  SOURCE:       where the log comes from (URL, seed section, syzkaller test file)
  NOTE:         anything worth knowing about the case
  EXPECT_KIND:  the kind a person judged the log to be
  EXPECT_RULE:  the catalogue rule a person expects (a positive fixture for it)
  NEAR_MISS:    a rule id this log must NOT match (a negative fixture for it)
Headers generated from the classifier (``make corpus-regen`` rewrites them; review the diff):
  KIND, TITLE, RULE, FIX_STATUS, RIP, SUSPECT
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CASES = Path(__file__).with_name("cases")
HUMAN = ("SOURCE", "NOTE", "EXPECT_KIND", "EXPECT_RULE", "NEAR_MISS")
GENERATED = ("KIND", "TITLE", "RULE", "FIX_STATUS", "RIP", "SUSPECT")


@dataclass
class Case:
    path: Path
    headers: list[tuple[str, str]] = field(default_factory=list)
    log: bytes = b""

    def get(self, key: str) -> list[str]:
        return [v for k, v in self.headers if k == key]

    @property
    def name(self) -> str:
        return str(self.path.relative_to(CASES))


def load_case(path: Path) -> Case:
    data = path.read_bytes()
    head, sep, log = data.partition(b"\n\n")
    if not sep:
        raise ValueError(f"{path}: no blank line after the headers")
    headers = []
    for line in head.decode("utf-8").splitlines():
        key, colon, value = line.partition(":")
        if not colon or key not in HUMAN + GENERATED:
            raise ValueError(f"{path}: bad header line {line!r}")
        headers.append((key, value.strip()))
    return Case(path, headers, log)


def all_cases() -> list[Case]:
    return [load_case(p) for p in sorted(CASES.rglob("*.txt"))]


def generated_headers(result: dict) -> list[tuple[str, str]]:
    rule = result.get("rule") or {}
    crash = result.get("crash") or {}
    mods = result.get("modules") or {}
    return [
        ("KIND", result["kind"]),
        ("TITLE", result["title"]),
        ("RULE", rule.get("id") or "-"),
        ("FIX_STATUS", result.get("fix_status") or "-"),
        ("RIP", crash.get("rip_function") or "-"),
        ("SUSPECT", mods.get("suspect") or "-"),
    ]


def write_case(case: Case, generated: list[tuple[str, str]]) -> None:
    human = [(k, v) for k, v in case.headers if k in HUMAN]
    lines = [f"{k}: {v}" for k, v in human + generated]
    case.path.write_bytes(("\n".join(lines) + "\n\n").encode("utf-8") + case.log)
