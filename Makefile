# `make run` starts the whole service; `make test` runs the suite; `make bench` measures
# (BENCH_ARGS="--only burst --sizes 100" to pick; see benchmarks/run.py). All install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test fuzz lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The seed product's own SDK (npm), which the suite drives against Crier unchanged.
SEED_CLIENT := tests/seed_client
SEED_STAMP := $(SEED_CLIENT)/node_modules/.installed

$(SEED_STAMP): $(SEED_CLIENT)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(SEED_CLIENT) --no-audit --no-fund --loglevel=error && touch $(SEED_STAMP); \
	else echo "npm not found: the seed client's tests will be skipped"; fi

install: $(STAMP) $(SEED_STAMP)

run: $(STAMP)
	$(BIN)/crier dev

test: $(STAMP) $(SEED_STAMP)
	$(BIN)/python -m pytest -q

# The long run: schemathesis with FUZZ_EXAMPLES cases per operation (about 20 operations)
# and the Hypothesis properties on the media probes and time parsing with twice as many.
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	CRIER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -s -p no:cacheprovider \
		tests/api/test_schemathesis.py tests/api/test_hostile_inputs.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
