# JobTarget Batch: `make run` starts everything on this machine; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/jtb

.PHONY: run test test-sqlite test-postgres env clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.9

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements-dev.txt
	touch $@

env: $(VENV)/.installed

run: env
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py bootstrap
	PORT=$(PORT) $(BIN)/python manage.py run_all

test: test-sqlite test-postgres

test-sqlite: env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: env
	DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -m "not sqlite_only" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var
