# The two commands of the README: `make demo` and `make test`. Both build the
# virtualenv themselves from the pinned requirements.lock (Python 3.11, no Docker).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test test-fast lint fmt bench soak clean lock tools-prometheus deploy-check

# The CRM example (docs/examples/crm) is a package of its own, not part of the
# distribution; it is installed beside it so the tests drive it the way a user's package
# is found (its entry points), editable so a fresh clone needs nothing else.
EXAMPLE := docs/examples/crm

$(STAMP): pyproject.toml requirements.lock $(EXAMPLE)/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e $(EXAMPLE)
	touch $(STAMP)

venv: $(STAMP)

demo: venv  ## the main job on the embedded default (broker + SQLite)
	$(BIN)/projectionist demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layer contract: pyproject.toml [tool.importlinter]
	$(BIN)/projectionist schemas check  # every schema version resolves both ways

test: lint tools-prometheus  ## lint, then every test tier (unit, integration, faults)
	$(BIN)/pytest

# Debian's prometheus package ships `prometheus` and `promtool` for the observability
# tests, which start their own server on a free loopback port. Where systemd runs, the
# package starts a service on :9090: stop and disable it, the tests never use it.
tools-prometheus: SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tools-prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus && \
	  if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; }

test-fast: venv
	$(BIN)/pytest tests/unit $(EXAMPLE)/tests

deploy-check: venv  ## render and validate the Kubernetes overlays, lint the Dockerfile
	$(BIN)/pytest -q tests/unit/test_deploy_manifests.py tests/unit/test_deploy_dockerfile.py

soak: venv
	$(BIN)/pytest -m soak tests/faults

# The benchmark of issues 9 and 15, and the orders projection on a workload of its own
# (bench/orders_workload.py): embedded broker, PostgreSQL at 127.0.0.1:5432 (or
# DATABASE_URL), temp SQLite; the Quix Streams peer in .venv-quix (made on first use from
# bench/quix-requirements.txt). ~11 min on 2 quiet cores; BENCH_ARGS=--quick for ~2 min,
# BENCH_ARGS=--only orders for one scenario. Writes docs/bench.* and the README's Performance figures.
bench: venv
	$(BIN)/pip install --disable-pip-version-check -q -c requirements.lock matplotlib
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lock: venv  ## refresh requirements.lock from the current virtualenv
	$(BIN)/pip freeze --exclude-editable | grep -v '^projectionist' > requirements.lock

clean:
	rm -rf $(VENV) .venv-quix .pytest_cache .mypy_cache .ruff_cache *.egg-info projectionist-demo.db*
