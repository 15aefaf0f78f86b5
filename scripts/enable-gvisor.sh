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
# Registered as this script registers it: Debian's runsc does not start containers without --network=none.
registered() { docker info --format '{{json .Runtimes.runsc}}' 2>/dev/null | grep -q -- '--network=none'; }

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
pid=$(cat "$PIDFILE" 2>/dev/null || true)
{ [ -n "$pid" ] && grep -qx dockerd "/proc/$pid/comm" 2>/dev/null; } \
  || fail "no running dockerd behind $PIDFILE to reload (another engine answers?); add runsc to its daemon.json yourself"

# Merged, not overwritten: other settings stay. Written to a temporary file and renamed, so an
# interrupted write never leaves dockerd a config it cannot start with.
python3 - "$CONFIG" "$(command -v runsc)" <<'PY'
import json, os, sys
from pathlib import Path
config, runsc = Path(sys.argv[1]), sys.argv[2]
text = config.read_text() if config.exists() else ""
data = json.loads(text) if text.strip() else {}
runtimes = data.get("runtimes") or {}
runtimes["runsc"] = {"path": runsc, "runtimeArgs": ["--network=none"]}
data["runtimes"] = runtimes
staged = config.with_name(config.name + ".theappapp-new")
staged.write_text(json.dumps(data, indent=2) + "\n")
os.replace(staged, config)
PY

kill -HUP "$pid"  # runtimes are reloadable: no restart, running containers untouched
for _ in $(seq 1 20); do
  if registered; then
    echo "enable-gvisor: runsc registered ($(runsc --version 2>/dev/null | head -n 1))"
    exit 0
  fi
  sleep 0.5
done
fail "the engine did not list runsc after reloading $CONFIG"
