# The two commands: `make demo` runs the main job, `make test` runs the whole suite.
# Each creates the virtualenv and installs what it needs; the local stack fetches Kafka
# from Maven Central and installs Debian's redis-server/postgresql when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo demo-screenshots test test-faults unit lint bench bench-isolation bench-recovery fuzz fuzz-api stack-up stack-down deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[stack,dev]'
	touch $@

deps: $(VENV)/.installed
	./stack/bootstrap.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest -q tests/unit

test: deps lint
	$(BIN)/pytest -q

# Broker faults and service outages at full length while the join carries load (docs/faults.md),
# the disaster-recovery drill (docs/runbook.md) and static membership's SIGKILL and dynamic cases;
# `make test` keeps one short case of each kind. Figures go to var/faults/results.jsonl.
test-faults: deps
	$(BIN)/pytest -q -s -m faults --timeout=1200 tests/integration/test_faults.py tests/integration/test_dr.py \
		tests/integration/test_static_membership.py tests/integration/test_snapshot_restore.py

demo: deps
	$(BIN)/runway demo

# Beside a running `make demo` (another terminal): the dashboard's fleet page every 5 s in headless
# Chromium until the drifted model is STALE and its retrain appears (var/demo/screenshots/)
demo-screenshots: $(VENV)/.installed
	$(BIN)/python -m tools.demo_screenshots

# --peer quix: Quix Streams over the same backlogs, in its own .venv-peer/ (made on first use)
bench: stack-up
	$(BIN)/runway bench --peer quix

bench-isolation: stack-up
	$(BIN)/runway bench-isolation

# Restore from the changelog with and without a standby, failover after SIGKILL (~30 min here;
# docs/capacity.md)
bench-recovery: stack-up
	$(BIN)/runway bench-recovery

# The decoder's and the join rules' property tests, FUZZ_EXAMPLES examples each instead of the
# few hundred `make test` runs (12 min at 5,000 here, so about 50 at 20,000; no stack needed)
FUZZ_EXAMPLES ?= 20000
fuzz: $(VENV)/.installed
	RUNWAY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q --timeout=0 \
		--hypothesis-show-statistics tests/unit/test_fuzz_decoder.py tests/unit/test_fuzz_join.py

# Schemathesis (--checks all) against a real `runway api` and its own OpenAPI document
fuzz-api: stack-up
	$(BIN)/python -m tests.fuzz.fuzz_api

stack-up: deps
	$(BIN)/runway stack up

stack-down: $(VENV)/.installed
	$(BIN)/runway stack down

clean:
	-$(BIN)/runway stack down
	rm -rf $(VENV) .venv-peer .stack var
