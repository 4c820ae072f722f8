#!/usr/bin/env bash
# Waits (at most 180 s) until exactly N running containers match the docker ps filters, each
# ready (`rq4d health`: a voter that sees a leader) and all under one leader; then prints their
# ids, one per line. Shared by scripts/docker-up.sh, scripts/swarm-up.sh and
# scripts/swarm-twoengine.sh.
#
#   scripts/wait-formed.sh N "where to look on failure" --filter label=... [--filter ...]
#
# RQ4D_DOCKER_HOSTS="unix:///a.sock unix:///b.sock" counts the containers of several engines
# together (the nodes of one swarm); by default the engine `docker` talks to.
set -euo pipefail
n=${1:?usage: scripts/wait-formed.sh N HINT FILTER...}
hint=${2:?usage: scripts/wait-formed.sh N HINT FILTER...}
shift 2
echo "waiting for $n ready nodes under one leader ..." >&2
deadline=$(( $(date +%s) + 180 ))
read -r -a engines <<<"${RQ4D_DOCKER_HOSTS:-${DOCKER_HOST:-unix:///var/run/docker.sock}}"
while :; do
    ids=""
    ready=0
    leaders=""
    for engine in "${engines[@]}"; do
        for id in $(docker -H "$engine" ps -q "$@"); do
            ids="$ids $id"
            # The members are read before the health: a node may turn ready between the two
            # with no leader on its card yet (no match is no leader, not an error).
            if out=$(docker -H "$engine" exec "$id" /rq4d members --json 2>/dev/null) \
                && docker -H "$engine" exec "$id" /rq4d health >/dev/null 2>&1; then
                leader=$(printf '%s' "$out" | grep -o '"leader":"[^"]*"' | head -n1 || true)
                if [[ -n $leader ]]; then
                    ready=$((ready + 1))
                    leaders="$leaders $leader"
                fi
            fi
        done
    done
    # shellcheck disable=SC2086 # one line per leader
    distinct=$(printf '%s\n' $leaders | sort -u | grep -c . || true)
    if [[ $ready -eq $n && $(wc -w <<<"$ids") -eq $n && $distinct -eq 1 ]]; then
        # shellcheck disable=SC2086 # one id a line
        printf '%s\n' $ids
        exit 0
    fi
    if (( $(date +%s) > deadline )); then
        echo "not formed after 180 s ($ready of $n ready); see: $hint" >&2
        exit 1
    fi
    sleep 1
done
