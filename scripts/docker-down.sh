#!/usr/bin/env bash
# Removes the cluster scripts/docker-up.sh started: containers, their volumes, the network, and
# the project's gossip key.
# (`down -v` alone misses the volumes compose carried over when it recreated a container.)
set -euo pipefail
cd "$(dirname "$0")/.."
project=${RQ4D_PROJECT:-rq4d}
ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
volumes=""
if [[ -n $ids ]]; then
    # shellcheck disable=SC2086 # one argument per id
    volumes=$(docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' $ids)
fi
# `down` reads the compose file too, and the file insists on a key; any value does for removal.
RQ4D_IMAGE=${RQ4D_IMAGE:-rq4d:test-double} RQ4D_GOSSIP_KEY=${RQ4D_GOSSIP_KEY:-removing} \
    scripts/docker-compose.sh -p "$project" -f compose/compose.yaml down -v --remove-orphans
for v in $volumes; do
    docker volume rm "$v" >/dev/null 2>&1 || true
done
# The data is gone, so is the key it was gossiped with.
scripts/gossip-key.sh "$project" --remove
