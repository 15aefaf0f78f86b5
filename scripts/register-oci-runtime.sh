#!/usr/bin/env bash
# Register an OCI runtime with the local Docker engine, idempotently:
#   scripts/register-oci-runtime.sh NAME PATH [RUNTIME_ARG ...]
#   already listed so by the engine -> nothing to do
#   else: "runtimes".NAME merged into the engine's daemon.json (other keys kept), engine reloaded
#   (SIGHUP: runtimes are reloadable, running containers untouched), and waited for until listed.
# Used by enable-gvisor.sh and enable-crun.sh, which install the runtime first.
set -euo pipefail

CONFIG=${DOCKERD_CONFIG:-/etc/docker/daemon.json}
PIDFILE=${DOCKERD_PIDFILE:-/var/run/docker.pid}

fail() { echo "register-oci-runtime: $*" >&2; exit 1; }
[ $# -ge 2 ] || fail "usage: register-oci-runtime.sh NAME PATH [RUNTIME_ARG ...]"
name=$1 path=$2
shift 2

# The entry as daemon.json and `docker info` spell it, in one canonical form to compare.
canonical='import json, sys
entry = json.loads(sys.stdin.read() or "null") or {}
print(json.dumps({k: entry[k] for k in ("path", "runtimeArgs") if entry.get(k)}, sort_keys=True))'
wanted=$(python3 -c 'import json, sys; print(json.dumps({"path": sys.argv[1], "runtimeArgs": sys.argv[2:]}))' \
  "$path" "$@" | python3 -c "$canonical")
listed() { docker info --format "{{json (index .Runtimes \"$name\")}}" 2>/dev/null | python3 -c "$canonical"; }
# What the engine reads when it starts again: an engine that lists it from an older reload may not.
configured() {
  python3 -c 'import json, sys; print(json.dumps(((json.load(open(sys.argv[1])) or {}).get("runtimes") or {}).get(sys.argv[2])))' \
    "$CONFIG" "$name" 2>/dev/null | python3 -c "$canonical"
}

docker info >/dev/null 2>&1 || fail "no engine answering: run scripts/start-docker-engine.sh first"
if [ "$(listed)" = "$wanted" ] && [ "$(configured)" = "$wanted" ]; then
  echo "register-oci-runtime: $name already registered"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || fail "not root: run as root"
mkdir -p "$(dirname "$CONFIG")"
pid=$(cat "$PIDFILE" 2>/dev/null || true)
{ [ -n "$pid" ] && grep -qx dockerd "/proc/$pid/comm" 2>/dev/null; } \
  || fail "no running dockerd behind $PIDFILE to reload (another engine answers?); add $name to its daemon.json yourself"

# Merged, not overwritten: other settings stay. Written to a temporary file and renamed, so an
# interrupted write never leaves dockerd a config it cannot start with.
python3 - "$CONFIG" "$name" "$wanted" <<'PY'
import json, os, sys
from pathlib import Path
config, name, entry = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
text = config.read_text() if config.exists() else ""
data = json.loads(text) if text.strip() else {}
runtimes = data.get("runtimes") or {}
runtimes[name] = entry
data["runtimes"] = runtimes
staged = config.with_name(config.name + ".theappapp-new")
staged.write_text(json.dumps(data, indent=2) + "\n")
os.replace(staged, config)
PY

kill -HUP "$pid"
for _ in $(seq 1 20); do
  if [ "$(listed)" = "$wanted" ]; then
    echo "register-oci-runtime: $name registered"
    exit 0
  fi
  sleep 0.5
done
fail "the engine did not list $name after reloading $CONFIG"
