# One virtualenv, one pip call: the kit, its pinned SDKs and the test tools.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install system-tools demo test bench
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# The main job: plan an example profile, then preview its stack offline (no cloud, no Pulumi CLI).
demo: install
	$(BIN)/llmhost plan stacks/profiles/startup-api.yaml --stack startup-api
	$(BIN)/llmhost preview --stack startup-api

# promtool (alert-rule unit tests) and a Prometheus server (the live scrape test) come from Debian's `prometheus`
# package; where apt-get is missing the tests that need them are skipped, and say so.
system-tools:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
	  if command -v apt-get >/dev/null; then \
	    SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "promtool/prometheus not found and no apt-get: the alert-rule and live Prometheus tests will be skipped"; fi; \
	fi

test: install system-tools
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/plan_preview.py
	$(BIN)/python bench/gateway_latency.py
