#!/usr/bin/env bash
# The local S3-compatible object store, where backup.sh archives WAL and keeps base backups: SeaweedFS
# (Apache-2.0), one `weed server` process (master, volume server, filer and S3 gateway) on 127.0.0.1, data in
# $LOCAL_DIR/data/objectstore, one identity with the keys of objectstore.env. Built once from the Go module
# proxy at a pinned version into $CACHE_DIR/bin (about ten minutes on two cores).
#
#   objectstore.sh up | down | status
#   objectstore.sh build     only build the binary
#
# Ports: OBJECTSTORE_PORT (S3) and the three after it (master, volume server, filer), each with a gRPC port
# 10000 above it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$DEPLOY_LOCAL/objectstore.env"

SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}" # weed 4.53
WEED="$CACHE_DIR/bin/weed-$SEAWEEDFS_VERSION"
STORE_DIR="$DATA_DIR/objectstore"
PID_FILE="$RUN_DIR/objectstore.pid"
STORE_LOG="$LOGS_DIR/objectstore.log"

build() {
  [[ -x "$WEED" ]] && return 0
  command -v go >/dev/null || die "objectstore: Go is needed to build SeaweedFS"
  say "objectstore: building SeaweedFS $SEAWEEDFS_VERSION into $WEED (once)"
  local source t0
  t0="$(clock)"
  GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION"
  source="$(GOTOOLCHAIN=local go list -m -f '{{.Dir}}' "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" 2>/dev/null ||
    echo "$(go env GOMODCACHE)/$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION")"
  mkdir -p "$CACHE_DIR/bin"
  # built inside its own module: `go install module@version` refuses a go.mod with replace directives
  (cd "$source" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -o "$WEED.tmp" ./weed)
  mv "$WEED.tmp" "$WEED"
  say "objectstore: built in $(took "$t0")"
}

pid() { live_pid "$PID_FILE" "$STORE_DIR"; }

up() {
  if pid >/dev/null; then
    status
    return 0
  fi
  build
  local port
  for port in "$OBJECTSTORE_PORT" $((OBJECTSTORE_PORT + 1)) $((OBJECTSTORE_PORT + 2)) $((OBJECTSTORE_PORT + 3)); do
    ! port_open "$port" || die "objectstore: port $port is already in use (set OBJECTSTORE_PORT)"
  done
  mkdir -p "$STORE_DIR"
  cat >"$STORE_DIR/s3.json" <<EOF
{"identities": [{"name": "buurtkracht",
  "credentials": [{"accessKey": "$OBJECTSTORE_ACCESS_KEY", "secretKey": "$OBJECTSTORE_SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF
  say "objectstore: starting on 127.0.0.1:$OBJECTSTORE_PORT (log: $STORE_LOG)"
  (
    exec "$WEED" server -dir="$STORE_DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3 -s3.port="$OBJECTSTORE_PORT" -s3.config="$STORE_DIR/s3.json" \
      -master.port=$((OBJECTSTORE_PORT + 1)) -volume.port=$((OBJECTSTORE_PORT + 2)) \
      -filer.port=$((OBJECTSTORE_PORT + 3)) -master.volumeSizeLimitMB=256 -volume.max=64 \
      -filer.localSocket="$RUN_DIR/objectstore-filer.sock" >>"$STORE_LOG" 2>&1
  ) </dev/null &
  echo $! >"$PID_FILE"
  local i
  for ((i = 0; i < 600; i++)); do
    pid >/dev/null || { tail -n 20 "$STORE_LOG" >&2; die "objectstore: exited during startup"; }
    # the S3 gateway answers once the filer behind it does; an unsigned request is refused with 403
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OBJECTSTORE_PORT/")" =~ ^(200|403)$ ]]; then
      status
      return 0
    fi
    sleep 0.1
  done
  die "objectstore: no answer on 127.0.0.1:$OBJECTSTORE_PORT after 60 s (log: $STORE_LOG)"
}

down() {
  local p
  if ! p="$(pid)"; then
    say "objectstore: stopped"
    return 0
  fi
  kill -TERM "$p"
  wait_gone "$p" 30 || { kill -KILL "$p" && wait_gone "$p" 10; }
  rm -f "$PID_FILE"
  say "objectstore: stopped (was pid $p)"
}

status() {
  local p
  if p="$(pid)"; then
    printf '%-11s running  pid %-7s port %s  %s\n' objectstore "$p" "$OBJECTSTORE_PORT" "$STORE_DIR"
  else
    printf '%-11s stopped\n' objectstore
    return 3
  fi
}

case "${1:-}" in
  up | down | status | build) "$1" ;;
  *) die "usage: $0 up|down|status|build" ;;
esac
