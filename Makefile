# ptm-sync: everything a fresh machine needs is installed from here.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all demo test check lint typecheck unit bench bench-quick clean test-servers fuzz

all: test

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "ptm-sync needs Python 3.11 or newer"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# The IMAP tests run a private Dovecot instance; install the package when it is
# missing and we may (root, apt-get available). Elsewhere the tests say why they skip.
test-servers:
	@command -v dovecot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing dovecot-imapd for the IMAP tests"; \
	    (apt-get install -y -qq dovecot-imapd >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dovecot-imapd >/dev/null 2>&1)) || \
	     echo "could not install dovecot-imapd: IMAP tests will skip"; \
	  else echo "dovecot not installed and cannot install it here: IMAP tests will skip"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Two phases: in parallel, one worker per core (at most four; each worker starts its own
# servers on free ports and makes its own databases; a test file stays on one worker), then
# the files marked serial alone (fault injection, races, daemons: tests/conftest.py).
test: $(STAMP) test-servers lint typecheck
	@$(BIN)/python -m tests.support.found
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -q -m serial

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/property

# The loop after every edit (well under a minute): lint, types and the pure unit tests.
check: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q -x tests/unit

# The long fuzz run (issue 7): many more mutated messages than the short run in `make
# test`, with random seeds; the smallest failing input is saved in tests/fuzz/corpus/,
# which `make test` replays.  Then atheris (coverage-guided) when it is installed.
FUZZ_EXAMPLES ?= 5000
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	PTM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PTM_FUZZ_SAVE=1 $(BIN)/python -m pytest -q -x \
	  tests/fuzz/test_fuzz_inbound.py -k "mutated and sqlite" -o timeout=0
	@if $(BIN)/python -c 'import atheris' 2>/dev/null; then \
	  $(BIN)/python -m tests.fuzz.atheris_inbound -max_total_time=$(FUZZ_SECONDS); \
	else echo "atheris is not installed ($(BIN)/pip install -e '.[fuzz]'): coverage-guided run skipped"; fi

demo: $(STAMP)
	$(BIN)/ptm-sync demo

bench: $(STAMP)
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

bench-quick: $(STAMP)
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
