#!/usr/bin/env bash
# Register Debian's crun with the local Docker engine as the OCI runtime "crun", idempotently.
#   crun not installed       -> apt-get install it
#   a hybrid cgroup host whose v2 hierarchy holds a controller -> that controller bound to a v1
#                               hierarchy of its own, if no v2 cgroup uses it (else: refused, exit 1)
#   then: registered as "crun" (scripts/register-oci-runtime.sh: daemon.json merged, engine reloaded)
# crun is the OCI runtime written in C (Podman's default): it starts and removes a container on less
# CPU than runc, which runs a Go binary several times per container (benchmarks/bench_floor.py
# --runtimes runc crun). Sandboxes use it with THEAPPAPP_RUNTIME=crun, or as the engine's default.
# The engine's default runtime is not changed here.
set -euo pipefail
cd "$(dirname "$0")"

fail() { echo "enable-crun: $*" >&2; exit 1; }

root() { [ "$(id -u)" -eq 0 ] || fail "not root: run as root ($*)"; }

docker info >/dev/null 2>&1 || fail "no engine answering: run scripts/start-docker-engine.sh first"
if ! command -v crun >/dev/null 2>&1; then
  root "to install crun"
  echo "enable-crun: installing crun from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq crun >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq crun >/dev/null; } \
    || fail "apt-get install crun failed: is a Debian mirror reachable?"
fi

# crun refuses to start anything on a host with cgroup v1 hierarchies and a controller on the v2
# one beside them ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2");
# runc does not mind. A controller the v2 root offers but enables for no child is used by no v2
# cgroup, and the kernel lets it move to a v1 hierarchy of its own: then crun accepts the host.
# Redone at every run (a mount does not survive a reboot; the registration does).
unified=${CGROUP_UNIFIED:-/sys/fs/cgroup/unified}
if [ "$(stat -fc %T "$unified" 2>/dev/null || true)" = cgroup2fs ]; then
  for controller in $(cat "$unified/cgroup.controllers"); do
    if grep -qw -- "$controller" "$unified/cgroup.subtree_control"; then
      fail "the $controller controller is in use on the cgroup v2 hierarchy ($unified): crun cannot run on this host"
    fi
    target="$(dirname "$unified")/$controller"
    root "to bind the $controller controller to cgroup v1"
    mkdir -p "$target" && mount -t cgroup -o "$controller" cgroup "$target" \
      || fail "could not bind the $controller controller to $target (cgroup v1), which crun needs here"
    echo "enable-crun: bound the $controller controller to cgroup v1 at $target (crun refuses it on v2 beside v1)"
  done
fi
bash register-oci-runtime.sh crun "$(command -v crun)"
echo "enable-crun: $(crun --version 2>/dev/null | head -n 1)"
