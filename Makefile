# creditledger — every target works from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CREDITLEDGER_DATABASE_URL ?= sqlite:///./creditledger.db
PORT ?= 8000

.PHONY: install run test soak check format lint typecheck contracts fuzz-api bench bench-pdf bench-invoices bench-intake clean

$(BIN)/creditledger: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

install: $(BIN)/creditledger  ## virtualenv with the locked dependencies

run: install  ## migrate, load the demo team and serve on http://127.0.0.1:$(PORT) until Ctrl-C
	$(BIN)/creditledger migrate
	CREDITLEDGER_PORT=$(PORT) $(BIN)/creditledger demo
	$(BIN)/creditledger serve --host 127.0.0.1 --port $(PORT)

test: install  ## the whole suite, on SQLite and (when it answers) PostgreSQL, browser tests included
	$(BIN)/pytest -n 2 -p no:cacheprovider

SOAK_SEEDS ?= 50
MODEL_EXAMPLES ?= 200
soak: install  ## long fault runs: kill -9 over SOAK_SEEDS seeds, the ledger model for MODEL_EXAMPLES
	CREDITLEDGER_SOAK_SEEDS=$(SOAK_SEEDS) CREDITLEDGER_MODEL_EXAMPLES=$(MODEL_EXAMPLES) \
		$(BIN)/pytest -p no:cacheprovider -m soak tests/e2e/test_usage_kill.py tests/integration/test_ledger_model.py

format: install
	$(BIN)/ruff format src tests bench

lint: install
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

check: lint typecheck contracts test  ## everything CI runs

FUZZ_EXAMPLES ?= 8
fuzz-api: install  ## schemathesis against a live server from /openapi.json (FUZZ_EXAMPLES per operation)
	$(BIN)/python -m tests.fuzz.api_fuzz --max-examples $(FUZZ_EXAMPLES)

bench: install  ## every benchmark; results land in bench/results/
	@for script in bench/ingest.py bench/authorize.py bench/history.py; do echo "== $$script"; $(BIN)/python $$script $(BENCH_ARGS) || exit 1; done

bench-pdf: install  ## invoice PDF render time, 1 and 1,000 lines; results land in bench/results/
	$(BIN)/python bench/pdf.py $(BENCH_ARGS)

bench-invoices: install  ## the invoices job over 10,000 teams, SQLite and PostgreSQL; results land in bench/results/
	$(BIN)/python bench/invoices.py $(BENCH_ARGS)

bench-intake: install  ## usage intake on NATS (1 and 2 consume workers, a burst) beside the HTTP batch path and C_batch; results land in bench/results/
	$(BIN)/python bench/intake.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache creditledger.db*
