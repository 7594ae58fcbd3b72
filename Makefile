# Two commands on a fresh machine (only Python 3.11+ and pip needed):
#   make demo   - the whole loop on embedded services
#   make test   - lint, types, layering, the test suite on PostgreSQL 18 (+ 15 when installed),
#                 and the unit and CLI tests on the lowest dependency versions pyproject allows

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dlqctl-installed

# Debian's postgresql-15 server binaries, when the package is installed: the compatibility lane.
PG15_BINDIR ?= $(shell dpkg -L postgresql-15 2>/dev/null | sed -n 's,/initdb$$,,p' | head -n 1)
PYTEST_ARGS ?=

# The lowest-versions lane: its own venv, filled by uv (from PyPI) with --resolution lowest-direct.
LOWEST_VENV   ?= .venv-lowest
LOWEST_BIN    := $(LOWEST_VENV)/bin
LOWEST_STAMP  := $(LOWEST_VENV)/.dlqctl-installed
UV            := $(BIN)/uv
UV_REQUIREMENT ?= uv>=0.9,<1

.PHONY: venv demo test lint typecheck unit pytest pytest-pg15 pytest-pg15-core pytest-pg15-rest test-lowest soak bench completions docs clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/dlqctl demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Each test lane runs in a temporary directory of its own (TMPDIR), removed when it ends: the
# embedded servers and the demo's state file of one lane never meet another lane's.
# (Readable by all: as root, the embedded PostgreSQL runs as "nobody".)
OWN_TMPDIR = lane_tmp=$$(mktemp -d) && chmod 755 "$$lane_tmp" && trap 'rm -rf "$$lane_tmp"' EXIT && TMPDIR=$$lane_tmp

pytest: $(STAMP)
	$(OWN_TMPDIR) $(BIN)/pytest $(PYTEST_ARGS)

# The database tests again, on a PostgreSQL 15 started from Debian's binaries, in two halves
# that `make test` runs side by side. The second lanes explore fewer generated argument lists
# in the fuzz test (the first lane runs 60 per command).
SECOND_LANE_FUZZ = DLQCTL_TEST_FUZZ_EXAMPLES=20
PG15_CORE = tests/integration tests/faults
pg15_lane = @if [ -n "$(PG15_BINDIR)" ] && [ -x "$(PG15_BINDIR)/initdb" ]; then \
		echo "== PostgreSQL 15 lane ($(PG15_BINDIR)): $(2)"; \
		$(OWN_TMPDIR) $(SECOND_LANE_FUZZ) DLQCTL_TEST_PG_BINDIR="$(PG15_BINDIR)" \
			$(BIN)/pytest -m db $(1) $(PYTEST_ARGS); \
	else \
		echo "== PostgreSQL 15 lane skipped: Debian's postgresql-15 package is not installed"; \
	fi

pytest-pg15: pytest-pg15-core pytest-pg15-rest

pytest-pg15-core: $(STAMP)
	$(call pg15_lane,$(PG15_CORE),$(PG15_CORE))

pytest-pg15-rest: $(STAMP)
	$(call pg15_lane,tests $(addprefix --ignore=,$(PG15_CORE)),every other tier)

$(UV): | $(STAMP)
	$(BIN)/python -m pip install --quiet '$(UV_REQUIREMENT)'

# Every direct dependency (runtime, test and demo extras) at the floor pyproject.toml declares.
# uv reads PyPI only here: the local wheel mirror holds recent releases, not the floors.
$(LOWEST_STAMP): pyproject.toml | $(UV)
	rm -rf $(LOWEST_VENV)
	$(UV) venv --quiet --python $(BIN)/python $(LOWEST_VENV)
	$(UV) pip install --quiet --python $(LOWEST_BIN)/python --resolution lowest-direct \
		-e '.[test,demo]'
	touch $(LOWEST_STAMP)

# The floors are real: each one is what got installed (not a newer release some other
# dependency forced), the package type-checks against those releases (mypy sees a missing
# API where the unit and CLI tests do not reach; unused ignores are not reported, as stubs
# differ between old and new releases), the lint tools at their floors accept the tree,
# and the unit and CLI tests pass.
test-lowest: $(LOWEST_STAMP)
	@echo "== lowest-versions lane ($(LOWEST_VENV))"
	$(LOWEST_BIN)/python -m tests.packaging.floors
	$(LOWEST_BIN)/ruff check --quiet .
	$(LOWEST_BIN)/ruff format --check --quiet .
	$(LOWEST_BIN)/lint-imports --no-cache
	$(LOWEST_BIN)/mypy --no-warn-unused-ignores --cache-dir $(LOWEST_VENV)/.mypy_cache
	$(OWN_TMPDIR) $(SECOND_LANE_FUZZ) $(LOWEST_BIN)/pytest tests/unit tests/cli $(PYTEST_ARGS)

# Lint and types first; then the lanes side by side (much of a lane's time is spent waiting
# on its servers, so two cores carry four lanes), each lane's output printed as one block
# when it ends.
test: lint typecheck
	$(MAKE) --no-print-directory -j4 --output-sync=target \
		pytest pytest-pg15-core pytest-pg15-rest test-lowest

# The chaos soak for minutes (its short version runs in make test): SOAK_SECONDS of chaos, then
# the invariants as counts (see docs/operations.md). SOAK_REPORT=file.json saves the figures.
SOAK_SECONDS ?= 300
soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest tests/soak/test_soak.py -m soak -s --timeout 0 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

completions: $(STAMP)
	$(BIN)/python -m dlqctl.cli.completion completions

# docs/commands.md: every command's --help (tests/docs/test_commands_reference.py checks it).
docs: $(STAMP)
	$(BIN)/python -m dlqctl.cli.reference docs/commands.md

clean:
	rm -rf $(VENV) $(LOWEST_VENV) build dist .mypy_cache .ruff_cache
