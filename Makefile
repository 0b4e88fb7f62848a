# The project's one interface: the same targets locally and in CI.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock | cut -c1-12)
PYTHON ?= python3

.PHONY: setup up down status test check fuzz proto bench bench-assign bench-callgrind bench-ingest \
        bench-stats bench-analysis bench-callgrind-handler simulate clean

setup: $(STAMP)

NATIVE := clients/python/verdict/evaluation/_native.c \
          services/assignment/verdict_assignment/assign/_fastpath.c

$(STAMP): requirements.lock scripts/dev_paths.py scripts/build_native.py $(NATIVE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) scripts/dev_paths.py
	$(PY) scripts/build_native.py
	rm -f $(VENV)/.installed-* && touch $(STAMP)

up: setup            ## run the platform (embedded PostgreSQL/Redis unless URLs are set)
	$(VENV)/bin/verdict up

down: setup          ## stop what `make up` started (data persists)
	$(VENV)/bin/verdict down

status: setup
	$(VENV)/bin/verdict status

test: setup          ## every test: unit, integration, e2e, reliability (reduced sizes)
	$(VENV)/bin/pytest -q -p no:cacheprovider

fuzz: setup          ## every RPC of every service fuzzed, 1,000 requests each (make test runs 60)
	VERDICT_FUZZ_EXAMPLES=1000 $(VENV)/bin/pytest -q -p no:cacheprovider tests/fuzz

check: setup         ## format, lint, types, proto lint, generated-code drift
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	cd protos && ../$(VENV)/bin/buf lint
	@tmp=$$(mktemp -d) && VENV=$(VENV) scripts/gen_proto.sh $$tmp >/dev/null 2>&1 && \
	  if diff -r -q $$tmp/verdict/v1 clients/python/verdict/v1 -x __pycache__; then \
	    echo "generated code matches protos"; rm -rf $$tmp; \
	  else echo "generated code drifted from protos: run make proto" >&2; rm -rf $$tmp; exit 1; fi

proto: setup         ## regenerate clients/python/verdict/v1 from protos/
	VENV=$(VENV) scripts/gen_proto.sh clients/python

bench: setup
	@for t in bench-assign bench-ingest bench-stats bench-analysis; do \
	  $(MAKE) --no-print-directory $$t || exit 1; done

bench-assign: setup   ## needs h2load (Debian nghttp2-client): installed here when missing
	@command -v h2load >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; }
	$(PY) bench/bench_assign.py $(ARGS)

bench-callgrind: setup  ## instructions per Assign vs the echo; needs valgrind and h2load (installed when missing)
	@command -v h2load >/dev/null && command -v valgrind >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client valgrind >/dev/null; }
	$(PY) bench/callgrind_assign.py $(ARGS)

bench-callgrind-handler: setup  ## instructions per guarded Assign handler call, tracing off/on (deterministic)
	@command -v valgrind >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
	$(PY) bench/callgrind_handler.py

bench-ingest: setup
	$(PY) bench/bench_ingest.py $(ARGS)

bench-stats: setup
	$(PY) bench/bench_stats.py

bench-analysis: setup
	$(PY) bench/bench_analysis.py $(ARGS)

simulate: setup      ## full-size statistical simulation (figures in docs/STATISTICS.md)
	$(PY) bench/simulate.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
