# Everything a fresh Debian machine with Python 3.13 and npm needs, installed on demand.
#   make run    - set up, then run dip-edge locally (HTTPS + client certificates, like App Service)
#   make test   - set up (Debian's chromium too, for the page tests), then run the whole
#                 test suite (what CI runs)
#   make bench  - set up, then run every benchmark and print the table
# Python 3.13: `python3.13` on PATH (Debian 13's default), else the newest pyenv-installed 3.13
# (pyenv's shim for python3.13 fails unless that version is selected, so it is run to be sure).
ifndef PYTHON
PYTHON := $(shell for p in python3.13 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 \
	2>/dev/null | sort -V | tail -n 1); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { command -v "$$p"; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE := node_modules/.bin/azurite
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
# The page tests drive Debian's Chromium through Playwright (never `playwright install`).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
OTEL_VENV := .venv-otel
OTEL_STAMP := $(OTEL_VENV)/.installed

.PHONY: run test bench lint setup clean

setup: $(STAMP) $(AZURITE)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed: install it (Debian 13: apt-get install python3.13 python3.13-venv; or pyenv install 3.13), or run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || rm -rf $(VENV)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# checkov pins many libraries (and an older pycep-parser), so it lives in its own venv.
$(INFRA_STAMP): requirements-infra.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed (see above)" >&2; exit 1; }
	@$(INFRA_VENV)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || rm -rf $(INFRA_VENV)
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install --quiet -r requirements-infra.txt
	touch $@

# Only bench/bench_telemetry.py uses it: the Azure Monitor OpenTelemetry distro, which
# dip-edge does not depend on, measured for what it would add to a cold start.
$(OTEL_STAMP): requirements-otel.txt requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed (see above)" >&2; exit 1; }
	@$(OTEL_VENV)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || rm -rf $(OTEL_VENV)
	test -x $(OTEL_VENV)/bin/python || $(PYTHON) -m venv $(OTEL_VENV)
	$(OTEL_VENV)/bin/python -m pip install --quiet -r requirements-otel.txt
	touch $@

$(AZURITE): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || { \
	  $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

run: $(STAMP)
	$(BIN)/dip-edge serve

test: $(STAMP) $(AZURITE) $(INFRA_STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(STAMP) $(AZURITE) $(OTEL_STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(INFRA_VENV) $(OTEL_VENV) node_modules .pytest_cache .ruff_cache
