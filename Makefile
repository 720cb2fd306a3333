# Every target bootstraps .venv on a fresh machine (Python 3.10+ with pip is all it needs).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: replay test test-tools lint bench storm chaos screenshots package corpus-regen clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[cloud,test]'
	touch $(STAMP)

replay: $(STAMP)
	$(VENV)/bin/crashdiag replay events/eventbridge-crash-kdump-executing.json

# Programs some tests drive: headless Chromium for the report pages, dash and busybox to
# run the guest script under other shells, curl for its upload. Installed when we are root
# (CI, a fresh machine); otherwise those tests say why they skip.
test-tools:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium dash busybox curl fonts-noto-cjk >/dev/null) \
		|| echo "test-tools: could not install chromium/dash/busybox; their tests will skip"; \
	fi

test: $(STAMP) test-tools
	$(PY) -m ruff check shared functions tests bench tools
	$(VENV)/bin/lint-imports
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
	$(PY) bench/storm.py --deaths 0.05

# Kill the pipeline before and after every store write and external call of every stage
# (and lose the reply of every conditional create), let the platform retry, and check that
# each incident still ends with one report and one message per channel (docs/PIPELINE.md).
chaos: $(STAMP)
	$(PY) bench/chaos.py

# Function Compute code packages: dist/<function>.zip (one per function, index.py at the
# root; see tools/package.py). Needs PyPI; upload them where template.yml's CodeBucket and
# CodeObjectPrefix point.
package: $(STAMP)
	$(PY) tools/package.py

# PNGs of an incident page and the fleet page for the README (headless Chromium).
screenshots: $(STAMP) test-tools
	$(PY) tools/screenshots.py

# Rewrite the header lines of every corpus case from the current classifier output;
# review the diff before committing.
corpus-regen: $(STAMP)
	$(PY) -m pytest -q tests/test_corpus.py --regen

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info shared/*.egg-info
