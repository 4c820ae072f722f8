#!/usr/bin/env bash
# Removes what scripts/swarm-up.sh made: the stack (its services, network and secret), its
# volumes (the data), its gossip key, and — if swarm-up.sh initialised this engine's swarm and
# nothing else runs in it — the swarm itself.
#
#   scripts/swarm-down.sh
#   RQ4D_STACK=other scripts/swarm-down.sh
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${RQ4D_STACK:-rq4d}

if [[ $(docker info --format '{{.Swarm.LocalNodeState}}') != active ]]; then
    echo "this engine is in no swarm: nothing to remove" >&2
    scripts/gossip-key.sh "$stack" --remove
    exit 0
fi
docker stack rm "$stack" >/dev/null 2>&1 || true
# `stack rm` returns before the containers are gone, and a volume in use cannot be removed.
deadline=$(( $(date +%s) + 60 ))
while [[ -n $(docker ps -aq --filter "label=com.docker.stack.namespace=$stack") ]]; do
    if (( $(date +%s) > deadline )); then
        echo "the stack's containers were still there after 60 s" >&2
        exit 1
    fi
    sleep 1
done
# The network goes asynchronously too; wait so that a new deploy does not race it.
while docker network inspect "${stack}_rqlite" >/dev/null 2>&1 && (( $(date +%s) <= deadline )); do
    sleep 1
done
for v in $(docker volume ls -q --filter "name=^${stack}-data-[0-9]+$"); do
    docker volume rm "$v" >/dev/null
done
scripts/gossip-key.sh "$stack" --remove

if [[ $(docker node inspect self --format '{{index .Spec.Labels "rq4d.initialised-by"}}' 2>/dev/null) == swarm-up \
    && -z $(docker service ls -q) ]]; then
    echo "leaving the single-node swarm scripts/swarm-up.sh initialised" >&2
    docker swarm leave --force >/dev/null
fi
