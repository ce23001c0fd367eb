#!/usr/bin/env bash
# Validates deploy/ offline (see validate.mjs for what is checked). ctest runs it:
#   deploy/validate/run.sh              the manifests, alerts, dashboard and Dockerfiles
#   deploy/validate/run.sh --self-test  broken copies must be rejected
#   deploy/validate/run.sh --install    only install the pinned npm packages
# Needs node, npm (the npm registry, the first time) and promtool (Debian's prometheus); a
# missing one is an error, never a skip.
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm promtool; do
  if ! command -v "$tool" >/dev/null; then
    echo "deploy/validate: '$tool' is not installed (scripts/setup installs it)" >&2
    exit 1
  fi
done
# Reinstall when package-lock.json changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2; then
    echo "deploy/validate: npm ci failed (is the npm registry reachable?)" >&2
    exit 1
  fi
fi
if [ "${1:-}" = "--install" ]; then exit 0; fi
exec node validate.mjs "$@"
