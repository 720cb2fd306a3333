from __future__ import annotations

import sys
from pathlib import Path

# Tests import the package from the source tree even without `pip install -e`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_addoption(parser):
    parser.addoption("--regen", action="store_true", help="rewrite generated corpus headers from current output")
