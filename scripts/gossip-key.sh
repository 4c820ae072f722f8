#!/usr/bin/env bash
# Prints the gossip key of a compose project, making it on first use: 32 random bytes in base64,
# kept in compose/.secrets/<project>.key (mode 600, not in git), so that every replica of the
# project — those started now and those a later scale-up adds — seals gossip with the same key.
#
#   scripts/gossip-key.sh rq4d            # the key of project "rq4d"
#   scripts/gossip-key.sh rq4d --remove   # forget it (scripts/docker-down.sh does)
set -euo pipefail
cd "$(dirname "$0")/.."
project=${1:?usage: scripts/gossip-key.sh PROJECT [--remove]}
file=compose/.secrets/$project.key
if [[ ${2:-} == --remove ]]; then
    rm -f "$file"
    exit 0
fi
if [[ ! -s $file ]]; then
    mkdir -p compose/.secrets
    (umask 077 && head -c 32 /dev/urandom | base64 >"$file.tmp" && mv "$file.tmp" "$file")
fi
cat "$file"
