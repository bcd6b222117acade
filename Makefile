# The whole set-up is two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tunebird-installed
PYTEST_WORKERS ?= 2

.PHONY: install test demo bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/lint-imports
	@if [ "$$CI" = "true" ] && [ -z "$$TUNEBIRD_TEST_POSTGRES" ]; then \
		export TUNEBIRD_TEST_POSTGRES="$$(sh .ci/postgres.sh)" || exit 1; \
		echo "PostgreSQL for tests: $$TUNEBIRD_TEST_POSTGRES"; \
		$(PY) -m pytest -n $(PYTEST_WORKERS) tests; \
	else \
		$(PY) -m pytest -n $(PYTEST_WORKERS) tests; \
	fi

demo: $(STAMP)
	$(PY) -m tuner.demo

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# ---- benchmark suite (bench/README.md): tune once per machine (resumable), then run the suite.
BENCH_BUDGET ?= 200
BENCH_STAMP  := $(VENV)/.tunebird-bench-installed

.PHONY: bench-tune bench

$(BENCH_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench-tune: $(BENCH_STAMP)
	$(PY) -m bench --tune --time-budget $(BENCH_BUDGET)

bench: $(BENCH_STAMP)
	$(PY) -m bench
