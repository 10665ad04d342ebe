#!/usr/bin/env bash
# `make run`, after the stack is up, topics exist and migrations ran: run every service under one supervisor.
set -euo pipefail
cd "$(dirname "$0")/../.."
procfile=deploy/local/Procfile
echo
echo "Buurtkracht local stack"
deploy/local/stack.sh status
echo
echo "  connection variables:  make stack-env"
echo "  a token for the APIs:  uv run buurtkracht token --sub r-123 --role resident --area BU03630001"
echo "  logs:                  ${LOCAL_DIR:-.local}/logs/"
echo "  stop the stack:        make stack-down"
if [ ! -s "$procfile" ] || ! grep -q '^[a-z]' "$procfile"; then
  echo
  echo "No services are defined in $procfile yet: the stack stays up until 'make stack-down'."
  exit 0
fi
echo
echo "  initiatives API:       http://127.0.0.1:8001/docs  (AsyncAPI: /asyncapi.json, metrics: /metrics)"
echo "  vouchers API:          http://127.0.0.1:8002/docs  (ledger check: make ledger-check)"
echo "  notifications API:     http://127.0.0.1:8003/docs"
echo "  email sent (SMTP sink on 127.0.0.1:10025): make mail"
echo
exec uv run --frozen --no-sync honcho -f "$procfile" start
