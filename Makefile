# The project's one interface: the same targets locally and in CI.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock | cut -c1-12)
PYTHON ?= python3
FRONTEND := services/dashboard/frontend
VENDOR := services/dashboard/verdict_dashboard/static/vendor

.PHONY: setup up down status test check check-native fuzz faults manifests proto bench bench-assign \
        bench-callgrind bench-callgrind-handler bench-ingest bench-stats bench-analysis \
        bench-dashboard bench-gateway bench-scaling demo simulate clean

setup: $(STAMP) $(VENDOR)/.installed

NATIVE := clients/python/verdict/evaluation/_native.c \
          services/assignment/verdict_assignment/assign/_fastpath.c

$(STAMP): requirements.lock scripts/dev_paths.py scripts/build_native.py $(NATIVE)
	-@scripts/system_packages.sh gcc  # the C accelerators; without them the Python reference runs
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) scripts/dev_paths.py
	$(PY) scripts/build_native.py
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# The console's browser libraries (htmx, ECharts; axe-core for the browser tests), pinned by the
# lockfile, served by the console itself: nothing loads from a CDN.
$(VENDOR)/.installed: $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	@scripts/system_packages.sh npm
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp $(FRONTEND)/node_modules/htmx.org/dist/htmx.min.js \
	   $(FRONTEND)/node_modules/echarts/dist/echarts.min.js $(VENDOR)/
	touch $@

up: setup            ## run the platform (embedded PostgreSQL/Redis unless URLs are set)
	$(VENV)/bin/verdict up

down: setup          ## stop what `make up` started (data persists)
	$(VENV)/bin/verdict down

status: setup
	$(VENV)/bin/verdict status

demo: setup          ## an LLM prompt experiment decided by itself (< 3 min); leaves the suite up
	$(PY) scripts/demo.py

test: setup          ## every test: unit, integration, e2e, reliability (reduced sizes)
	@scripts/system_packages.sh chromium
	$(VENV)/bin/pytest -q -p no:cacheprovider

faults: setup        ## every fault at full size; prints the table and writes docs/RELIABILITY.md
	VERDICT_FAULTS=full VERDICT_FAULTS_REPORT=docs/RELIABILITY.md $(VENV)/bin/pytest -q -p no:cacheprovider -s tests/reliability/faults

fuzz: setup          ## every RPC of every service fuzzed, 1,000 requests each (make test runs 60)
	VERDICT_FUZZ_EXAMPLES=1000 $(VENV)/bin/pytest -q -p no:cacheprovider tests/fuzz

CHART := deploy/helm/verdict
KUBE_VERSIONS := 1.27.0 1.37.0

check: setup         ## format, lint, types, proto lint, generated-code drift, chart and manifests
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	cd protos && ../$(VENV)/bin/buf lint
	@tmp=$$(mktemp -d) && VENV=$(VENV) scripts/gen_proto.sh $$tmp >/dev/null 2>&1 && \
	  if diff -r -q $$tmp/verdict/v1 clients/python/verdict/v1 -x __pycache__; then \
	    echo "generated code matches protos"; rm -rf $$tmp; \
	  else echo "generated code drifted from protos: run make proto" >&2; rm -rf $$tmp; exit 1; fi
	$(PY) scripts/render_chart.py $(CHART) -f deploy/helm/examples/plain-manifests.yaml --check deploy/kubernetes
	@tmp=$$(mktemp -d) && $(PY) scripts/render_chart.py $(CHART) -f deploy/helm/examples/every-option.yaml \
	  --out $$tmp >/dev/null && for k in $(KUBE_VERSIONS); do \
	    $(VENV)/bin/kubernetes-validate --strict --quiet -k $$k deploy/kubernetes/*.yaml $$tmp/*.yaml \
	      || { rm -rf $$tmp; exit 1; }; done; rm -rf $$tmp; \
	  echo "manifests valid (strict) for Kubernetes $(KUBE_VERSIONS)"

manifests: setup     ## render the Helm chart into deploy/kubernetes (plain manifests)
	$(PY) scripts/render_chart.py $(CHART) -f deploy/helm/examples/plain-manifests.yaml --out deploy/kubernetes

check-native: setup  ## the C accelerators under ASan + UBSan (own build), randomised and fuzz tests
	@command -v gcc >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; }
	$(PY) scripts/check_native.py

proto: setup         ## regenerate clients/python/verdict/v1 from protos/
	VENV=$(VENV) scripts/gen_proto.sh clients/python

bench: setup
	@for t in bench-assign bench-ingest bench-stats bench-analysis bench-gateway; do \
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

bench-scaling: setup  ## replicas of assignment and ingest, analysis on two shards, NATS JetStream
	$(PY) bench/bench_scaling.py $(ARGS)

bench-stats: setup
	$(PY) bench/bench_stats.py

bench-analysis: setup
	$(PY) bench/bench_analysis.py $(ARGS)

bench-dashboard: setup  ## console page time and live-update latency; needs chromium (installed when missing)
	@scripts/system_packages.sh chromium
	$(PY) bench/bench_dashboard.py $(ARGS)

bench-gateway: setup  ## LiteLLM callback overhead; OTLP intake spans/s vs TrackEvents events/s
	$(PY) bench/bench_gateway.py $(ARGS)

simulate: setup      ## full-size statistical simulation (figures in docs/STATISTICS.md)
	$(PY) bench/simulate.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache $(VENDOR) $(FRONTEND)/node_modules
