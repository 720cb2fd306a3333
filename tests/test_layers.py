"""The layer rules that import-linter cannot state: nothing imports functions/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLER_MODULES = {"index", "functions"} | {p.name for p in (ROOT / "functions").iterdir() if p.is_dir()}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_nothing_in_the_package_imports_a_handler():
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & HANDLER_MODULES)
                 for p in (ROOT / "shared").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_a_handler_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from index import handler\n")
    assert imported_roots(bad) & HANDLER_MODULES == {"index"}
