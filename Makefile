# `make demo` and `make test` work on a fresh machine with Python 3.11+ and make:
# each creates .venv and installs what it needs on first use, exactly the versions in
# requirements.lock (the set the tests passed with).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

LINT_PATHS := booking_cron flows blocks deployments bench tests

.PHONY: install lock demo lint test schema bench soak clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

# Re-resolve requirements.lock from pyproject.toml with pip-tools, through this machine's pip
# configuration (index, wheels): after changing a dependency (`pip check` above fails until the
# lock has it), or to take upgrades on purpose with `make lock LOCK_ARGS=--upgrade`.
# Commit the lock with the change; `make install` then installs the new set.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip-tools>=7.4"
	$(BIN)/pip-compile --quiet $(LOCK_ARGS) --extra test --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file $(LOCK) pyproject.toml

demo: $(STAMP)
	$(BIN)/booking-cron demo

# Static checks, before the tests: ruff (rules and width in pyproject.toml) and mypy (the packages
# it checks, in pyproject.toml). `make test` fails when either finds something.
lint: $(STAMP)
	$(BIN)/ruff check --no-cache $(LINT_PATHS)
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# booking_cron/schema.sql: the schema a fresh `db upgrade` makes in an empty database (on DATABASE_URL's
# server, else the embedded one); tests/test_schema_file.py fails until it is regenerated after a migration.
schema: $(STAMP)
	$(BIN)/python -m tests.test_schema_file

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

soak: $(STAMP)
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache
