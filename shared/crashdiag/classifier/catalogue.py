"""The known-issue catalogue: one YAML file per rule under ``rules/``.

Every file is checked against ``rules/rule.schema.json`` when loaded (a broken
rule fails loudly, it never silently matches nothing), its regexes are compiled
once with RE2 (``regex.py``: linear time over guest text; a pattern RE2 cannot run is
a broken rule), and ``match`` picks the most specific rule for a report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import regex as re  # RE2, linear in the text: every pattern here may meet guest text

RULES_DIR = Path(__file__).with_name("rules")


class RuleError(Exception):
    """A rule file is not valid."""


@dataclass(frozen=True)
class Rule:
    id: str
    data: dict[str, Any]
    path: Path
    text: tuple[re.Pattern[str], ...]
    text_any: tuple[re.Pattern[str], ...]
    not_text: tuple[re.Pattern[str], ...]
    panic: re.Pattern[str] | None
    context_any: tuple[re.Pattern[str], ...] = ()

    @property
    def priority(self) -> int:
        return int(self.data.get("priority", 50))

    @property
    def kinds(self) -> list[str]:
        return self.data["kinds"]

    @property
    def category(self) -> str:
        return self.data["category"]

    @property
    def match_spec(self) -> dict[str, Any]:
        return self.data.get("match", {})


@lru_cache(maxsize=1)
def _validator():
    import fastjsonschema

    schema = json.loads((RULES_DIR / "rule.schema.json").read_text(encoding="utf-8"))
    return fastjsonschema.compile(schema)


def _yaml_load(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def load_rule(path: Path) -> Rule:
    import fastjsonschema

    try:
        data = _yaml_load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # yaml.YAMLError, UnicodeDecodeError
        raise RuleError(f"{path.name}: not valid YAML: {exc}") from None
    try:
        _validator()(data)
    except fastjsonschema.JsonSchemaException as exc:
        raise RuleError(f"{path.name}: {exc.message}") from None
    if data["id"] != path.stem:
        raise RuleError(f"{path.name}: id {data['id']!r} does not match the file name")
    spec = data.get("match", {})

    def compiled(field: str, pattern: str) -> re.Pattern[str]:
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise RuleError(
                f"{path.name}: match.{field} pattern {pattern!r} cannot run on RE2, the linear-time engine every "
                f"pattern over guest text must use ({exc}); lookarounds (?=, (?!, (?<=, (?<! and backreferences "
                "are not available: match the text itself or split the pattern"
            ) from None

    text = tuple(compiled("text", p) for p in spec.get("text", ()))
    text_any = tuple(compiled("text_any", p) for p in spec.get("text_any", ()))
    not_text = tuple(compiled("not_text", p) for p in spec.get("not_text", ()))
    panic = compiled("panic", spec["panic"]) if "panic" in spec else None
    context_any = tuple(compiled("context_any", p) for p in spec.get("context_any", ()))
    if not spec:
        raise RuleError(f"{path.name}: match is empty; a rule must say what it matches")
    return Rule(data["id"], data, path, text, text_any, not_text, panic, context_any)


@lru_cache(maxsize=4)
def load_catalogue(directory: str | None = None) -> tuple[Rule, ...]:
    d = Path(directory) if directory else RULES_DIR
    rules = tuple(load_rule(p) for p in sorted(d.glob("*.yaml")))
    ids = [r.id for r in rules]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise RuleError(f"duplicate rule ids: {', '.join(sorted(dup))}")
    return rules


@dataclass(frozen=True)
class Facts:
    """What a rule can look at, taken from the primary report."""

    kind: str
    lines: tuple[str, ...]
    prelude: tuple[str, ...]  # lines just before the report (an I/O timeout before a hung task)
    panic: str
    rip_function: str | None
    functions: frozenset[str]  # trace frames and the RIP
    modules_in_trace: frozenset[str]
    suspect_module: str | None
    bad_rip: bool
    stream: str | None


def rule_matches(rule: Rule, f: Facts) -> bool:
    if f.kind not in rule.kinds:
        return False
    spec = rule.match_spec
    if "rip_function" in spec and f.rip_function not in spec["rip_function"]:
        return False
    if "trace_any" in spec and not f.functions.intersection(spec["trace_any"]):
        return False
    if "trace_all" in spec and not f.functions.issuperset(spec["trace_all"]):
        return False
    if "modules_in_trace" in spec and not f.modules_in_trace.intersection(spec["modules_in_trace"]):
        return False
    if "suspect_module" in spec and bool(f.suspect_module) != spec["suspect_module"]:
        return False
    if "bad_rip" in spec and f.bad_rip != spec["bad_rip"]:
        return False
    if "streams" in spec and f.stream not in spec["streams"]:
        return False
    if rule.panic is not None and not rule.panic.search(f.panic):
        return False
    for rx in rule.text:
        if not any(rx.search(line) for line in f.lines):
            return False
    if rule.text_any and not any(rx.search(line) for rx in rule.text_any for line in f.lines):
        return False
    if rule.context_any and not any(rx.search(line) for rx in rule.context_any for line in (*f.prelude, *f.lines)):
        return False
    return not any(rx.search(line) for rx in rule.not_text for line in f.lines)


def best_match(rules: tuple[Rule, ...], f: Facts, deadline: float | None = None) -> Rule | None:
    """The matching rule with the highest priority; ties go to the one that checks more.
    Past ``deadline`` (time.monotonic) the rules not yet tried are skipped."""
    import time

    best: Rule | None = None
    for r in rules:
        if deadline is not None and time.monotonic() > deadline:
            break
        if not rule_matches(r, f):
            continue
        if best is None or (r.priority, len(r.match_spec)) > (best.priority, len(best.match_spec)):
            best = r
    return best
