#!/usr/bin/env bash
# Runs `docker compose` (v2) when it exists, else `docker-compose` (1.29), with the arguments given.
# The other docker-*.sh scripts use it; it is handy by hand too:
#   scripts/docker-compose.sh -p rq4d -f compose/compose.yaml ps
set -euo pipefail
if docker compose version >/dev/null 2>&1; then
    exec docker compose "$@"
elif command -v docker-compose >/dev/null 2>&1; then
    exec docker-compose "$@"
else
    echo "neither 'docker compose' nor 'docker-compose' is installed" >&2
    exit 1
fi
