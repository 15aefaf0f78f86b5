#!/usr/bin/env bash
# Start a local Docker engine from Debian packages, idempotently.
#   already answering        -> nothing to do
#   docker.io not installed  -> apt-get install it
#   stale pid file / socket  -> removed, then dockerd started
# Waits until `docker info` answers; on failure prints one clear line and exits 1.
set -euo pipefail

PIDFILE=${DOCKERD_PIDFILE:-/var/run/docker.pid}
SOCKET=${DOCKERD_SOCKET:-/var/run/docker.sock}
LOG=${DOCKERD_LOG:-/var/log/theappapp-dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

fail() { echo "start-docker-engine: $*" >&2; exit 1; }

if docker info >/dev/null 2>&1; then
  echo "start-docker-engine: engine already running"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || fail "not root: run as root (or start dockerd yourself)"

if ! command -v dockerd >/dev/null 2>&1; then
  echo "start-docker-engine: installing docker.io from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || fail "apt-get update failed: is a Debian mirror reachable?"
  apt-get install -y -qq docker.io iptables >/dev/null || fail "apt-get install docker.io failed"
fi

# A pid file whose process is gone, or a socket nobody answers on, blocks dockerd's start.
if [ -f "$PIDFILE" ]; then
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
    echo "start-docker-engine: dockerd (pid $pid) is starting; waiting for it"
  else
    echo "start-docker-engine: removing stale pid file"
    rm -f "$PIDFILE"
  fi
fi
if ! [ -f "$PIDFILE" ]; then
  [ -S "$SOCKET" ] && { echo "start-docker-engine: removing stale socket"; rm -f "$SOCKET"; }
  # containerd's own stale state is handled by dockerd starting its managed containerd.
  nohup dockerd --pidfile "$PIDFILE" >"$LOG" 2>&1 &
  echo "start-docker-engine: dockerd started (log: $LOG)"
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
  if docker info >/dev/null 2>&1; then
    echo "start-docker-engine: engine ready ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
fail "dockerd did not answer within ${WAIT_SECONDS}s; last log lines: $(tail -n 3 "$LOG" 2>/dev/null | tr '\n' ' ')"
