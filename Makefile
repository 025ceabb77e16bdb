# The two commands of the README: `make demo` and `make test`. Both build the
# virtualenv themselves from the pinned requirements.lock (Python 3.11, no Docker).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test test-fast lint fmt bench soak clean lock

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: venv  ## the main job on the embedded default (broker + SQLite)
	$(BIN)/projectionist demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint  ## lint, then every test tier (unit, integration, faults)
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest tests/unit

soak: venv
	$(BIN)/pytest -m soak tests/faults

# The benchmark of issue 9: embedded broker, PostgreSQL at 127.0.0.1:5432 (or
# DATABASE_URL), temp SQLite. ~6 min; BENCH_ARGS=--quick for ~1 min. Writes docs/bench.*
bench: venv
	$(BIN)/pip install --disable-pip-version-check -q -c requirements.lock matplotlib
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lock: venv  ## refresh requirements.lock from the current virtualenv
	$(BIN)/pip freeze --exclude-editable | grep -v '^projectionist' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info projectionist-demo.db*
