# pilot-agent: `make demo` and `make test` do all their own set-up on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Debian packages: what the agent needs to run, and the real servers the tests start.
DEB_RUN  := python3 python3-venv ca-certificates
DEB_TEST := $(DEB_RUN) redis-server prometheus prometheus-alertmanager prometheus-blackbox-exporter chromium openssl postgresql

.PHONY: demo test lint typecheck pytest install deb-run deb-test constraints clean

demo: deb-run $(STAMP)
	$(BIN)/pilot-agent demo

test: deb-test $(STAMP) lint typecheck pytest

deb-run:
	@scripts/install-deb-deps.sh $(DEB_RUN)

deb-test:
	@scripts/install-deb-deps.sh $(DEB_TEST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check agent exporters dashboards tests benchmarks scripts
	$(BIN)/ruff format --check agent exporters dashboards tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy agent exporters dashboards

pytest: $(STAMP)
	$(BIN)/pytest

# Refresh the pinned versions after changing dependencies in pyproject.toml.
constraints: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts demo-data
