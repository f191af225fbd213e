# One virtualenv, one pip call: the kit, its pinned SDKs and the test tools.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install demo test bench
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# The main job: plan an example profile, then preview its stack offline (no cloud, no Pulumi CLI).
demo: install
	$(BIN)/llmhost plan stacks/profiles/startup-api.yaml --stack startup-api
	$(BIN)/llmhost preview --stack startup-api

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/plan_preview.py
	$(BIN)/python bench/gateway_latency.py
