# make demo: install, run the quick pipeline (embedded Prefect, no server), serve the viewer.
# make test: install, run the whole suite.
# make server: a Prefect server and UI on http://127.0.0.1:4200 (project-local .prefect/; Ctrl-C stops it).
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
RUNS     ?= runs
STAMP    := $(VENV)/.installed

.PHONY: demo test install serve server clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
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

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && echo "no tests collected" && rc=0; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache
