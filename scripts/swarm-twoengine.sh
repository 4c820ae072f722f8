#!/usr/bin/env bash
# A two-host swarm on one machine: a second Docker Engine in its own network namespace (its own
# data root, socket and containerd), joined over a veth link to this engine's swarm, and the
# stack compose/swarm.yaml spread over both — so the overlay's VXLAN really crosses a link that
# can be cut. An experiment for CI-less use, not part of the test suite (root only).
#
#   scripts/swarm-twoengine.sh up          # engine 2, the swarm over the link, 4 replicas (2 + 2)
#   scripts/swarm-twoengine.sh check       # one cluster with members on both engines, VXLAN on the link
#   scripts/swarm-twoengine.sh cut 30      # the link down for 30 s, then up; waits for one cluster again
#                                          # and shows where each slot runs, before and after (with
#                                          # RQ4D_MAX_PER_NODE=1 it fails if a slot moved)
#   scripts/swarm-twoengine.sh down        # the stack, the swarm, engine 2 and the link
#
# It refuses an engine that is already in a swarm (it initialises one advertised on the link and
# leaves it at `down`). The image (RQ4D_IMAGE, default rq4d:test-double) is moved to engine 2
# with `docker save | docker load`: there is no registry.
set -euo pipefail
cd "$(dirname "$0")/.."

ns=rq4d-e2
host_if=rq4de2-h
ns_if=rq4de2-n
host_ip=10.98.0.1
ns_ip=10.98.0.2
run=/run/rq4d-e2
e2=unix://$run/docker.sock
stack=${RQ4D_STACK:-rq4d2e}
image=${RQ4D_IMAGE:-rq4d:test-double}
replicas=${RQ4D_REPLICAS:-4}
export RQ4D_STACK=$stack

[[ $(id -u) == 0 ]] || { echo "needs root (network namespace, veth, a second dockerd)" >&2; exit 1; }

d2() { docker -H "$e2" "$@"; }

engines() { echo "unix:///var/run/docker.sock $e2"; }

# The task containers on both engines, as "engine id" lines.
tasks() {
    for engine in $(engines); do
        for id in $(docker -H "$engine" ps -q --filter "label=com.docker.swarm.service.name=${stack}_db"); do
            echo "$engine $id"
        done
    done
}

wait_formed() {
    RQ4D_DOCKER_HOSTS=$(engines) scripts/wait-formed.sh "$replicas" \
        "docker service ps ${stack}_db; docker -H $e2 ps" \
        --filter "label=com.docker.swarm.service.name=${stack}_db" >/dev/null
}

vxlan_packets() {
    iptables -L INPUT -v -x -n 2>/dev/null | awk '/rq4d-e2-vxlan/ { print $1 }'
}

up() {
    [[ $(docker info --format '{{.Swarm.LocalNodeState}}') == inactive ]] \
        || { echo "this engine is already in a swarm; leave it first (or use scripts/swarm-up.sh)" >&2; exit 1; }
    if ! ip netns list | grep -qw "$ns"; then
        ip netns add "$ns"
        ip link add "$host_if" type veth peer name "$ns_if"
        ip link set "$ns_if" netns "$ns"
        ip addr add "$host_ip/24" dev "$host_if"
        ip link set "$host_if" up
        ip -n "$ns" addr add "$ns_ip/24" dev "$ns_if"
        ip -n "$ns" link set "$ns_if" up
        ip -n "$ns" link set lo up
        ip -n "$ns" route add default via "$host_ip"
    fi
    # Counts the VXLAN datagrams that arrive over the link (a rule without a target only counts).
    iptables -C INPUT -i "$host_if" -p udp --dport 4789 -m comment --comment rq4d-e2-vxlan 2>/dev/null \
        || iptables -I INPUT -i "$host_if" -p udp --dport 4789 -m comment --comment rq4d-e2-vxlan
    if ! d2 info >/dev/null 2>&1; then
        mkdir -p "$run" /var/lib/rq4d-e2
        # A pid file left by an engine that is gone keeps a new one from starting.
        if [[ -f $run/dockerd.pid ]] && ! kill -0 "$(cat "$run/dockerd.pid")" 2>/dev/null; then
            rm -f "$run/dockerd.pid"
        fi
        echo '{}' >"$run/daemon.json"
        # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup mounts dockerd needs.
        nsenter --net="/run/netns/$ns" dockerd --config-file "$run/daemon.json" \
            --data-root /var/lib/rq4d-e2 --exec-root "$run" --pidfile "$run/dockerd.pid" \
            -H "$e2" --storage-driver "$(docker info --format '{{.Driver}}')" --mtu 1400 \
            >"$run/dockerd.log" 2>&1 &
        for _ in $(seq 60); do d2 info >/dev/null 2>&1 && break; sleep 0.5; done
        d2 info >/dev/null 2>&1 || { echo "engine 2 did not start: $run/dockerd.log" >&2; exit 1; }
    fi
    echo "engine 2 up ($e2, $ns_ip); moving $image to it (docker save | docker load)" >&2
    docker save "$image" | d2 load >/dev/null
    docker swarm init --advertise-addr "$host_ip" --listen-addr "$host_ip:2377" >/dev/null
    d2 swarm join --token "$(docker swarm join-token -q worker)" --advertise-addr "$ns_ip" "$host_ip:2377" >/dev/null
    scripts/gossip-key.sh "$stack" >/dev/null
    start=$(date +%s.%N)
    RQ4D_IMAGE=$image RQ4D_REPLICAS=$replicas RQ4D_ENDPOINT_MODE=${RQ4D_ENDPOINT_MODE:-dnsrr} \
        RQ4D_REAP_AFTER=${RQ4D_REAP_AFTER:-15s} \
        RQ4D_GOSSIP_KEYRING_FILE=$PWD/compose/.secrets/$stack.key \
        docker stack deploy -c compose/swarm.yaml "$stack" >&2
    wait_formed
    echo "$replicas replicas on two engines formed one cluster in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" >&2
}

