#!/usr/bin/env bash
# Register Debian's gVisor (runsc) with the local Docker engine, idempotently.
#   runsc not installed      -> apt-get install it
#   then: registered as "runsc" (scripts/register-oci-runtime.sh: daemon.json merged, engine reloaded)
# Debian's runsc starts only with its own network off, so it is registered with --network=none:
# a sandbox under it has no network, whatever the manager's network setting.
set -euo pipefail
cd "$(dirname "$0")"

fail() { echo "enable-gvisor: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 || fail "no engine answering: run scripts/start-docker-engine.sh first"
if ! command -v runsc >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || fail "not root: run as root"
  echo "enable-gvisor: installing runsc from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq runsc >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq runsc >/dev/null; } \
    || fail "apt-get install runsc failed: is a Debian mirror reachable?"
fi
bash register-oci-runtime.sh runsc "$(command -v runsc)" --network=none
echo "enable-gvisor: $(runsc --version 2>/dev/null | head -n 1)"
