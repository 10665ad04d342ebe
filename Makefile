# Buurtkracht. A newcomer needs two commands: `make run` and `make test`.
#
#   make run        install, start the local stack (Kafka, PostgreSQL), create topics, run the services, with
#                   their traces in a local Jaeger and their metrics and alerts in a local Prometheus (observability.mk)
#   make test       install, start the stack, run every test tier, stop the stack (if this run started it)
#   make demo       walk the resident journey against the running system (after make run), with a timeline
#
#   make install    the Python workspace (contracts, kit, services) from uv.lock, and local signing keys
#   make topics     create the event and dead-letter topics
#   make migrate    apply every service's database migrations
#   make lint       ruff, the event-schema check, k8s-lint (manifests, Dockerfile), api-lint (OpenAPI vs Dutch API rules)
#   make schemas    regenerate contracts/schemas/ after changing an event model
#   make docs       regenerate each service's OpenAPI and AsyncAPI documents (services/*/docs/)
#   make bench      the benchmarks in bench/, then one line of figures (JSON) per benchmark (needs the stack)
#   make chaos      ten minutes of pledges, claims and proposals while processes, PostgreSQL, Kafka and the sinks
#                   fail (CHAOS_SECONDS, CHAOS_SEED, CHAOS_ARGS=--serial for one fault at a time), then a check
#                   that nothing answered was lost, doubled or reordered; restarts the stack's parts
#   make restore-drill  lose the vouchers ledger's PostgreSQL mid-day and restore it from the local object store to a
#                   point in time (Barman Cloud, SeaweedFS: built once with Go), then check what came back
#   make ledger-check   verify every invariant of the vouchers ledger (needs the stack)
#   make mail       list the email the local SMTP sink received
#   make test-unit | test-integration | test-e2e | test-browser | test-fuzz | test-fault    one tier (all but unit
#                   need the stack; the browser tier installs Debian's Chromium first, see browser.mk)
#   make test-explore   the property tests with random seeds and ten times the steps (needs the stack)
#   stack targets:  see stack.mk (stack-up, stack-down, stack-status, stack-clean, stack-env)
#   observability targets: see observability.mk (observability-up, -down, -status, -build: Jaeger and Prometheus)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

include stack.mk
include k8s.mk
include api.mk
include browser.mk
include observability.mk

UV_VERSION := 0.13.8
PYTHON     ?= python3.11
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export BK_LOCAL_DIR := $(LOCAL_DIR)
export BK_JWT_PRIVATE_KEY_FILE := $(LOCAL_DIR)/keys/jwt-private.pem
export BK_JWT_PUBLIC_KEY_FILE := $(LOCAL_DIR)/keys/jwt-public.pem

UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen --no-sync
PYTEST := $(RUN) pytest
SERVICES := $(notdir $(patsubst %/app.py,%,$(wildcard services/*/src/*/app.py)))

.PHONY: chaos restore-drill help install run test test-unit test-integration test-e2e test-browser test-fuzz test-fault test-explore topics migrate lint schemas docs bench keys ledger-check mail demo

help:
	@awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' Makefile

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11+ is needed: apt-get install python3.11 python3.11-venv"; exit 1; }
	$(PYTHON) -m pip install --user --quiet "uv==$(UV_VERSION)"

install: $(UV) services/portal/node_modules/.package-lock.json
	$(UV) sync --frozen
	@$(RUN) buurtkracht keys --directory "$(LOCAL_DIR)/keys" >/dev/null

services/portal/node_modules/.package-lock.json: services/portal/package.json services/portal/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the portal's front-end assets (apt-get install npm)"; exit 1; }
	npm ci --prefix services/portal --ignore-scripts --no-audit --no-fund

topics: install
	$(RUN) buurtkracht topics ensure

migrate: install
	@for service in $(SERVICES); do \
	  url_var="$${service^^}_DATABASE_URL"; \
	  $(RUN) buurtkracht migrate "$$service" --database-url "$${!url_var}"; \
	done; \
	[ -n "$(SERVICES)" ] || echo "no services yet: nothing to migrate"

run: install stack-up topics migrate observability-up
	@UV="$(UV)" BK_OTLP_ENDPOINT="$(BK_OTLP_ENDPOINT)" deploy/local/run.sh

test-unit: install
	$(PYTEST) -m unit

test-integration: install
	$(PYTEST) -m integration

test-e2e: install observability-build
	$(PYTEST) -m e2e

test-browser: install browser
	$(PYTEST) -m browser

test-fuzz: install
	$(PYTEST) -m fuzz -s

test-fault: install
	$(PYTEST) -m fault

# make test runs every property test derandomized (the same examples each time); this hunts for new
# counterexamples with random seeds. A failure prints the seed and the shrunk steps to keep as a test.
test-explore: install
	HYPOTHESIS_PROFILE=explore $(PYTEST) -m properties -p no:cacheprovider

# Starts the stack when it is not running, and stops it afterwards only in that case.
test: install browser observability-build
	@started=0; \
	if ! deploy/local/stack.sh status >/dev/null 2>&1; then started=1; fi; \
	$(MAKE) --no-print-directory stack-up topics; \
	status=0; \
	$(MAKE) --no-print-directory lint || status=$$?; \
	$(PYTEST) || status=$$?; \
	if [ $$started = 1 ]; then $(MAKE) --no-print-directory stack-down; fi; \
	exit $$status

lint: install
	$(RUN) ruff check .
	$(RUN) python -m buurtkracht_contracts.schemas check
	@$(MAKE) --no-print-directory k8s-lint
	@$(MAKE) --no-print-directory api-lint

schemas: install
	$(RUN) python -m buurtkracht_contracts.schemas write

docs: install
	@for service in $(SERVICES); do $(RUN) buurtkracht docs "$$service" --out "services/$$service/docs"; done

demo: install
	@$(RUN) python deploy/local/journey.py demo

mail:
	@$(RUN) python deploy/local/smtp_sink.py list --dir "$(LOCAL_DIR)/mail"

CHAOS_SECONDS ?= 600
CHAOS_SEED    ?=
CHAOS_ARGS    ?=
chaos: install stack-up topics
	$(RUN) python -m tests.chaos.run --seconds $(CHAOS_SECONDS) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED)) $(CHAOS_ARGS)

# the ledger's own PostgreSQL in the drill (archiving to the object store); DRILL_ARGS: --rate, --phase-seconds
DRILL_PG_PORT ?= 15442
restore-drill: install stack-up topics
	DRILL_PG_PORT=$(DRILL_PG_PORT) $(RUN) python -m tests.drill.restore $(DRILL_ARGS)

ledger-check: install
	BK_DATABASE_URL="$(VOUCHERS_DATABASE_URL)" $(RUN) python -m vouchers.ledger_check

bench: install
	$(RUN) python bench/all.py
