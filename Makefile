.PHONY: setup run test lint bench

setup:
	bash scripts/setup.sh

run:
	bash scripts/start.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/setup.sh --no-system
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy src

# Placeholder until bench/ has a runner: list the benchmark scripts.
bench:
	@ls bench/*.py 2>/dev/null || echo "no benchmarks in bench/ yet"
