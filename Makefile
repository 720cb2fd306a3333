# Every target bootstraps .venv on a fresh machine (Python 3.10+ with pip is all it needs).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: replay test lint bench corpus-regen clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[cloud,test]'
	touch $(STAMP)

replay: $(STAMP)
	$(VENV)/bin/crashdiag replay events/eventbridge-crash-kdump-executing.json

test: $(STAMP)
	$(PY) -m ruff check shared tests bench
	$(PY) -m pytest -q
	$(VENV)/bin/crashdiag rules --check

lint: $(STAMP)
	$(PY) -m ruff check shared tests bench

bench: $(STAMP)
	$(PY) bench/run.py

# Rewrite the header lines of every corpus case from the current classifier output;
# review the diff before committing.
corpus-regen: $(STAMP)
	$(PY) -m pytest -q tests/test_corpus.py --regen

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info shared/*.egg-info
