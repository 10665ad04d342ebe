#!/usr/bin/env bash
# PostgreSQL for the local stack: a private cluster (initdb) in $LOCAL_DIR/data/postgres,
# on 127.0.0.1:$PG_PORT only, socket in $LOCAL_DIR/run/postgres, with one role and
# database per service (postgres-init.sql, shared with deploy/compose.yaml).
#
#   postgres.sh up | down | status
#   postgres.sh restart fast|immediate   pg_ctl stop -m fast (clients disconnected, a clean
#                                    shutdown) or -m immediate (no shutdown checkpoint: the start
#                                    is a crash recovery), then start and wait until it accepts
#                                    connections; one line with the times taken
#   postgres.sh freeze SECONDS       SIGSTOP the postmaster and every backend for SECONDS, then
#                                    SIGCONT: a stalled disk or paused VM, as clients see it
#   postgres.sh missing              apt packages needed but not installed
#   postgres.sh psql [ARGS...]       psql as superuser over the private socket
#
# initdb/postgres refuse to run as root: as root, the server runs as PG_OS_USER
# (default: the data dir's owner; for a new cluster 'postgres' if that user
# exists, else a system user 'buurtkracht', created when missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGDATA_DIR="$DATA_DIR/postgres"
SOCKET_DIR="$RUN_DIR/postgres"
PG_LOG="$LOGS_DIR/postgres.log"

if ((EUID == 0)); then
  if [[ -z "${PG_OS_USER:-}" ]]; then
    PG_OS_USER=buurtkracht
    id postgres >/dev/null 2>&1 && PG_OS_USER=postgres
    [[ -d "$PGDATA_DIR" ]] && PG_OS_USER="$(stat -c %U "$PGDATA_DIR")" # keep the data dir's owner
  fi
  as_pg() { (cd / && runuser -u "$PG_OS_USER" -- "$@"); }
else
  PG_OS_USER="$(id -un)"
  as_pg() { "$@"; }
fi

# server binaries: $PG_BINDIR, else the version that made the data dir, else 15, else any
bindir() {
  local d want
  want="$(cat "$PGDATA_DIR/PG_VERSION" 2>/dev/null || echo 15)"
  for d in "${PG_BINDIR:-}" "/usr/lib/postgresql/$want/bin" "$(pg_config --bindir 2>/dev/null)" \
    $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV) /usr/local/pgsql/bin; do
    [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] && echo "$d" && return 0
  done
  return 1
}

missing() {
  bindir >/dev/null || echo postgresql-15
  command -v psql >/dev/null || echo postgresql-client-15
}

# Server settings for the box the local stack is made for: 2 cores and 24 GiB, shared with Kafka (a 768 MiB heap),
# the three services and the test suites' scratch databases; one disk. Passed on every start, so an existing
# cluster picks them up when it restarts. Durability is not traded: every commit waits for its WAL flush.
PG_SETTINGS=(
  synchronous_commit=on
  # a bulk issuance of a million wallets touches ~0.5 GiB of table and index pages: they stay in memory, and
  # backends do not write out dirty pages themselves; the OS page cache holds most of the rest
  shared_buffers=2GB
  effective_cache_size=12GB
  wal_buffers=64MB
  # hashes and sorts of a million ids (the ledger check, a bulk issuance's skipped residents) stay in memory;
  # few connections run such statements at once
  work_mem=64MB
  maintenance_work_mem=512MB
  # no checkpoint in the middle of a bulk write (each forces full-page images of every page touched after it);
  # a million wallets write ~0.6 GiB of WAL, and full-page images compress well
  max_wal_size=16GB
  min_wal_size=2GB
  checkpoint_timeout=15min
  checkpoint_completion_target=0.9
  wal_compression=lz4
  # short transactions and a few bulk statements: compiling plans to machine code costs more than it saves
  jit=off
  # an SSD, and every table's working set in memory
  random_page_cost=1.1
  effective_io_concurrency=200
  track_io_timing=on
)
# more settings for this cluster, one NAME=VALUE per line (e.g. archive_mode=on and an archive_command for
# continuous backup, see deploy/local/backup.sh); applied on every start like the ones above
if [[ -n "${PG_EXTRA_SETTINGS:-}" ]]; then
  mapfile -t extra <<<"$PG_EXTRA_SETTINGS"
  for setting in "${extra[@]}"; do [[ -n "$setting" ]] && PG_SETTINGS+=("$setting"); done
