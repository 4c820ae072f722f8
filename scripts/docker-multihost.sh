#!/usr/bin/env bash
# Two "hosts" on one machine (compose/multi-host.yaml): a left and a right bridge network joined
# only by a router container, rq4d nodes on both sides, discovery by DNS alias on each side and a
# seed address across.
#
#   scripts/docker-multihost.sh up       # build what is missing, start, route, wait, show members
#   scripts/docker-multihost.sh check    # broadcast does not cross; every node sees one cluster
#   scripts/docker-multihost.sh down     # remove containers, volumes, networks and host routes
#
# Needs root: Docker drops traffic between two bridge networks, and a scratch image cannot set
# its own routes, so two policy routes on the host hand left<->right traffic to the router
# (ip rule from LEFT to RIGHT -> table 7701: RIGHT via router's left address, and back). They are
# removed by `down`. Environment: RQ4D_IMAGE, RQ4D_ROUTER_IMAGE, RQ4D_LEFT_NET (10.77.1),
# RQ4D_RIGHT_NET (10.77.2), RQ4D_PROJECT (default rq4dmh).
set -euo pipefail
cd "$(dirname "$0")/.."
project=${RQ4D_PROJECT:-rq4dmh}
left=${RQ4D_LEFT_NET:-10.77.1}
right=${RQ4D_RIGHT_NET:-10.77.2}
export RQ4D_LEFT_NET=$left RQ4D_RIGHT_NET=$right
compose=(scripts/docker-compose.sh -p "$project" -f compose/multi-host.yaml)
# Both "hosts" seal gossip with the project's key (scripts/gossip-key.sh).
RQ4D_GOSSIP_KEY=${RQ4D_GOSSIP_KEY:-$(scripts/gossip-key.sh "$project")}
export RQ4D_GOSSIP_KEY

routes_add() {
    ip rule add from "$left.0/24" to "$right.0/24" table 7701 priority 7701 2>/dev/null || true
    ip rule add from "$right.0/24" to "$left.0/24" table 7702 priority 7702 2>/dev/null || true
    ip route replace "$right.0/24" via "$left.254" dev rq4d-left table 7701
    ip route replace "$left.0/24" via "$right.254" dev rq4d-right table 7702
    # strict reverse-path filtering would drop the hairpinned packets; loose is enough
    for dev in rq4d-left rq4d-right; do
        if [[ $(sysctl -n "net.ipv4.conf.$dev.rp_filter") == 1 || $(sysctl -n net.ipv4.conf.all.rp_filter) == 1 ]]; then
            sysctl -q -w "net.ipv4.conf.$dev.rp_filter=2"
        fi
    done
}

routes_del() {
    ip rule del from "$left.0/24" to "$right.0/24" table 7701 priority 7701 2>/dev/null || true
    ip rule del from "$right.0/24" to "$left.0/24" table 7702 priority 7702 2>/dev/null || true
    ip route flush table 7701 2>/dev/null || true
    ip route flush table 7702 2>/dev/null || true
}

router_image() {
    local image=${RQ4D_ROUTER_IMAGE:-rq4d-router:busybox}
    export RQ4D_ROUTER_IMAGE=$image
    docker image inspect "$image" >/dev/null 2>&1 && return
    [[ $image == rq4d-router:busybox ]] || { docker pull "$image"; return; }
    # No registry: an empty image with Debian's static busybox (sleep is all the router runs).
    local busybox=/bin/busybox
    if ! file -L "$busybox" 2>/dev/null | grep -q static; then
        apt-get install -y busybox-static >/dev/null
    fi
    local ctx
    ctx=$(mktemp -d)
    mkdir -p "$ctx/bin"
    cp "$busybox" "$ctx/bin/busybox"
    for applet in sh sleep ip ping; do ln -s busybox "$ctx/bin/$applet"; done
    printf 'FROM scratch\nCOPY bin /bin\nENTRYPOINT ["/bin/sleep", "86400000"]\n' >"$ctx/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
    rm -rf "$ctx"
}

nodes() {
    docker ps -q --filter "label=com.docker.compose.project=$project" | while read -r id; do
        svc=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
        [[ $svc != router ]] && echo "$id"
    done
}

