# cardflow — `make serve` starts it, `make test` runs every test. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test soak check bench docs screenshots install clean

$(BIN)/.installed: pyproject.toml constraints.txt tests/requirements-no-deps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -c constraints.txt -r tests/requirements-no-deps.txt
	touch $@

install: $(BIN)/.installed

serve: $(BIN)/.installed  ## start cardflow on http://127.0.0.1:8080 (SQLite under ./.cardflow)
	$(BIN)/cardflow serve

test: $(BIN)/.installed  ## the whole test suite (SQLite and PostgreSQL), two workers, one file each
	$(BIN)/pytest -n 2 --dist loadfile --durations=25

soak: $(BIN)/.installed  ## the kill -9 crash tests with 5x the cycles of make test (~15 min)
	CARDFLOW_TEST_SOAK=1 $(BIN)/pytest -n 2 --durations=10 \
		tests/integration/test_refresh_crash.py tests/integration/test_queue.py

check: $(BIN)/.installed  ## ruff (lint + format) and mypy --strict
	PATH=$(BIN):$$PATH scripts/check

bench: $(BIN)/.installed  ## benchmarks (figures, not pass/fail)
	$(BIN)/python bench/card_overhead.py
	$(BIN)/python bench/refresh_storm.py
	$(BIN)/python bench/invoke.py
	$(BIN)/python bench/abuse.py
	$(BIN)/python bench/queued_runs.py

docs: $(BIN)/.installed  ## regenerate docs/cards.md from the card registry
	$(BIN)/python -m cardflow.cards.docs > docs/cards.md

screenshots: $(BIN)/.installed  ## re-take docs/screenshots with the browser tests (needs chromium)
	CARDFLOW_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