check() {
    wait_formed
    local here there
    here=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_db" | wc -l)
    there=$(d2 ps -q --filter "label=com.docker.swarm.service.name=${stack}_db" | wc -l)
    echo "tasks: $here on engine 1, $there on engine 2 (engine 2 is reached only over $host_if)"
    (( here > 0 && there > 0 )) || { echo "FAILED: the stack is not spread over both engines" >&2; exit 1; }
    local before after
    before=$(vxlan_packets)
    sleep 3
    after=$(vxlan_packets)
    echo "VXLAN datagrams in over $host_if in 3 s: $((after - before))"
    (( after > before )) || { echo "FAILED: no VXLAN traffic crossed the link" >&2; exit 1; }
    read -r engine id < <(tasks | head -n1)
    docker -H "$engine" exec "$id" /rq4d members
}

# "slot engine volume" of every running task, one a line, sorted by slot.
placement() {
    for engine in $(engines); do
        for id in $(docker -H "$engine" ps -q --filter "label=com.docker.swarm.service.name=${stack}_db"); do
            docker -H "$engine" inspect -f \
                '{{index .Config.Labels "com.docker.swarm.task.name"}} {{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}' "$id" |
                awk -v e="$engine" '{ split($1, t, "."); print t[2], e, $2 }'
        done
    done | sort -n
}

# Waits (at most 120 s) until Swarm has placed every task: none pending, preparing or starting.
settled() {
    for _ in $(seq 120); do
        if ! docker service ps "${stack}_db" --filter desired-state=running --format '{{.CurrentState}}' |
            grep -qv '^Running'; then
            return 0
        fi
        sleep 1
    done
    echo "Swarm had not placed every task after 120 s" >&2
    return 1
}

cut() {
    local secs=${1:-30}
    local before after
    before=$(placement)
    echo "cutting $host_if for $secs s" >&2
    ip link set "$host_if" down
    sleep "$secs"
    ip link set "$host_if" up
    local start
    start=$(date +%s.%N)
    settled
    wait_formed
    echo "one cluster of $replicas again $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the heal" >&2
    after=$(placement)
    printf 'before the cut (slot engine volume):\n%s\nafter:\n%s\n' "$before" "$after"
    # With one task per host a slot cannot move: each must be back on its host, on its volume.
    if [[ ${RQ4D_MAX_PER_NODE:-0} == 1 && $before != "$after" ]]; then
        echo "FAILED: a slot moved to another engine (and another volume) although RQ4D_MAX_PER_NODE=1" >&2
        return 1
    fi
}

down() {
    docker stack rm "$stack" >/dev/null 2>&1 || true
    # Exited containers still hold their volumes: wait until none is left on either engine.
    for _ in $(seq 60); do
        left=""
        for engine in $(engines); do
            left+=$(docker -H "$engine" ps -aq --filter "label=com.docker.stack.namespace=$stack" 2>/dev/null)
        done
        [[ -z $left ]] && break
        sleep 1
    done
    d2 swarm leave --force >/dev/null 2>&1 || true
    docker swarm leave --force >/dev/null 2>&1 || true
    for engine in $(engines); do
        for v in $(docker -H "$engine" volume ls -q --filter "name=^${stack}-data-[0-9]+$" 2>/dev/null); do
            docker -H "$engine" volume rm "$v" >/dev/null || true
        done
    done
    if [[ -f $run/dockerd.pid ]]; then
        kill "$(cat "$run/dockerd.pid")" 2>/dev/null || true
        for _ in $(seq 30); do d2 info >/dev/null 2>&1 || break; sleep 0.5; done
        rm -f "$run/dockerd.pid"
    fi
    # Engine 2's images and volumes: nothing else uses its data root (which dockerd mounts
    # onto itself, and may leave mounted).
    umount -l /var/lib/rq4d-e2 2>/dev/null || true
    rm -rf /var/lib/rq4d-e2 "$run" 2>/dev/null || true
    iptables -D INPUT -i "$host_if" -p udp --dport 4789 -m comment --comment rq4d-e2-vxlan 2>/dev/null || true
    ip link del "$host_if" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    scripts/gossip-key.sh "$stack" --remove
}

case ${1:-} in
    up) up ;;
    check) check ;;
    cut) cut "${2:-30}" ;;
    down) down ;;
    *) echo "usage: scripts/swarm-twoengine.sh up|check|cut SECS|down" >&2; exit 2 ;;
esac
