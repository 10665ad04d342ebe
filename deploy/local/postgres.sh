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
# A synchronous standby, and losing the primary (see README.md):
#   postgres.sh standby up           a copy of the cluster (pg_basebackup -R) in $LOCAL_DIR/data/postgres-standby,
#                                    streaming from the primary, on 127.0.0.1:$PG_STANDBY_PORT; the primary then
#                                    waits for it: a commit returns once the standby has flushed it to disk
#   postgres.sh standby down|status  the primary no longer waits for it, then it stops | one line
#   postgres.sh kill                 SIGKILL the postmaster and every backend at once, as a machine that is lost;
#                                    the stale pid file stays, as after a crash
#   postgres.sh promote              pg_ctl promote of the standby, once the primary is gone; waits until it takes
#                                    writes. The old primary's data dir is out of service from then on (`up` refuses
#                                    it: it may hold commits nobody acknowledged); start afresh with stack-clean
#
# initdb/postgres refuse to run as root: as root, the server runs as PG_OS_USER
# (default: the data dir's owner; for a new cluster 'postgres' if that user
# exists, else a system user 'buurtkracht', created when missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGDATA_DIR="$DATA_DIR/postgres"
SOCKET_DIR="$RUN_DIR/postgres"
PG_LOG="$LOGS_DIR/postgres.log"
STANDBY_DIR="$DATA_DIR/postgres-standby"
STANDBY_LOG="$LOGS_DIR/postgres-standby.log"
# the standby's cluster_name and the application_name it streams as: what the primary's synchronous_standby_names
# names, and how pg_stat_replication shows it
STANDBY_NAME=standby
FAILED_OVER="$DATA_DIR/postgres.failed-over" # written by `promote`: the primary's data dir is out of service
if [[ -z "${PG_STANDBY_PORT:-}" ]]; then     # its default, like every setting's, is in stack.mk
  PG_STANDBY_PORT="$(PG_PORT="$PG_PORT" make -s --no-print-directory -C "$REPO_ROOT" -f stack.mk stack-settings |
    sed -n 's/^PG_STANDBY_PORT=//p')"
fi

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

psql_admin() { psql_at "$PG_PORT" "$@"; }
psql_at() { # psql_at PORT [ARGS...]: superuser psql over the private socket to the server on PORT
  local port="$1"
  shift
  PGPASSWORD="" psql -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$port" -U postgres -d postgres "$@"
}

# (the data dir with the space after it on the command line: the standby's dir name starts with the primary's)
pid() { live_pid "$PGDATA_DIR/postmaster.pid" "$PGDATA_DIR "; }
standby_pid() { live_pid "$STANDBY_DIR/postmaster.pid" "$STANDBY_DIR "; }

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
remove_stale_locks() { # remove_stale_locks [DATA_DIR]
  local lock stale
  for lock in "${1:-$PGDATA_DIR}/postmaster.pid" "$SOCKET_DIR"/.s.PGSQL.*.lock; do
    if read -r stale 2>/dev/null <"$lock" &&
      ! { alive "$stale" && [[ "$(cat "/proc/$stale/comm" 2>/dev/null)" == postgres ]]; }; then
      say "postgres: removing stale $(basename "$lock") (pid $stale is gone)"
      rm -f "$lock"
    fi
  done
}

# pg_ctl start, waiting until the server accepts connections (after any crash recovery)
start_server() { start_cluster "$PGDATA_DIR" "$PG_PORT" "$PG_LOG" "${PG_SETTINGS[@]}"; }
start_cluster() { # start_cluster DATA_DIR PORT LOG SETTING...
  local dir="$1" port="$2" log="$3"
  shift 3
  as_pg "$BIN/pg_ctl" start -D "$dir" -l "$log" -w -t 60 -s \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$SOCKET_DIR'$(printf " -c '%s'" "$@")" || {
    tail -n 20 "$log" >&2
    die "postgres did not start (log: $log)"
  }
}