fi

psql_admin() {
  PGPASSWORD="" psql -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres "$@"
}

pid() { live_pid "$PGDATA_DIR/postmaster.pid" "$PGDATA_DIR"; }

# as root: a fresh clone may sit under a directory the server user cannot enter
# (e.g. /root); give it search permission (x only, no listing) on the way down
ensure_reachable() {
  ((EUID == 0)) || return 0
  id "$PG_OS_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER"
  local dir="" part parts
  IFS=/ read -ra parts <<<"${LOCAL_DIR#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    if ! as_pg test -x "$dir"; then
      say "postgres: chmod o+x $dir (so user $PG_OS_USER can reach $PGDATA_DIR)"
      chmod o+x "$dir"
    fi
  done
}

init_cluster() {
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] && return 0
  say "postgres: initdb $PGDATA_DIR (server runs as OS user $PG_OS_USER)"
  rm -rf "$PGDATA_DIR"
  mkdir -p "$PGDATA_DIR"
  chmod 700 "$PGDATA_DIR"
  chown "$PG_OS_USER" "$PGDATA_DIR"
  local pwfile
  pwfile="$(mktemp "$RUN_DIR/pg-pw.XXXXXX")"
  printf '%s\n' "$PG_SUPERUSER_PASSWORD" >"$pwfile"
  chown "$PG_OS_USER" "$pwfile"
  # socket (only reachable by the server user and root): trust; TCP: passwords (scram)
  as_pg "$BIN/initdb" -D "$PGDATA_DIR" -U postgres --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    >"$LOGS_DIR/postgres-initdb.log" 2>&1 || {
    rm -f "$pwfile"
    cat "$LOGS_DIR/postgres-initdb.log" >&2
    die "initdb failed"
  }
  rm -f "$pwfile"
}

# a crash leaves lock files behind; postgres refuses to start while the pid in
# them looks alive, which a reused pid or an unreaped zombie postmaster does
remove_stale_locks() {
  local lock stale
  for lock in "$PGDATA_DIR/postmaster.pid" "$SOCKET_DIR"/.s.PGSQL.*.lock; do
    if read -r stale 2>/dev/null <"$lock" &&
      ! { alive "$stale" && [[ "$(cat "/proc/$stale/comm" 2>/dev/null)" == postgres ]]; }; then
      say "postgres: removing stale $(basename "$lock") (pid $stale is gone)"
      rm -f "$lock"
    fi
  done
}

# pg_ctl start, waiting until the server accepts connections (after any crash recovery)
start_server() {
  as_pg "$BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$PG_LOG" -w -t 60 -s \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories='$SOCKET_DIR'$(printf " -c '%s'" "${PG_SETTINGS[@]}")" || {
    tail -n 20 "$PG_LOG" >&2
    die "postgres did not start (log: $PG_LOG)"
  }
}

