# shellcheck shell=bash
# Shared by deploy/local/*.sh (sourced, not run). Bash only.
#
# Settings (ports, passwords, LOCAL_DIR, KAFKA_VERSION, KAFKA_BROKERS, CACHE_DIR)
# are defined once, in stack.mk at the repo root, and reach these scripts as
# environment variables. When a script is run by hand outside make, we ask make
# for those not set (a value set in the environment is kept).

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
DEPLOY_LOCAL="$REPO_ROOT/deploy/local"

for setting in LOCAL_DIR KAFKA_VERSION KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_BROKERS PG_PORT \
  PG_SUPERUSER_PASSWORD CACHE_DIR; do
  if [[ -z "${!setting:-}" ]]; then
    set -a
    eval "$(make -s --no-print-directory -C "$REPO_ROOT" -f stack.mk stack-settings)"
    set +a
    break
  fi
done

mkdir -p "$LOCAL_DIR"
LOCAL_DIR="$(cd "$LOCAL_DIR" && pwd -P)" # absolute: it ends up in configs and pid checks
LOGS_DIR="$LOCAL_DIR/logs"
RUN_DIR="$LOCAL_DIR/run"
DATA_DIR="$LOCAL_DIR/data"
mkdir -p "$CACHE_DIR"
CACHE_DIR="$(cd "$CACHE_DIR" && pwd -P)" # jars; may be shared by several stacks

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# microseconds since the epoch, and the time since such a reading, e.g. "2.4s"
clock() { echo "${EPOCHREALTIME/[.,]/}"; }
took() { # took START
  local us=$(($(clock) - $1))
  printf '%d.%ds' $((us / 1000000)) $((us % 1000000 / 100000))
}

# true when something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# true when PID exists and is not a zombie (an exited child nobody has reaped yet); a
# killed JVM's main thread is a zombie before its other threads are gone and its
# sockets closed, so it counts as alive while it has other threads
alive() {
  [[ -r "/proc/$1/stat" ]] || return 1
  [[ "$(sed -E 's/.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]] && return 0
  local threads=("/proc/$1/task/"*)
  ((${#threads[@]} > 1))
}

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

mkdir -p "$LOGS_DIR" "$RUN_DIR" "$DATA_DIR"