# a restored data directory (backup.sh restore) replays archived WAL up to its target and is then promoted;
# no connections meanwhile (hot_standby off): wait until it takes them, up to PG_RECOVERY_SECONDS (600)
until_recovered() {
  local t0 limit="${PG_RECOVERY_SECONDS:-600}"
  t0="$(clock)"
  until [[ "$(psql_admin -At -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" == f ]]; do
    pid >/dev/null || { tail -n 20 "$PG_LOG" >&2; die "postgres: exited during recovery (log: $PG_LOG)"; }
    (($(clock) - t0 < limit * 1000000)) || die "postgres: still recovering after ${limit}s (log: $PG_LOG)"
    sleep 0.2
  done
  say "postgres: archive recovery done and promoted after $(took "$t0")"
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
  [[ ! -e "$FAILED_OVER" ]] || die "postgres: $PGDATA_DIR failed over to the standby $(cat "$FAILED_OVER"); it may hold commits nobody acknowledged and is not started again: start afresh with make stack-clean"
  ! port_open "$PG_PORT" || die "postgres: port $PG_PORT is already in use by another process (set PG_PORT)"
  ensure_reachable
  init_cluster
  mkdir -p "$SOCKET_DIR"
  chmod 700 "$SOCKET_DIR"
  touch "$PG_LOG"
  chown "$PG_OS_USER" "$SOCKET_DIR" "$PG_LOG"
  remove_stale_locks
  say "postgres: starting on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
  local recovering=""
  [[ ! -e "$PGDATA_DIR/recovery.signal" ]] || recovering=yes
  start_server
  [[ -z "$recovering" ]] || until_recovered
  # a standby that is gone (lost, or stopped while the primary was down) must not hold up every commit, the
  # ones below included
  if grep -q '^synchronous_standby_names' "$PGDATA_DIR/postgresql.auto.conf" 2>/dev/null && ! standby_pid >/dev/null; then
    say "postgres: the standby is not running; commits no longer wait for it"
    not_synchronous
  fi
  # roles/databases (idempotent) and the superuser password used over TCP
  psql_admin -f "$DEPLOY_LOCAL/postgres-init.sql"
  psql_admin -v pw="$PG_SUPERUSER_PASSWORD" <<<"ALTER ROLE postgres PASSWORD :'pw';"
  status
}

down() {
  local p
  ! standby_pid >/dev/null || standby_down
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
  local p rc=0
  if p="$(pid)"; then
    printf '%-9s running  pid %-7s port %s  %s\n' postgres "$p" "$PG_PORT" "$PGDATA_DIR"
  elif [[ -e "$FAILED_OVER" ]]; then
    printf '%-9s stopped  failed over to the standby %s\n' postgres "$(cat "$FAILED_OVER")"
    rc=3
  else
    printf '%-9s stopped\n' postgres
    rc=3
  fi
  # the standby, when there is one, is shown but not required
  [[ ! -d "$STANDBY_DIR" ]] || standby_status || true
  return "$rc"
}

# -- the synchronous standby, and losing the primary --------------------------------------------------------

synchronous() { # the primary waits for the standby's flush before a commit returns
  psql_admin -c "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ($STANDBY_NAME)'" -c 'SELECT pg_reload_conf()' >/dev/null
}

not_synchronous() {
  psql_admin -c 'ALTER SYSTEM RESET synchronous_standby_names' -c 'SELECT pg_reload_conf()' >/dev/null
}

# how the primary sees the standby: e.g. "streaming quorum" (pg_stat_replication's state and sync_state)
replication_state() {
  psql_admin -At -c "SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = '$STANDBY_NAME'" 2>/dev/null
}

standby_up() {
  local p t0 state=""
  if standby_pid >/dev/null; then
    standby_status
    return 0
  fi
  [[ ! -e "$FAILED_OVER" ]] || die "postgres: the standby was promoted $(cat "$FAILED_OVER"); start afresh with make stack-clean"
  p="$(pid)" || die "postgres: the primary is not running (start it with: deploy/local/stack.sh up)"
  BIN="$(bindir)" || die "PostgreSQL server binaries not found"
  ! port_open "$PG_STANDBY_PORT" || die "postgres: port $PG_STANDBY_PORT is already in use by another process (set PG_STANDBY_PORT)"
  t0="$(clock)"
  # a fresh copy every time: a standby left stopped may lack WAL the primary has recycled since
  rm -rf "$STANDBY_DIR"
  mkdir -p "$STANDBY_DIR"
  chmod 700 "$STANDBY_DIR"
  touch "$STANDBY_LOG"
  chown "$PG_OS_USER" "$STANDBY_DIR" "$STANDBY_LOG"
  # it streams as a role that may replicate and nothing else, over the private socket (pg_hba: local replication trust)
  psql_admin <<<"SELECT 'CREATE ROLE replicator REPLICATION LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \gexec"
  # -R writes primary_conninfo (with this connection's settings) and standby.signal; -c fast: a checkpoint now,
  # not one spread over minutes; --no-sync: the standby's first start syncs every file of the copy anyway (it
  # starts as after a crash), so they are not synced twice
  as_pg "$BIN/pg_basebackup" -D "$STANDBY_DIR" -R -X stream -c fast --no-sync \
    -d "host=$SOCKET_DIR port=$PG_PORT user=replicator application_name=$STANDBY_NAME" \
    >>"$STANDBY_LOG" 2>&1 || {
    tail -n 20 "$STANDBY_LOG" >&2
    die "pg_basebackup from the primary failed (log: $STANDBY_LOG)"
  }
  say "postgres: standby: copied the primary (pid $p) to $STANDBY_DIR in $(took "$t0"); starting on 127.0.0.1:$PG_STANDBY_PORT"
  remove_stale_locks "$STANDBY_DIR" # a standby killed before leaves its socket's lock file
  # the primary's settings, its own name, and waiting for nobody itself once promoted (it has no standby then)
  start_cluster "$STANDBY_DIR" "$PG_STANDBY_PORT" "$STANDBY_LOG" "${PG_SETTINGS[@]}" \
    "cluster_name=$STANDBY_NAME" "synchronous_standby_names="
  synchronous
  until [[ "$state" == "streaming quorum" || "$state" == "streaming sync" ]]; do
    (($(clock) - t0 < 60000000)) || die "postgres: the standby is not streaming synchronously after 60s (state: '${state:-none}'; log: $STANDBY_LOG)"
    sleep 0.1
    state="$(replication_state)"
  done
  standby_status
}

