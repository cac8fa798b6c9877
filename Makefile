# Two commands for a newcomer: `make dev` and `make test`. Both install what is missing first.
.PHONY: dev test lint check bench fake-cluster fake-cluster-down clean

export PICLUSTER_HOME ?= $(CURDIR)/.picluster
export DAGSTER_HOME ?= $(PICLUSTER_HOME)/dagster
HOST ?= 127.0.0.1
PORT ?= 3000

dev:
	@scripts/bootstrap.sh dev
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || printf 'telemetry:\n  enabled: false\n' > "$(DAGSTER_HOME)/dagster.yaml"
	uv run --frozen dg dev -w workspace.yaml --host $(HOST) --port $(PORT)

test:
	@scripts/bootstrap.sh test
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen pytest

lint:
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .

# Dagster's own definitions check, for both profiles' code location.
check:
	uv run --frozen dg check defs --no-check-yaml

bench:
	@scripts/bootstrap.sh test
	uv run --frozen python -m benchmarks

fake-cluster:
	@scripts/bootstrap.sh fake
	uv run --frozen python -m tests.fake_pi up

fake-cluster-down:
	uv run --frozen python -m tests.fake_pi down

clean:
	rm -rf .picluster .pytest_cache .ruff_cache
