#!/usr/bin/env bash
# Quick start: a self-forming rqlite cluster of N containers (default 3) on this machine.
#
#   scripts/docker-up.sh          # 3 nodes
#   scripts/docker-up.sh 5        # 5 nodes (run again with another N to scale up or down)
#   scripts/docker-down.sh        # remove it, volumes included
#
# It builds the image first (scripts/docker-build.sh: static binaries made on the host, so no
# registry is needed; with RQLITED=/path/to/static/rqlited the image carries the real rqlited,
# otherwise the rqlited TEST DOUBLE and the tag rq4d:test-double), starts compose/compose.yaml
# with N replicas of one service, waits until every replica is healthy under one leader and
# prints the members table.
#
# Gossip is sealed with a key of the project's own (scripts/gossip-key.sh: made on the first up,
# kept in compose/.secrets/<project>.key, removed by scripts/docker-down.sh), so nothing else on
# the network can join or forge the membership.
#
# Environment: RQ4D_IMAGE (use this image, skip the build), RQ4D_PROJECT (compose project,
# default rq4d), RQ4D_GOSSIP_KEY (use this key instead), and any RQ4D_* variable
# compose/compose.yaml reads (RQ4D_EXPECT, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
project=${RQ4D_PROJECT:-rq4d}
compose=(scripts/docker-compose.sh -p "$project" -f compose/compose.yaml)

docker info >/dev/null 2>&1 || { echo "no Docker Engine answers (docker info failed)" >&2; exit 1; }
if [[ -z ${RQ4D_IMAGE:-} ]]; then
    RQ4D_IMAGE=$(scripts/docker-build.sh)
fi
export RQ4D_IMAGE
RQ4D_GOSSIP_KEY=${RQ4D_GOSSIP_KEY:-$(scripts/gossip-key.sh "$project")}
export RQ4D_GOSSIP_KEY

# Volumes of the replicas a scale-down removes are garbage (those nodes are gone for good and
# reaped after RQ4D_REAP_AFTER); compose leaves them behind, so they are removed here.
volumes_of() {
    local ids
    ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
    # shellcheck disable=SC2086 # one argument per id
    [[ -z $ids ]] || docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{"\n"}}{{end}}{{end}}' $ids | sort -u
}
before=$(volumes_of)

start=$(date +%s.%N)
"${compose[@]}" up -d --scale "db=$n"
after=$(volumes_of)
# shellcheck disable=SC2086 # one line per volume
for v in $(comm -23 <(printf '%s\n' $before) <(printf '%s\n' $after)); do
    docker volume rm "$v" >/dev/null 2>&1 || true
done

ids=$(scripts/wait-formed.sh "$n" "${compose[*]} logs" \
    --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=db")
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
first=$(head -n1 <<<"$ids")
docker exec "$first" rq4d members
echo
echo "$n nodes formed one cluster in ${took}s (image $RQ4D_IMAGE, project $project)."
echo "rqlite HTTP API of each node (reachable from this host):"
for id in $ids; do
    docker inspect -f '  {{.Name}}  http://{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}:4001' "$id" | sed 's|/||'
done
echo "members: docker exec $(docker inspect -f '{{.Name}}' "$first" | tr -d /) rq4d members"
echo "gossip is sealed with the key in compose/.secrets/$project.key"
if [[ $project == rq4d ]]; then
    echo "remove:  scripts/docker-down.sh"
else
    echo "remove:  RQ4D_PROJECT=$project scripts/docker-down.sh"
fi
