# The two set-up commands in the README: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test install install-test lint typecheck bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

serve: install
	$(BIN)/relaygate serve

# Claude Code's end-to-end test needs npm; without it (and outside CI) that test skips.
test: install-test
	@if command -v npm >/dev/null 2>&1 || [ "$$CI" = "true" ]; then \
		bash scripts/install-claude-code.sh; \
	else \
		echo "npm not found: the Claude Code end-to-end test will skip"; \
	fi
	$(BIN)/pytest -q

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install-test
	$(BIN)/mypy

bench: install-test
	$(BIN)/python -m bench.run