up() {
  if pid >/dev/null; then
    status
    return 0
  fi
  local m
  m="$(missing)"
  [[ -z "$m" ]] || die "PostgreSQL server binaries / psql not found; install them, e.g.: apt-get install ${m//$'\n'/ } (or set PG_BINDIR)"
  BIN="$(bindir)"
  ! port_open "$PG_PORT" || die "postgres: port $PG_PORT is already in use by another process (set PG_PORT)"
  ensure_reachable
  init_cluster
  mkdir -p "$SOCKET_DIR"
  chmod 700 "$SOCKET_DIR"
  touch "$PG_LOG"
  chown "$PG_OS_USER" "$SOCKET_DIR" "$PG_LOG"
  remove_stale_locks
  say "postgres: starting on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
  start_server
  # roles/databases (idempotent) and the superuser password used over TCP
  psql_admin -f "$DEPLOY_LOCAL/postgres-init.sql"
  psql_admin -v pw="$PG_SUPERUSER_PASSWORD" <<<"ALTER ROLE postgres PASSWORD :'pw';"
  status
}

down() {
  local p
  if ! p="$(pid)"; then
    say "postgres: stopped"
    return 0
  fi
  BIN="$(bindir)" || die "PostgreSQL server binaries not found (needed for pg_ctl stop)"
  as_pg "$BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 -s
  say "postgres: stopped (was pid $p)"
}

# stop with pg_ctl's MODE, start again, and wait until clients can connect over TCP
restart() { # restart fast|immediate
  local mode="${1:-}" t0 t1 p stopped_in log_size recovery=""
  [[ "$mode" == fast || "$mode" == immediate ]] || die "usage: $0 restart fast|immediate"
  p="$(pid)" || die "postgres: not running (start it with: deploy/local/stack.sh up)"
  BIN="$(bindir)" || die "PostgreSQL server binaries not found (needed for pg_ctl)"
  t0="$(clock)"
  as_pg "$BIN/pg_ctl" stop -D "$PGDATA_DIR" -m "$mode" -w -t 60 -s
  stopped_in="$(took "$t0")"
  log_size="$(stat -c %s "$PG_LOG")"
  t1="$(clock)"
  remove_stale_locks
  start_server
  until PGPASSWORD="$PG_SUPERUSER_PASSWORD" PGCONNECT_TIMEOUT=2 \
    psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
    (($(clock) - t1 < 60000000)) || die "postgres: not accepting connections on 127.0.0.1:$PG_PORT 60s after the start"
    sleep 0.2
  done
  if grep -q 'automatic recovery in progress' <(tail -c +"$((log_size + 1))" "$PG_LOG"); then
    recovery=" (crash recovery)"
  fi
  say "postgres: restart $mode: pg_ctl stop -m $mode (pid $p) took $stopped_in; start$recovery until it accepted connections took $(took "$t1"); now pid $(pid)"
}

freeze() { # freeze SECONDS: every server process stopped (SIGSTOP), then continued, as a stalled disk or VM
  local seconds="${1:-}" p pids t0
  [[ "$seconds" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "usage: $0 freeze SECONDS"
  p="$(pid)" || die "postgres: not running (start it with: deploy/local/stack.sh up)"
  pids="$p $(pgrep -P "$p" | tr '\n' ' ')"
  t0="$(clock)"
  # shellcheck disable=SC2086 # one argument per process id
  trap 'kill -CONT $pids 2>/dev/null || true' EXIT
  # shellcheck disable=SC2086
  kill -STOP $pids
  sleep "$seconds"
  # shellcheck disable=SC2086
  kill -CONT $pids
  trap - EXIT
  say "postgres: froze $(wc -w <<<"$pids") processes (postmaster $p) for $(took "$t0")"
}

status() {
  local p
  if p="$(pid)"; then
    printf '%-9s running  pid %-7s port %s  %s\n' postgres "$p" "$PG_PORT" "$PGDATA_DIR"
  else
    printf '%-9s stopped\n' postgres
    return 3
  fi
}

case "${1:-}" in
  up | down | status | missing) "$1" ;;
  restart) restart "${2:-}" ;;
  freeze) freeze "${2:-}" ;;
  psql) shift; psql_admin "$@" ;;
  *) die "usage: $0 up|down|status|restart fast|immediate|freeze SECONDS|missing|psql [ARGS...]" ;;
esac
