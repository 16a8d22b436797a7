# JobTarget Batch: `make run` starts everything on this machine; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/jtb

.PHONY: run test lint test-sqlite test-postgres env clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.9

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements-dev.txt
	touch $@

env: $(VENV)/.installed

# run_all --setup migrates and runs bootstrap first, so its banner can show a new admin password;
# logs go to var/logs/, the terminal shows warnings and run outcomes.
run: env
	$(BIN)/python -m jobtarget_batch.secret_key_file
	PORT=$(PORT) $(BIN)/python manage.py run_all --setup

# Tests run on TEST_WORKERS processes (each with its own test database); the few marked
# `serial` (they stop the database server) run afterwards on their own. pytest's exit code 5
# ("no tests selected", e.g. with a narrowing PYTEST_ARGS) is not a failure there.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest

test: lint test-sqlite test-postgres

# The layers of docs/architecture.md (import-linter, imports inside functions included) and ruff's
# chosen rule set (pyproject.toml).
lint: env
	$(BIN)/lint-imports
	$(BIN)/ruff check .

test-sqlite: env
	$(PYTEST) -n $(TEST_WORKERS) -m "not serial" --durations=15 $(PYTEST_ARGS)
	$(PYTEST) -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-postgres: env
	DATABASE_URL=$(PG_TEST_URL) $(PYTEST) -n $(TEST_WORKERS) -m "not serial and not sqlite_only" --durations=15 $(PYTEST_ARGS)
	DATABASE_URL=$(PG_TEST_URL) $(PYTEST) -m "serial and not sqlite_only" $(PYTEST_ARGS) || [ $$? -eq 5 ]

clean:
	rm -rf $(VENV) var
