# The services' OpenAPI documents against the API Design Rules of Logius, with Spectral. Included by the main
# Makefile (make lint runs api-lint); also usable alone:  make -f api.mk api-lint
#
#   make api-lint     lint services/*/docs/openapi.json with deploy/api-rules/adr.spectral.yaml (an error fails), then
#                     make sure the rules still reject each mistake of deploy/api-rules/must_fail.py
#   make api-tools    install Spectral, pinned by deploy/api-rules/package-lock.json, into .local/api-rules with
#                     npm ci (from the npm registry; again only when the lock file changes)
#   make api-tools-clean   remove it

API_ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

API_RULES     := $(API_ROOT)/deploy/api-rules
API_TOOLS_DIR := $(API_ROOT)/.local/api-rules
API_SPECTRAL  := $(API_TOOLS_DIR)/node_modules/.bin/spectral
API_STAMP     := $(API_TOOLS_DIR)/installed.stamp
API_DOCUMENTS  = $(wildcard $(API_ROOT)/services/*/docs/openapi.json)
API_PYTHON    ?= $(if $(PYTHON),$(PYTHON),python3)
NPM           ?= npm

ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := api-lint
endif

.PHONY: api-lint api-tools api-tools-clean api-force

# a stamp whose tool has gone missing is out of date
api-force:

api-tools: $(API_STAMP)

$(API_STAMP): $(API_RULES)/package.json $(API_RULES)/package-lock.json $(if $(wildcard $(API_SPECTRAL)),,api-force)
	@command -v $(NPM) >/dev/null || { echo "api-tools: npm (Node.js 20.17+) is needed for Spectral"; exit 1; }
	@mkdir -p $(API_TOOLS_DIR)
	@cp $(API_RULES)/package.json $(API_RULES)/package-lock.json $(API_TOOLS_DIR)/
	cd $(API_TOOLS_DIR) && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

api-tools-clean:
	rm -rf $(API_TOOLS_DIR)

api-lint: api-tools
	@[ -n "$(API_DOCUMENTS)" ] || { echo "api-lint: no services/*/docs/openapi.json (make docs)"; exit 1; }
	@echo "== spectral: the API Design Rules on $(words $(API_DOCUMENTS)) OpenAPI documents"
	@$(API_SPECTRAL) lint --ruleset $(API_RULES)/adr.spectral.yaml --fail-severity error $(API_DOCUMENTS)
	@echo "== the API rules still reject each known mistake"
	@$(API_PYTHON) $(API_RULES)/must_fail.py $(API_SPECTRAL) $(API_RULES)/adr.spectral.yaml $(firstword $(API_DOCUMENTS))