standby_down() {
  local p
  if pid >/dev/null; then
    not_synchronous # first, so no commit waits for a standby that is going away
  fi
  if ! p="$(standby_pid)"; then
    say "standby: stopped"
    return 0
  fi
  BIN="$(bindir)" || die "PostgreSQL server binaries not found (needed for pg_ctl stop)"
  as_pg "$BIN/pg_ctl" stop -D "$STANDBY_DIR" -m fast -w -t 60 -s
  say "standby: stopped (was pid $p)"
}

standby_status() {
  local p role
  if ! p="$(standby_pid)"; then
    printf '%-9s stopped  %s\n' standby "$STANDBY_DIR"
    return 3
  fi
  if [[ "$(psql_at "$PG_STANDBY_PORT" -At -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" == f ]]; then
    role="promoted: the primary now"
  else
    role="$(replication_state)"
    role="${role:-not connected to the primary}"
  fi
  printf '%-9s running  pid %-7s port %s  %s  (%s)\n' standby "$p" "$PG_STANDBY_PORT" "$STANDBY_DIR" "$role"
}

kill_primary() { # every server process at once, as when the machine is lost
  local p pids t0 left
  p="$(pid)" || die "postgres: not running (start it with: deploy/local/stack.sh up)"
  t0="$(clock)"
  kill -STOP "$p" # the postmaster forks no new backend from here on
  pids="$p $(pgrep -P "$p" | tr '\n' ' ' || true)"
  # shellcheck disable=SC2086 # one argument per process id
  kill -KILL $pids
  for left in $pids; do
    wait_gone "$left" 10 || die "postgres: pid $left still there 10s after SIGKILL"
  done
  say "postgres: kill: SIGKILL to the postmaster (pid $p) and its $(($(wc -w <<<"$pids") - 1)) processes, gone after $(took "$t0")"
}

promote() {
  local p t0 primary
  p="$(standby_pid)" || die "postgres: no standby running (start one with: deploy/local/postgres.sh standby up)"
  if primary="$(pid)"; then
    die "postgres: the primary still runs (pid $primary); promoting the standby now would make two primaries"
  fi
  BIN="$(bindir)" || die "PostgreSQL server binaries not found (needed for pg_ctl promote)"
  t0="$(clock)"
  as_pg "$BIN/pg_ctl" promote -D "$STANDBY_DIR" -w -t 60 -s
  # a transaction id is only assigned where writes are taken
  until psql_at "$PG_STANDBY_PORT" -c 'SELECT pg_current_xact_id()' >/dev/null 2>&1; do
    (($(clock) - t0 < 60000000)) || die "postgres: the promoted standby takes no writes 60s after pg_ctl promote"
    sleep 0.1
  done
  printf 'on 127.0.0.1:%s at %s\n' "$PG_STANDBY_PORT" "$(date -Is)" >"$FAILED_OVER"
  say "postgres: promote: the standby (pid $p) on 127.0.0.1:$PG_STANDBY_PORT takes writes after $(took "$t0")"
}

case "${1:-}:${2:-}" in
  up:* | down:* | status:* | missing:* | promote:*) "$1" ;;
  kill:*) kill_primary ;;
  restart:*) restart "${2:-}" ;;
  freeze:*) freeze "${2:-}" ;;
  standby:up | standby:down | standby:status) "standby_$2" ;;
  psql:*) shift; psql_admin "$@" ;;
  *) die "usage: $0 up|down|status|restart fast|immediate|freeze SECONDS|standby up|down|status|kill|promote|missing|psql [ARGS...]" ;;
esac
