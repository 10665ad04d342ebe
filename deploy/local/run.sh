#!/usr/bin/env bash
# `make run`, after the stack is up, topics exist and migrations ran: every service under one supervisor
# (honcho; Ctrl-C stops them all), demo data loaded once, and where everything is.
set -euo pipefail
cd "$(dirname "$0")/../.."
UV="${UV:-uv}"  # the Makefile passes the uv it installed
"$UV" run --frozen --no-sync honcho -f deploy/local/Procfile start &
supervisor=$!
trap 'kill -TERM "$supervisor" 2>/dev/null; wait "$supervisor"' INT TERM
if ! "$UV" run --frozen --no-sync python deploy/local/journey.py demo-data; then
  echo "demo data could not be loaded; the services keep running (see their output above)" >&2
fi
cat <<TEXT

Buurtkracht is running on the local stack:
$(deploy/local/stack.sh status)
$(deploy/local/observability.sh status)
  initiatives API      http://127.0.0.1:8001/docs   AsyncAPI /asyncapi.json, metrics /metrics
  vouchers API         http://127.0.0.1:8002/docs   (make ledger-check)
  notifications API    http://127.0.0.1:8003/docs
  portal               http://127.0.0.1:8004        sign in as one of the demo people below
  portal (public) API  http://127.0.0.1:8004/docs   e.g. /api/v1/public/areas/WK036301/initiatives
  identity provider    http://127.0.0.1:8090        /.well-known/openid-configuration (local only: deploy/local/idp.py)
  email sent           SMTP sink on 127.0.0.1:10025: make mail
  the whole journey    make demo   (in a second terminal)
  a token              .venv/bin/buurtkracht token --sub r-123 --role resident --area BU03630001
  connection variables make stack-env;  logs of Kafka and PostgreSQL in ${LOCAL_DIR:-.local}/logs/
  traces               every request's trace in Jaeger: http://127.0.0.1:${JAEGER_PORT:-16686}/api/traces/<trace id>, the id
                       from a response's traceresponse header (00-<trace id>-...) or a log line's trace_id=...
  alerts               Prometheus evaluates k8s/base/monitoring/prometheus-rules.yaml:
                       http://127.0.0.1:${PROMETHEUS_PORT:-9090}/api/v1/alerts  (targets: /api/v1/targets)

Demo people who can sign in at the portal (deploy/local/people.toml; these passwords are for this machine only):
$("$UV" run --frozen --no-sync python deploy/local/idp.py people | sed 's/^/  /')

Ctrl-C stops the services; make stack-down stops Kafka and PostgreSQL, make observability-down Jaeger and Prometheus.
TEXT
wait "$supervisor"
