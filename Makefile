# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[parquet]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(BIN)/sim run scenarios/baseline.toml --replications 5 --out out/baseline
	$(BIN)/sim run scenarios/subscription.toml --replications 5 --out out/subscription
	$(BIN)/sim compare scenarios/baseline.toml scenarios/discount.toml scenarios/loyalty.toml \
		--replications 10 --customers 5000 --seed 1 --out out/compare
	$(BIN)/sim report scenarios/baseline.toml scenarios/discount.toml scenarios/loyalty.toml \
		--replications 10 --customers 5000 --seed 1 -o out/report.html

test: $(STAMP_TEST)
	@# the report test opens the report in Debian's headless chromium; skipped if unavailable
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
		|| echo "chromium could not be installed: the report's browser check will be skipped"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --durations=10

lint: $(STAMP_TEST)
	$(BIN)/ruff check .

bench: $(STAMP_RUN)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/read_events.py

bench-interacting: $(STAMP_RUN)
	$(BIN)/python benchmarks/interacting.py

docs: $(STAMP_RUN)
	$(BIN)/python docs/figures.py

clean:
	rm -rf out .pytest_cache .hypothesis
