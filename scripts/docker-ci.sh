#!/usr/bin/env bash
# CI's Docker stage: builds the image, brings up the README's 3-node cluster, lets two intruders
# loose on its network and removes it, brings up production rqlite (auth, HTTPS, node TLS,
# read-only replicas), checks the two-host mimic, runs the short chaos test (with the voter-cap
# formation) and then the Swarm check (the stack on a single-node swarm: scale, rolling update,
# two tasks killed).
# Prints "SKIPPED" and exits 0 when no Docker Engine answers. Everything it starts is removed on
# exit, also on failure.
#
#   scripts/docker-ci.sh                 # what .ci/run calls
#   CHAOS_ROUNDS=20 scripts/docker-ci.sh
#   CHAOS_ARGS="--formations all-at-once,reverse-order" scripts/docker-ci.sh   # extra chaos.py options
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
    echo "SKIPPED: Docker stage (image, compose, chaos): no Docker Engine answers (docker info failed)"
    exit 0
fi

if [[ -z ${RQ4D_IMAGE:-} ]]; then
    echo "== docker: image (scripts/docker-build.sh)"
    RQ4D_IMAGE=$(scripts/docker-build.sh)
fi
export RQ4D_IMAGE

project=rq4dci$$
cleanup() {
    RQ4D_PROJECT=$project scripts/docker-down.sh >/dev/null 2>&1 || true
    RQ4D_PROJECT=${project}prod scripts/docker-down.sh >/dev/null 2>&1 || true
    if [[ $(id -u) == 0 ]]; then
        RQ4D_PROJECT=${project}mh scripts/docker-multihost.sh down >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

echo "== docker: quick start (scripts/docker-up.sh: 3 nodes form one cluster)"
RQ4D_PROJECT=$project scripts/docker-up.sh 3

echo "== docker: the image runs as uid 10001, and the nodes are named after their containers"
for container in $(docker ps -q --filter "label=com.docker.compose.project=$project"); do
    name=$(docker inspect -f '{{.Name}}' "$container"); name=${name#/}
    uids=$(docker top "$container" -o pid,uid | awk 'NR > 1 { print $2 }' | sort -u | tr '\n' ' ')
    [[ $uids == "10001 " ]] || { echo "FAIL: $name runs as uid(s) $uids, not 10001 alone"; exit 1; }
    docker exec "$container" rq4d members --json | grep -q "\"$name\"" \
        || { echo "FAIL: no member is named $name (the container's name)"; exit 1; }
    echo "ok: $name runs as 10001 and is the member $name"
done

echo "== docker: intruders on the compose network (no key; another key) never become members"
scripts/docker-intruders.sh "$project"
RQ4D_PROJECT=$project scripts/docker-down.sh

echo "== docker: production rqlite (compose/secure.yaml + replicas.yaml: auth, HTTPS, node TLS, 2 read-only replicas)"
scripts/rqlite-secrets.sh >/dev/null
prod=${project}prod
prod_compose=(scripts/docker-compose.sh -p "$prod" -f compose/compose.yaml -f compose/replicas.yaml -f compose/secure.yaml -f compose/secure-replicas.yaml)
prod_key=$(scripts/gossip-key.sh "$prod")
RQ4D_GOSSIP_KEY=$prod_key "${prod_compose[@]}" up -d --scale db=3 --scale replica=2
if ! scripts/wait-formed.sh 5 "${prod_compose[*]} logs" --filter "label=com.docker.compose.project=$prod" >/dev/null; then
    RQ4D_GOSSIP_KEY=$prod_key "${prod_compose[@]}" down -v >/dev/null 2>&1 || true
    exit 1
fi
first=$(docker ps -q --filter "label=com.docker.compose.project=$prod" --filter "label=com.docker.compose.service=db" | head -n1)
table=$(docker exec "$first" rq4d members)
echo "$table"
roles=$(awk 'NR > 1 && $3 != "" { print $5 }' <<<"$table" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
RQ4D_GOSSIP_KEY=$prod_key "${prod_compose[@]}" down -v >/dev/null 2>&1
scripts/gossip-key.sh "$prod" --remove
[[ $roles == *"2 read-only"* && $roles == *"1 leader"* && $roles == *"2 follower"* ]] \
    || { echo "FAIL: roles $roles, want 1 leader, 2 followers, 2 read-only"; exit 1; }
echo "ok: 3 voters and 2 read-only replicas with auth, HTTPS and node TLS"


if [[ $(id -u) == 0 ]]; then
    echo "== docker: two hosts joined by a router (scripts/docker-multihost.sh)"
    RQ4D_PROJECT=${project}mh scripts/docker-multihost.sh up
    RQ4D_PROJECT=${project}mh scripts/docker-multihost.sh check
    RQ4D_PROJECT=${project}mh scripts/docker-multihost.sh down
else
    echo "SKIPPED: two-host mimic and chaos test need root (policy routes, nsenter)"
    exit 0
fi

echo "== docker: short chaos run (compose/chaos.py)"
# shellcheck disable=SC2086 # CHAOS_ARGS holds several options
python3 compose/chaos.py --image "$RQ4D_IMAGE" --rounds "${CHAOS_ROUNDS:-10}" --max-minutes 15 \
    --artifacts "${TMPDIR:-/tmp}/rq4d-chaos-ci-$$" ${CHAOS_ARGS:-}

# After the chaos run, never during it: initialising or leaving a swarm re-plumbs the engine's
# networks, and the chaos driver's bridge would lose its containers mid-round.
echo "== docker: Swarm stack (compose/swarm_check.py: form, scale 3 -> 5 -> 3, rolling update, kill 2 of 3)"
python3 compose/swarm_check.py --image "$RQ4D_IMAGE" --max-minutes 15
