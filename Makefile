# Two commands for a newcomer: `make run` and `make test`. Both install first (locked, via uv).
PYTHON ?= python3
VENV := .venv
BOOT := .bootstrap
UV := $(BOOT)/bin/uv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)
export TT_DAGSTER_STORAGE := $(CURDIR)/.dagster
export TT_DAGSTER_STORAGE_HISTORY := $(TT_DAGSTER_STORAGE)/history
export TT_DAGSTER_STORAGE_EVENTS := $(TT_DAGSTER_STORAGE)/history/runs
export TT_DAGSTER_STORAGE_SCHEDULES := $(TT_DAGSTER_STORAGE)/schedules
export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1
# per-partition materialization events of a single-run backfill are written in batches (instance.py)
export DAGSTER_EVENT_BATCH_SIZE := 1000
# `make` is the development entry point: personal data lands and exports with the fixed development
# pseudonym keys unless TT_ENV (or TT_LANDING_PSEUDONYM_KEY / TT_EXPORT_PSEUDONYM_KEY) says otherwise;
# production runs without make and must set the keys (docs/privacy.md)
export TT_ENV ?= development

.PHONY: install run test dev api bench bench-api lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@test -x $(UV) || ($(PYTHON) -m venv $(BOOT) && $(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==0.13.8)
	$(UV) sync --frozen --extra dev --python $(PYTHON) --quiet
	@touch $@

## the main job on the embedded default: generates `small` sample data if absent, runs every partition
run: install
	$(BIN)/analytics-pipelines run

## lint (ruff check + ruff format --check), then the test suite (PostgreSQL at 127.0.0.1:5432 is required when CI=true)
test: install lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q

## the Dagster UI on the same local instance as `make run`
dev: install
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## the read API on 127.0.0.1:8000 (development mode, fixed dev key, unless TT_API_MODE/TT_API_JWT_SECRET say otherwise)
api: install
	TT_API_MODE=$${TT_API_MODE:-development} $(BIN)/analytics-pipelines api --host 127.0.0.1 --port 8000

## heavy measurements (not part of the tests); see benchmarks/README.md
bench: install
	$(UV) sync --frozen --extra dev --extra bench --python $(PYTHON) --quiet
	$(BIN)/python benchmarks/run_all.py

bench-api: install
	$(BIN)/python benchmarks/bench_api.py

lint: install
	$(BIN)/ruff check analytics_pipelines tests benchmarks
	$(BIN)/ruff format --check analytics_pipelines tests benchmarks

clean:
	rm -rf data .dagster
