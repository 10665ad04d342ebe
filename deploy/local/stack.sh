#!/usr/bin/env bash
# The local development stack (Kafka + PostgreSQL, no Docker). Driven by stack.mk.
#
#   stack.sh up | down | status | clean    (status exits 3 unless all is running)
#
# Faults on purpose, for chaos runs (each prints one line: what it did, how long it took):
#   stack.sh kafka-kill N        SIGKILL Kafka node N (N=1 for the single node)
#   stack.sh kafka-stop N        stop node N cleanly (SIGTERM; SIGKILL after 30 s, or after
#                                10 s when no other node of the cluster runs)
#   stack.sh kafka-start N       start node N again and wait until it serves clients
#   stack.sh pg-restart fast     pg_ctl stop -m fast, start, wait until it accepts connections
#   stack.sh pg-restart immediate    the same with -m immediate: the start is a crash recovery
#   stack.sh pg-freeze SECONDS   every PostgreSQL process stopped (SIGSTOP) for SECONDS, then continued
#   stack.sh pg-standby up|down|status   a synchronous standby of PostgreSQL on PG_STANDBY_PORT (commits wait
#                                for its flush) | the primary stops waiting for it, then it stops | one line
#   stack.sh pg-kill             SIGKILL the PostgreSQL postmaster and every backend: a lost machine
#   stack.sh pg-promote          pg_ctl promote of the standby (once the primary is gone), until it takes writes
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
HERE="$DEPLOY_LOCAL"

up() {
  # check everything first, so one message names all that is missing
  local m
  m="$("$HERE/kafka.sh" missing; "$HERE/postgres.sh" missing)"
  [[ -z "$m" ]] || die "missing tools for the local stack; install them, e.g.: apt-get install ${m//$'\n'/ }"
  # start both at once; each is idempotent and cleans up after a crash
  local pg kafka rc=0
  "$HERE/postgres.sh" up &
  pg=$!
  "$HERE/kafka.sh" up &
  kafka=$!
  wait "$pg" || rc=1
  wait "$kafka" || rc=1
  ((rc == 0)) || die "stack-up failed (logs in $LOGS_DIR)"
}

down() {
  local rc=0
  "$HERE/kafka.sh" down || rc=1
  "$HERE/postgres.sh" down || rc=1
  # what the restore drill started: the object store, and the ledger's own server (make restore-drill)
  "$HERE/objectstore.sh" down || rc=1
  if [[ -d "$LOCAL_DIR/restore-drill/data" ]]; then LOCAL_DIR="$LOCAL_DIR/restore-drill" "$HERE/postgres.sh" down || rc=1; fi
  return "$rc"
}

# exit status 0 only when every component runs (3 otherwise, as pg_ctl status)
status() {
  local rc=0
  "$HERE/kafka.sh" status || rc=3
  "$HERE/postgres.sh" status || rc=3
  return "$rc"
}

clean() {
  down
  say "deleting $DATA_DIR, $RUN_DIR and generated config (keeping $CACHE_DIR)"
  rm -rf "$DATA_DIR" "$RUN_DIR" "$LOCAL_DIR/kafka" "$LOCAL_DIR/stack.env" "$LOCAL_DIR/restore-drill" "$LOCAL_DIR/backup"
}

case "${1:-}" in
  up | down | status | clean) "$1" ;;
  kafka-kill | kafka-stop | kafka-start) "$HERE/kafka.sh" "${1#kafka-}" "${2:-}" ;;
  pg-restart) "$HERE/postgres.sh" restart "${2:-}" ;;
  pg-freeze) "$HERE/postgres.sh" freeze "${2:-}" ;;
  pg-standby) "$HERE/postgres.sh" standby "${2:-}" ;;
  pg-kill | pg-promote) "$HERE/postgres.sh" "${1#pg-}" ;;
  *) die "usage: $0 up|down|status|clean|kafka-kill N|kafka-stop N|kafka-start N|pg-restart fast|immediate|pg-freeze SECONDS|pg-standby up|down|status|pg-kill|pg-promote" ;;
esac
