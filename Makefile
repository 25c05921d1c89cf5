# logwarden: `make run` starts the platform, `make test` runs the suite.
# Both create .venv and install what is missing first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
APT_UPDATED := /tmp/.logwarden-apt-updated

.PHONY: run test bench lint vendor clean system-redis system-test-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Install a Debian package when its command is missing: as root with apt-get,
# otherwise say exactly what to install.
define need_command
	@if ! command -v $(1) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    [ -f $(APT_UPDATED) ] || { apt-get update -qq && touch $(APT_UPDATED); }; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "logwarden: '$(1)' is missing: install the '$(2)' package (e.g. sudo apt-get install $(2))"; exit 1; \
	  fi; \
	fi
endef

system-redis:
	$(call need_command,redis-server,redis-server)

system-test-deps: system-redis
	$(call need_command,chromium,chromium)
	$(call need_command,promtool,prometheus)

run: $(STAMP) system-redis
	$(BIN)/logwarden up

test: $(STAMP) system-test-deps
	$(BIN)/ruff check shared services tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP) system-redis
	$(BIN)/python bench/store.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/live.py

lint: $(STAMP)
	$(BIN)/ruff check shared services tests bench
	$(BIN)/ruff format --check shared services tests bench
	$(BIN)/mypy

# Refresh the browser libraries vendored under services/gateway/static/vendor
# (needs node + npm; the result is committed, so `make run` never needs npm).
vendor:
	bash services/gateway/static/vendor/update.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
