#!/usr/bin/env bash
# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# Builds every image with plain `docker build`, in dependency order, without Python.
# `nox -s build` does more: bootstraps debian:<suite>-slim from a Debian mirror when it
# cannot be pulled, skips images whose content hash is already built, runs each
# image's checks, and tags only images that pass them.
#
# Usage: generated/build-all.sh [LANGUAGE ...]
# Environment: EXTRA_CA_CERT (a PEM file baked into the bases), and mirrors:
# APT_MIRROR, PIP_INDEX_URL, NPM_CONFIG_REGISTRY, GEM_SOURCE (unset: each tool's default).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
args=()
for var in APT_MIRROR PIP_INDEX_URL NPM_CONFIG_REGISTRY GEM_SOURCE; do
  [ -n "${!var:-}" ] && args+=(--build-arg "$var=${!var}")
done
wanted=" ${*:-python node java go ruby php csharp powershell egress-proxy} "

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$here/base/theappapp-fetch" "$here/base/sandbox-agent.py" "$context/"
mkdir "$context/ca"
if [ -n "${EXTRA_CA_CERT:-}" ]; then cp "$EXTRA_CA_CERT" "$context/ca/extra.crt"; fi

if [[ $wanted == *" python "* ]] || [[ $wanted == *" java "* ]] || [[ $wanted == *" go "* ]] || [[ $wanted == *" php "* ]] || [[ $wanted == *" csharp "* ]] || [[ $wanted == *" powershell "* ]] || [[ $wanted == *" egress-proxy "* ]]; then
  docker image inspect debian:bookworm-slim >/dev/null 2>&1 || docker pull debian:bookworm-slim \
    || { echo "debian:bookworm-slim is missing and cannot be pulled: run 'nox -s build', which bootstraps it from a Debian mirror" >&2; exit 1; }
  echo "== theappapp-base:bookworm"
  docker build "${args[@]}" -f "$here/base/bookworm.Dockerfile" -t theappapp-base:bookworm "$context"
fi
if [[ $wanted == *" node "* ]] || [[ $wanted == *" ruby "* ]]; then
  docker image inspect debian:trixie-slim >/dev/null 2>&1 || docker pull debian:trixie-slim \
    || { echo "debian:trixie-slim is missing and cannot be pulled: run 'nox -s build', which bootstraps it from a Debian mirror" >&2; exit 1; }
  echo "== theappapp-base:trixie"
  docker build "${args[@]}" -f "$here/base/trixie.Dockerfile" -t theappapp-base:trixie "$context"
fi

if [[ $wanted == *" python "* ]]; then
  echo "== theappapp-python:3.11"
  docker build "${args[@]}" -t theappapp-python:3.11 -t theappapp-python:latest \
    -f "$here/languages/python.Dockerfile" "$context"
fi
if [[ $wanted == *" node "* ]]; then
  echo "== theappapp-node:20"
  docker build "${args[@]}" -t theappapp-node:20 -t theappapp-node:latest \
    -f "$here/languages/node.Dockerfile" "$context"
fi
if [[ $wanted == *" java "* ]]; then
  echo "== theappapp-java:17"
  docker build "${args[@]}" -t theappapp-java:17 -t theappapp-java:latest \
    -f "$here/languages/java.Dockerfile" "$context"
fi
if [[ $wanted == *" go "* ]]; then
  echo "== theappapp-go:1.21"
  docker build "${args[@]}" -t theappapp-go:1.21 -t theappapp-go:latest \
    -f "$here/languages/go.Dockerfile" "$context"
fi
if [[ $wanted == *" ruby "* ]]; then
  echo "== theappapp-ruby:3.3"
  docker build "${args[@]}" -t theappapp-ruby:3.3 -t theappapp-ruby:latest \
    -f "$here/languages/ruby.Dockerfile" "$context"
fi
if [[ $wanted == *" php "* ]]; then
  echo "== theappapp-php:8.2"
  docker build "${args[@]}" -t theappapp-php:8.2 -t theappapp-php:latest \
    -f "$here/languages/php.Dockerfile" "$context"
fi
if [[ $wanted == *" csharp "* ]]; then
  echo "== theappapp-csharp:8.0"
  docker build "${args[@]}" -t theappapp-csharp:8.0 -t theappapp-csharp:latest \
    -f "$here/languages/csharp.Dockerfile" "$context"
fi
if [[ $wanted == *" powershell "* ]]; then
  echo "== theappapp-powershell:7.4"
  docker build "${args[@]}" -t theappapp-powershell:7.4 -t theappapp-powershell:latest \
    -f "$here/languages/powershell.Dockerfile" "$context"
fi
if [[ $wanted == *" egress-proxy "* ]]; then
  echo "== theappapp-egress-proxy:5.7"
  cp -r "$here/services/egress-proxy" "$context/"
  docker build "${args[@]}" -t theappapp-egress-proxy:5.7 -t theappapp-egress-proxy:latest \
    -f "$here/services/egress-proxy.Dockerfile" "$context"
fi
