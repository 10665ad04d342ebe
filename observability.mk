# The local trace backend (Jaeger) and Prometheus with the project's alert rules: deploy/local/observability.sh.
# Included by the main Makefile. Both are built once from the Go module proxy into $(CACHE_DIR)/bin.
#
#   make observability-up      start both (building them first if need be); `make run` does
#   make observability-down    stop both
#   make observability-status  one line each
#   make observability-build   only build them (`make test` does, before the tests that use them)
#
# Ports (override like the stack's): JAEGER_PORT is Jaeger's UI and query API, JAEGER_OTLP_PORT its OTLP/HTTP
# receiver (what the services export to, BK_OTLP_ENDPOINT), and JAEGER_PORT + 2, + 3 its query gRPC and health
# check; PROMETHEUS_PORT is Prometheus, which scrapes and evaluates every PROMETHEUS_INTERVAL.
JAEGER_PORT         ?= 16686
JAEGER_OTLP_PORT    ?= $(shell echo $$(($(JAEGER_PORT) + 1)))
PROMETHEUS_PORT     ?= 9090
PROMETHEUS_INTERVAL ?= 5s
BK_OTLP_ENDPOINT    ?= http://127.0.0.1:$(JAEGER_OTLP_PORT)

OBSERVABILITY_SETTINGS := JAEGER_PORT JAEGER_OTLP_PORT PROMETHEUS_PORT PROMETHEUS_INTERVAL
export $(OBSERVABILITY_SETTINGS)

OBSERVABILITY_SH := $(STACK_ROOT)/deploy/local/observability.sh

.PHONY: observability-up observability-down observability-status observability-build

observability-up:
	@$(OBSERVABILITY_SH) up

observability-down:
	@$(OBSERVABILITY_SH) down

observability-status:
	@$(OBSERVABILITY_SH) status || true

observability-build:
	@$(OBSERVABILITY_SH) build
