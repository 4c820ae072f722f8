#!/usr/bin/env bash
# Docker Swarm quick start: the stack compose/swarm.yaml, N replicas (default 3), on this
# machine's swarm — initialised on loopback first if the engine is in none (scripts/swarm-down.sh
# leaves it again, and only then).
#
#   scripts/swarm-up.sh           # 3 replicas
#   scripts/swarm-up.sh 5         # scale to 5 (run again with another N to scale up or down)
#   scripts/swarm-down.sh         # remove the stack, its volumes and its key
#
# It builds the image first (scripts/docker-build.sh; no registry needed on a single-node swarm —
# on several nodes, every node needs the image: `docker save | ssh node docker load`), makes the
# stack's gossip key (compose/.secrets/<stack>.key, given to the tasks as a Swarm secret),
# deploys, waits until every replica is ready under one leader and prints the members table.
#
# Environment: RQ4D_IMAGE (use this image, skip the build), RQ4D_STACK (stack name, default
# rq4d), and any RQ4D_* variable compose/swarm.yaml reads (RQ4D_EXPECT, RQ4D_REAP_AFTER, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
stack=${RQ4D_STACK:-rq4d}
export RQ4D_STACK=$stack

docker info >/dev/null 2>&1 || { echo "no Docker Engine answers (docker info failed)" >&2; exit 1; }
case $(docker info --format '{{.Swarm.LocalNodeState}}') in
    active) ;;
    inactive)
        echo "this engine is in no swarm: initialising a single-node swarm on 127.0.0.1" >&2
        docker swarm init --advertise-addr 127.0.0.1 >/dev/null
        # Remembered in the swarm itself, so that swarm-down.sh leaves only a swarm made here.
        docker node update --label-add rq4d.initialised-by=swarm-up "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null
        ;;
    *)
        echo "this engine's swarm state is $(docker info --format '{{.Swarm.LocalNodeState}}'); run again once it is active or inactive" >&2
        exit 1
        ;;
esac
[[ $(docker info --format '{{.Swarm.ControlAvailable}}') == true ]] \
    || { echo "this engine is a swarm worker: run scripts/swarm-up.sh on a manager" >&2; exit 1; }

if [[ -z ${RQ4D_IMAGE:-} ]]; then
    RQ4D_IMAGE=$(scripts/docker-build.sh)
fi
export RQ4D_IMAGE
scripts/gossip-key.sh "$stack" >/dev/null
export RQ4D_GOSSIP_KEYRING_FILE=$PWD/compose/.secrets/$stack.key
export RQ4D_REPLICAS=$n
# A swarm's virtual IPs are IPVS services, which Docker loads when the swarm starts: without
# /proc/net/ip_vs there is none, and a VIP would accept nothing.
if [[ -z ${RQ4D_ENDPOINT_MODE:-} && ! -e /proc/net/ip_vs ]]; then
    echo "this kernel has no IPVS (/proc/net/ip_vs), so Swarm's virtual IPs cannot work here: deploying with endpoint_mode dnsrr (db resolves to every live task)" >&2
    export RQ4D_ENDPOINT_MODE=dnsrr
fi

start=$(date +%s.%N)
docker stack deploy --prune -c compose/swarm.yaml "$stack" >&2

service=${stack}_db
ids=$(scripts/wait-formed.sh "$n" "docker service ps $service; docker service logs $service" \
    --filter "label=com.docker.swarm.service.name=$service")
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
first=$(head -n1 <<<"$ids")
docker exec "$first" rq4d members
echo
echo "$n replicas formed one cluster in ${took}s (image $RQ4D_IMAGE, stack $stack)."
echo "applications on the stack's network (${stack}_rqlite, attachable) connect to http://db:4001 (endpoint mode ${RQ4D_ENDPOINT_MODE:-vip})"
echo "members: docker exec \$(docker ps -q --filter label=com.docker.swarm.service.name=$service | head -n1) rq4d members"
echo "gossip is sealed with the key in compose/.secrets/$stack.key (the Swarm secret ${stack}_gossip_keyring)"
if [[ $stack == rq4d ]]; then
    echo "remove:  scripts/swarm-down.sh"
else
    echo "remove:  RQ4D_STACK=$stack scripts/swarm-down.sh"
fi
