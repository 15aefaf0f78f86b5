#!/usr/bin/env bash
# Register Debian's gVisor (runsc) with the local Docker engine, idempotently.
#   already registered       -> nothing to do
#   runsc not installed      -> apt-get install it
#   then: "runtimes" merged into the engine's daemon.json (other keys kept), engine reloaded (SIGHUP)
# Debian's runsc starts only with its own network off, so it is registered with --network=none:
# a sandbox under it has no network, whatever the manager's network setting.
set -euo pipefail

CONFIG=${DOCKERD_CONFIG:-/etc/docker/daemon.json}
PIDFILE=${DOCKERD_PIDFILE:-/var/run/docker.pid}

fail() { echo "enable-gvisor: $*" >&2; exit 1; }
registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

docker info >/dev/null 2>&1 || fail "no engine answering: run scripts/start-docker-engine.sh first"
if registered; then
  echo "enable-gvisor: runsc already registered"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || fail "not root: run as root"

if ! command -v runsc >/dev/null 2>&1; then
  echo "enable-gvisor: installing runsc from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq runsc >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq runsc >/dev/null; } \
    || fail "apt-get install runsc failed: is a Debian mirror reachable?"
fi

mkdir -p "$(dirname "$CONFIG")"
python3 - "$CONFIG" "$(command -v runsc)" <<'PY'
import json, sys
from pathlib import Path
config, runsc = Path(sys.argv[1]), sys.argv[2]
data = json.loads(config.read_text()) if config.exists() and config.read_text().strip() else {}
data.setdefault("runtimes", {})["runsc"] = {"path": runsc, "runtimeArgs": ["--network=none"]}
config.write_text(json.dumps(data, indent=2) + "\n")
PY

pid=$(cat "$PIDFILE" 2>/dev/null || true)
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || fail "no dockerd pid in $PIDFILE to reload; restart the engine to pick up $CONFIG"
kill -HUP "$pid"  # runtimes are reloadable: no restart, running containers untouched
for _ in $(seq 1 20); do
  if registered; then
    echo "enable-gvisor: runsc registered ($(runsc --version 2>/dev/null | head -n 1))"
    exit 0
  fi
  sleep 0.5
done
fail "the engine did not list runsc after reloading $CONFIG"
