# make demo: install, run the quick pipeline (embedded Prefect, no server), serve the viewer.
# make test: install, run the whole suite: on JOBS workers (one per core here), then the tests
#   that time something (marked `alone`) by themselves, with no other test on the cores.
# make test-fast: the unit tests (none marked slow, browser or alone), under a minute: for every
#   few minutes of work. `make test` (what .ci/run runs) stays the whole suite.
# make server: a Prefect server and UI on http://127.0.0.1:4200 (project-local .prefect/; Ctrl-C stops it).
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
RUNS     ?= runs
STAMP    := $(VENV)/.installed
JOBS     ?= 2

.PHONY: demo test test-fast install serve server clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,llc]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false TDW_RUNS=$(RUNS) $(BIN)/tdw run --preset quick
	TDW_RUNS=$(RUNS) $(BIN)/tdw runs
	TDW_RUNS=$(RUNS) $(BIN)/tdw serve --show

serve: $(STAMP)
	TDW_RUNS=$(RUNS) $(BIN)/tdw serve

server: $(STAMP)
	$(BIN)/tdw server

# Most tests wait on servers, subprocesses and the browser, so one pytest process left a core idle
# (~10 min); two workers, each taking whole files, ~6 min. Exit code 5 (nothing collected) is fine.
# -rfEs lists each skip with its reason (tests/skips.py: in CI an unexpected skip fails).
PYTEST := $(BIN)/python -m pytest -q -rfEs
test: $(STAMP)
	$(PYTEST) -n $(JOBS) --dist loadfile -m "not alone" $(PYTEST_ARGS); rc=$$?; \
	[ $$rc -eq 5 ] && echo "no tests collected" && rc=0; [ $$rc -ne 0 ] && exit $$rc; \
	$(PYTEST) -m alone $(PYTEST_ARGS); rc=$$?; \
	[ $$rc -eq 5 ] && echo "no tests collected" && rc=0; exit $$rc

# 287 tests in 56 s here (71 s of CPU, ~14 s of it per worker importing the test modules:
# TransformerLens, Prefect, Panel); one process would pay the imports once but run the rest alone.
test-fast: $(STAMP)
	$(PYTEST) -n $(JOBS) --dist loadfile -m "not slow and not browser and not alone" $(PYTEST_ARGS); rc=$$?; \
	[ $$rc -eq 5 ] && echo "no tests collected" && rc=0; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache
