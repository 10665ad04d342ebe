#!/usr/bin/env bash
# Continuous backup of a local PostgreSQL (postgres.sh) to the local object store (objectstore.sh), with
# Barman Cloud: the tool family CloudNativePG's Barman Cloud plugin runs in production. WAL segments are
# archived as PostgreSQL finishes them; base backups are taken on demand; a restore brings a base backup
# back into an empty data directory and replays archived WAL up to a point in time.
#
#   backup.sh tools                  barman-cloud, pinned (backup-requirements.txt), into $CACHE_DIR/barman
#   backup.sh settings               the server settings that archive WAL, one per line, for PG_EXTRA_SETTINGS
#                                    (writes the archive command they name: $LOCAL_DIR/backup/archive-wal)
#   backup.sh base                   a base backup of the running server now; prints its id last
#   backup.sh list                   the base backups in the store
#   backup.sh restore ID DIR TIME    base backup ID into the empty DIR, set to replay WAL up to TIME
#                                    (recovery_target_time) and then promote; DIR is owned by the server's
#                                    user and ready for postgres.sh up
#
# Settings (environment): BACKUP_SERVER_NAME, the cluster's name in the store (default: postgres);
# OBJECTSTORE_PORT, OBJECTSTORE_BUCKET, OBJECTSTORE_ACCESS_KEY, OBJECTSTORE_SECRET_KEY (see objectstore.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$DEPLOY_LOCAL/objectstore.env"

BACKUP_SERVER_NAME="${BACKUP_SERVER_NAME:-postgres}"
BARMAN_DIR="$CACHE_DIR/barman"
BARMAN_BIN="$BARMAN_DIR/venv/bin"
REQUIREMENTS="$DEPLOY_LOCAL/backup-requirements.txt"
BACKUP_DIR="$LOCAL_DIR/backup"
DESTINATION="s3://$OBJECTSTORE_BUCKET/$BACKUP_SERVER_NAME"
ENDPOINT="http://127.0.0.1:$OBJECTSTORE_PORT"

# barman-cloud reads the credentials as any S3 client does
export AWS_ACCESS_KEY_ID="$OBJECTSTORE_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$OBJECTSTORE_SECRET_KEY"
export AWS_DEFAULT_REGION=us-east-1

# an interpreter the server's OS user may run (as root, not one under /root, where pyenv or uv keep theirs)
python_for_server() {
  local python="${BARMAN_PYTHON:-${PYTHON:-python3.11}}"
  if ((EUID == 0)) && [[ -z "${BARMAN_PYTHON:-}" && -x /usr/bin/python3.11 ]]; then python=/usr/bin/python3.11; fi
  echo "$python"
}

tools() {
  local stamp
  stamp="$BARMAN_DIR/$({ cat "$REQUIREMENTS"; python_for_server; } | sha256sum | cut -c1-16).stamp"
  [[ -f "$stamp" && -x "$BARMAN_BIN/barman-cloud-backup" ]] && return 0
  command -v pg_config >/dev/null || die "backup: psycopg2 builds against libpq: apt-get install libpq-dev"
  say "backup: installing barman-cloud into $BARMAN_DIR"
  rm -rf "$BARMAN_DIR" && mkdir -p "$BARMAN_DIR"
  local uv="${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}"
  "$uv" venv --quiet --python "$(python_for_server)" "$BARMAN_DIR/venv"
  "$uv" pip install --quiet --python "$BARMAN_DIR/venv/bin/python" --no-deps -r "$REQUIREMENTS"
  chmod -R a+rX "$BARMAN_DIR"
  touch "$stamp"
}

# the archive and restore commands run as the server's OS user: as root, give every directory on the way to
# the tools search permission (x only, no listing), as postgres.sh does for its data directory
reachable() {
  ((EUID == 0)) || return 0
  local dir="" part parts
  IFS=/ read -ra parts <<<"${BARMAN_DIR#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    [[ "$(stat -c %A "$dir")" == *x ]] || chmod o+x "$dir"
  done
}

# the archive command PostgreSQL runs for each finished WAL segment (as the server's OS user, so the
# credentials are written into it rather than taken from an environment it does not have)
settings() {
  tools >&2
  reachable
  mkdir -p "$BACKUP_DIR"
  cat >"$BACKUP_DIR/archive-wal" <<EOF
#!/bin/sh
# archive_command of the local PostgreSQL (written by deploy/local/backup.sh settings)
export AWS_ACCESS_KEY_ID='$OBJECTSTORE_ACCESS_KEY' AWS_SECRET_ACCESS_KEY='$OBJECTSTORE_SECRET_KEY' AWS_DEFAULT_REGION=us-east-1
exec '$BARMAN_BIN/barman-cloud-wal-archive' --endpoint-url '$ENDPOINT' --gzip '$DESTINATION' '$BACKUP_SERVER_NAME' "\$1"
EOF
  chmod 755 "$BACKUP_DIR" "$BACKUP_DIR/archive-wal"
  printf '%s\n' archive_mode=on "archive_command=$BACKUP_DIR/archive-wal %p" archive_timeout=60s
}

base() {
  tools
  local t0
  t0="$(clock)"
  # an immediate checkpoint to start from: with checkpoint_timeout at 15 min a spread one would take minutes
  PGPASSWORD="$PG_SUPERUSER_PASSWORD" "$BARMAN_BIN/barman-cloud-backup" --endpoint-url "$ENDPOINT" --gzip --immediate-checkpoint \
    --host 127.0.0.1 --port "$PG_PORT" --user postgres --dbname postgres \
    "$DESTINATION" "$BACKUP_SERVER_NAME" 2>"$LOGS_DIR/backup-base.log" ||
    { cat "$LOGS_DIR/backup-base.log" >&2; die "backup: barman-cloud-backup failed"; }
  say "backup: base backup of 127.0.0.1:$PG_PORT took $(took "$t0")"
  list_ids | tail -n 1
}

list() {
  tools
  "$BARMAN_BIN/barman-cloud-backup-list" --endpoint-url "$ENDPOINT" "$DESTINATION" "$BACKUP_SERVER_NAME"
}

list_ids() {
  "$BARMAN_BIN/barman-cloud-backup-list" --endpoint-url "$ENDPOINT" --format json "$DESTINATION" \
    "$BACKUP_SERVER_NAME" | "$BARMAN_DIR/venv/bin/python" -c \
    'import json, sys; print(*(b["backup_id"] for b in json.load(sys.stdin)["backups_list"]), sep="\n")'
}

restore() { # restore ID DIR TIME
  local id="${1:-}" dir="${2:-}" target="${3:-}" owner t0
  [[ -n "$id" && -n "$dir" && -n "$target" ]] || die "usage: $0 restore BACKUP_ID DIR TARGET_TIME"
  [[ ! -e "$dir" ]] || [[ -z "$(ls -A "$dir")" ]] || die "backup: $dir is not empty"
  tools
  t0="$(clock)"
  mkdir -p "$dir"
  "$BARMAN_BIN/barman-cloud-restore" --endpoint-url "$ENDPOINT" "$DESTINATION" "$BACKUP_SERVER_NAME" "$id" "$dir"
  mkdir -p "$BACKUP_DIR"
  cat >"$BACKUP_DIR/restore-wal" <<EOF
#!/bin/sh
# restore_command of a restored local PostgreSQL (written by deploy/local/backup.sh restore)
export AWS_ACCESS_KEY_ID='$OBJECTSTORE_ACCESS_KEY' AWS_SECRET_ACCESS_KEY='$OBJECTSTORE_SECRET_KEY' AWS_DEFAULT_REGION=us-east-1
exec '$BARMAN_BIN/barman-cloud-wal-restore' --endpoint-url '$ENDPOINT' '$DESTINATION' '$BACKUP_SERVER_NAME' "\$1" "\$2"
EOF
  chmod 755 "$BACKUP_DIR" "$BACKUP_DIR/restore-wal"
  # replay up to the target, then promote; no read-only connections meanwhile, so a client's first
  # successful connection is to the promoted server
  cat >>"$dir/postgresql.auto.conf" <<EOF
# point-in-time recovery (deploy/local/backup.sh restore $id, $(date -u +%FT%TZ))
restore_command = '$BACKUP_DIR/restore-wal %f %p'
recovery_target_time = '$target'
recovery_target_action = 'promote'
hot_standby = off
EOF
  touch "$dir/recovery.signal"
  rm -f "$dir/postmaster.pid"
  if ((EUID == 0)); then # the server's OS user, as postgres.sh chooses it for a new cluster
    owner="${PG_OS_USER:-buurtkracht}"
    [[ -n "${PG_OS_USER:-}" ]] || ! id postgres >/dev/null 2>&1 || owner=postgres
    chown -R "$owner" "$dir"
  fi
  chmod 700 "$dir"
  say "backup: restored base backup $id into $dir in $(took "$t0"); WAL replay up to $target on the next start"
}

case "${1:-}" in
  tools | settings | base | list) "$1" ;;
  restore) restore "${2:-}" "${3:-}" "${4:-}" ;;
  *) die "usage: $0 tools|settings|base|list|restore BACKUP_ID DIR TARGET_TIME" ;;
esac
