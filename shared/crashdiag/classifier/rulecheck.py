"""``crashdiag rules --check``: every rule is valid and proven by its fixtures.

A rule passes when its file loads against the schema (done by the loader), its
references are well formed (the schema's pattern), and the case corpus holds at
least one positive fixture (``EXPECT_RULE: <id>``) that classifies to it and at
least one near-miss negative (``NEAR_MISS: <id>``) that does not.
"""

from __future__ import annotations

from pathlib import Path

from .catalogue import Rule
from .classify import classify_bytes


def _read_case(path: Path) -> tuple[dict[str, list[str]], bytes]:
    data = path.read_bytes()
    head, _, log = data.partition(b"\n\n")
    headers: dict[str, list[str]] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        key, colon, value = line.partition(":")
        if colon:
            headers.setdefault(key.strip(), []).append(value.strip())
    return headers, log


def check_rules(rules: tuple[Rule, ...], cases_dir: str) -> tuple[list[str], str]:
    root = Path(cases_dir)
    if not root.is_dir():
        return [f"fixture directory {cases_dir} not found (run from the repository root or pass --cases)"], "0 rules checked"
    positives: dict[str, list[Path]] = {r.id: [] for r in rules}
    negatives: dict[str, list[Path]] = {r.id: [] for r in rules}
    results: dict[Path, str | None] = {}
    problems: list[str] = []
    known = {r.id for r in rules}
    for path in sorted(root.rglob("*.txt")):
        headers, log = _read_case(path)
        wanted = headers.get("EXPECT_RULE", []) + headers.get("NEAR_MISS", [])
        if not wanted:
            continue
        for rid in wanted:
            if rid not in known:
                problems.append(f"{path}: names unknown rule {rid}")
        try:
            result = classify_bytes(log, rules=rules, source=str(path))
        except Exception as exc:  # a fixture that cannot be classified is a failure, not a crash
            problems.append(f"{path}: cannot classify: {exc}")
            continue
        got = (result.get("rule") or {}).get("id")
        results[path] = got
        for rid in headers.get("EXPECT_RULE", []):
            if rid in positives:
                positives[rid].append(path)
                if got != rid:
                    problems.append(f"{rid}: positive fixture {path} matched {got or 'no rule'}")
        for rid in headers.get("NEAR_MISS", []):
            if rid in negatives:
                negatives[rid].append(path)
                if got == rid:
                    problems.append(f"{rid}: near-miss fixture {path} matched it")
    for r in rules:
        if not positives[r.id]:
            problems.append(f"{r.id}: no positive fixture (EXPECT_RULE: {r.id})")
        if not negatives[r.id]:
            problems.append(f"{r.id}: no near-miss fixture (NEAR_MISS: {r.id})")
    ok = len(rules) - len({p.split(":", 1)[0] for p in problems if p.split(":", 1)[0] in known})
    summary = f"{len(rules)} rules checked, {ok} passed, {len(results)} fixtures classified"
    return problems, summary
