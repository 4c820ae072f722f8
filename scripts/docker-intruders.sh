#!/usr/bin/env bash
# Lets two intruders loose on the network of a running compose cluster (scripts/docker-up.sh):
# containers of the same image, pointed at a member's gossip address, one without a gossip key
# and one with a key of its own. Fails unless, 20 s later, the cluster still has exactly its own
# members and voters and every member counted the intruders' datagrams as unauthenticated.
#
#   scripts/docker-intruders.sh PROJECT
set -euo pipefail
cd "$(dirname "$0")/.."
project=${1:?usage: scripts/docker-intruders.sh PROJECT}
image=${RQ4D_IMAGE:?set RQ4D_IMAGE to the image the cluster runs}
ids=$(docker ps -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=db")
[[ -n $ids ]] || { echo "no running replicas of project $project" >&2; exit 1; }
members=$(wc -w <<<"$ids")
first=$(head -n1 <<<"$ids")
network=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$first")
seed=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$first")

intruders=()
cleanup() { [[ ${#intruders[@]} -eq 0 ]] || docker rm -f -v "${intruders[@]}" >/dev/null 2>&1 || true; }
trap cleanup EXIT
run_intruder() {
    docker run -d --network "$network" -e RQ4D_SEEDS="$seed:7946" -e RQ4D_EXPECT="$members" \
        -e RQ4D_NODE_ID="$1" "${@:2}" "$image"
}
intruders+=("$(run_intruder intruder-keyless)")
intruders+=("$(run_intruder intruder-wrong-key -e RQ4D_GOSSIP_KEY="$(head -c 32 /dev/urandom | base64)")")
echo "  intruders started on $network, pointed at $seed:7946; watching for 20 s"

leader_http=""
for _ in $(seq 20); do
    sleep 1
    for id in $ids; do
        doc=$(docker exec "$id" /rq4d members --json)
        if grep -q '"node_id":"intruder' <<<"$doc"; then
            echo "FAIL: $(docker inspect -f '{{.Name}}' "$id") took an intruder as a member:" >&2
            docker exec "$id" /rq4d members >&2
            exit 1
        fi
        docker exec "$id" /rq4d health >/dev/null || { echo "FAIL: $id unhealthy" >&2; exit 1; }
    done
done
for id in $ids; do
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
    if curl -fsS "http://$ip:4001/status" | grep -q '"state":"Leader"'; then leader_http=$ip:4001; fi
done
[[ -n $leader_http ]] || { echo "FAIL: no leader" >&2; exit 1; }
voters=$(curl -fsS "http://$leader_http/nodes?ver=2&nonvoters" | grep -o '"voter":true' | wc -l)
[[ $voters -eq $members ]] || { echo "FAIL: $voters voters, expected $members" >&2; exit 1; }
dropped=0
for id in $ids; do
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
    n=$(curl -fsS "http://$ip:7947/metrics" \
        | awk '/^rq4d_datagrams_dropped_total\{reason="auth"\}/ { print int($2) }')
    dropped=$((dropped + ${n:-0}))
done
[[ $dropped -gt 0 ]] || { echo "FAIL: no member counted the intruders' datagrams" >&2; exit 1; }
for intruder in "${intruders[@]}"; do
    if docker exec "$intruder" /rq4d health >/dev/null 2>&1; then
        echo "FAIL: an intruder reports healthy" >&2
        exit 1
    fi
done
echo "  the cluster kept its $members members and $voters voters; $dropped intruder datagrams dropped as unauthenticated"
