# shellcheck shell=bash
# Shared by deploy/local/*.sh (sourced, not run). Bash only.
#
# Settings (ports, passwords, LOCAL_DIR, KAFKA_VERSION) are defined once, in
# stack.mk at the repo root, and reach these scripts as environment variables.
# When a script is run by hand outside make, we ask make for them.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
DEPLOY_LOCAL="$REPO_ROOT/deploy/local"

if [[ -z "${KAFKA_PORT:-}" || -z "${PG_PORT:-}" || -z "${LOCAL_DIR:-}" ]]; then
  set -a
  eval "$(make -s --no-print-directory -C "$REPO_ROOT" -f stack.mk stack-settings)"
  set +a
fi

mkdir -p "$LOCAL_DIR"
LOCAL_DIR="$(cd "$LOCAL_DIR" && pwd -P)" # absolute: it ends up in configs and pid checks
LOGS_DIR="$LOCAL_DIR/logs"
RUN_DIR="$LOCAL_DIR/run"
DATA_DIR="$LOCAL_DIR/data"
CACHE_DIR="$LOCAL_DIR/cache"

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# true when something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# true when PID exists and is not a zombie (an exited child nobody has reaped yet)
alive() { [[ -r "/proc/$1/stat" && "$(sed -E 's/.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]]; }

# print the pid in FILE when that process is alive and its command line
# contains PATTERN (guards against pid reuse after a crash); else fail
live_pid() { # live_pid FILE PATTERN
  local pid
  [[ -s "$1" ]] && read -r pid <"$1" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
  echo "$pid"
}

# wait up to SECONDS for pid to exit
wait_gone() { # wait_gone PID SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    alive "$1" || return 0
    sleep 0.1
  done
  return 1
}

mkdir -p "$LOGS_DIR" "$RUN_DIR" "$DATA_DIR" "$CACHE_DIR"
