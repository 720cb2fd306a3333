# Every target bootstraps .venv on a fresh machine (Python 3.10+ with pip is all it needs).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: replay test lint bench corpus-regen package clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[cloud,test]'
	touch $(STAMP)

replay: $(STAMP)
	$(VENV)/bin/crashdiag replay events/eventbridge-crash-kdump-executing.json

test: $(STAMP)
	$(PY) -m ruff check shared functions tests bench tools
	$(PY) -m pytest -q
	$(VENV)/bin/crashdiag rules --check

lint: $(STAMP)
	$(PY) -m ruff check shared functions tests bench tools

bench: $(STAMP)
	$(PY) bench/run.py

# 500 crash events (300 instances, duplicates, both forms, 10% malformed) through the
# pipeline against the local stand-ins; fails unless every event is accounted for once.
storm: $(STAMP)
	$(PY) bench/storm.py

# Function Compute code packages: dist/<function>.zip (one per function, index.py at the
# root; see tools/package.py). Needs PyPI; upload them where template.yml's CodeBucket and
# CodeObjectPrefix point.
package: $(STAMP)
	$(PY) tools/package.py

# Rewrite the header lines of every corpus case from the current classifier output;
# review the diff before committing.
corpus-regen: $(STAMP)
	$(PY) -m pytest -q tests/test_corpus.py --regen

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info shared/*.egg-info