wait_formed() {
    local want=$1 deadline=$(( $(date +%s) + 180 ))
    while :; do
        local healthy=0 total=0 leaders=""
        for id in $(nodes); do
            total=$((total + 1))
            if docker exec "$id" /rq4d health >/dev/null 2>&1; then
                healthy=$((healthy + 1))
                leaders="$leaders $(docker exec "$id" /rq4d members --json | grep -o '"leader":"[^"]*"' | head -n1)"
            fi
        done
        # shellcheck disable=SC2086 # one line per leader
        if [[ $healthy -eq $want && $total -eq $want && $(printf '%s\n' $leaders | sort -u | grep -c .) -eq 1 ]]; then
            return 0
        fi
        if (( $(date +%s) > deadline )); then
            echo "not formed after 180 s: $healthy of $want healthy" >&2
            return 1
        fi
        sleep 1
    done
}

case ${1:-up} in
up)
    [[ $(id -u) == 0 ]] || { echo "needs root (host policy routes)" >&2; exit 1; }
    docker info >/dev/null 2>&1 || { echo "no Docker Engine answers" >&2; exit 1; }
    if [[ -z ${RQ4D_IMAGE:-} ]]; then RQ4D_IMAGE=$(scripts/docker-build.sh); fi
    export RQ4D_IMAGE
    router_image
    start=$(date +%s.%N)
    "${compose[@]}" up --no-start
    # the bridges exist once the networks are created: route before any node starts
    "${compose[@]}" up -d router
    routes_add
    "${compose[@]}" up -d
    want=$(( 2 + ${RQ4D_LEFT_REPLICAS:-2} + ${RQ4D_RIGHT_REPLICAS:-1} ))
    wait_formed "$want"
    took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    docker exec "$(nodes | head -n1)" /rq4d members
    echo "$want nodes on two networks formed one cluster in ${took}s"
    ;;
check)
    # 1. the sides cannot reach each other except through the router: no broadcast across
    lseed=$(docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=left-seed")
    router=$(docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=router")
    echo "left-seed routes:"; nsenter -t "$(docker inspect -f '{{.State.Pid}}' "$lseed")" -n ip route | sed 's/^/  /'
    echo "router forwards: $(nsenter -t "$(docker inspect -f '{{.State.Pid}}' "$router")" -n cat /proc/sys/net/ipv4/ip_forward)"
    bb=/bin/busybox
    lpid=$(docker inspect -f '{{.State.Pid}}' "$lseed")
    echo "path left-seed -> right-seed:"
    nsenter -t "$lpid" -n "$bb" traceroute -n -m 4 -w 1 "$right.10" 2>&1 | sed 's/^/  /'
    rpid=$(docker inspect -f '{{.State.Pid}}' "$router")
    nsenter -t "$rpid" -n sysctl -q -w net.ipv4.ip_forward=0
    if nsenter -t "$lpid" -n "$bb" ping -c1 -W1 "$right.10" >/dev/null 2>&1; then
        echo "  router not forwarding: right-seed STILL REACHABLE (traffic bypasses the router)"
    else
        echo "  router not forwarding: right-seed unreachable (every packet across goes through it)"
    fi
    nsenter -t "$rpid" -n sysctl -q -w net.ipv4.ip_forward=1
    echo "  broadcast: the sides are separate bridges (no shared L2); rq4d uses DNS + seeds here"
    # 2. gossip: every node sees every other as alive and the same leader
    for id in $(nodes); do
        name=$(docker inspect -f '{{.Name}}' "$id" | tr -d /)
        printf '%-28s %s\n' "$name" "$(docker exec "$id" /rq4d health | tr -d '\n')"
    done
    ;;
down)
    ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
    volumes=""
    # shellcheck disable=SC2086 # one argument per id
    [[ -z $ids ]] || volumes=$(docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' $ids)
    RQ4D_IMAGE=${RQ4D_IMAGE:-rq4d:test-double} RQ4D_ROUTER_IMAGE=${RQ4D_ROUTER_IMAGE:-rq4d-router:busybox} \
        "${compose[@]}" down -v --remove-orphans -t 3
    for v in $volumes; do docker volume rm "$v" >/dev/null 2>&1 || true; done
    routes_del
    scripts/gossip-key.sh "$project" --remove
    ;;
*)
    echo "usage: $0 up|check|down" >&2
    exit 2
    ;;
esac
