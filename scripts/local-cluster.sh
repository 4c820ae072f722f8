#!/usr/bin/env bash
# A self-forming rqlite cluster of N rq4d processes on this machine (default 3), each on its own
# loopback address (127.0.1.1, 127.0.1.2, …) with the default ports, the way containers would be.
#
#   scripts/local-cluster.sh [N] [--double]
#
# rqlited comes from $RQLITED, else from the PATH. Without one, this script stops and says so;
# --double runs rq4d's rqlited TEST DOUBLE instead (membership and leadership only: it does not
# replicate data and is not rqlite). Ctrl-C stops every node cleanly (SIGTERM). Data and logs go
# to ./local-cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."

n=3
double=false
for arg in "$@"; do
  case "$arg" in
    --double) double=true ;;
    ''|*[!0-9]*) echo "usage: $0 [N] [--double]" >&2; exit 2 ;;
    *) n=$arg ;;
  esac
done
if [ "$n" -lt 1 ] || [ "$n" -gt 50 ]; then echo "N must be 1..50" >&2; exit 2; fi

rqlited=${RQLITED:-$(command -v rqlited || true)}
if [ -z "$rqlited" ]; then
  if ! $double; then
    cat >&2 <<'TXT'
No rqlited found: set RQLITED=/path/to/rqlited or put rqlited on the PATH.
(To watch rq4d form a cluster without rqlite, run again with --double: it uses rq4d's rqlited
 test double, which imitates rqlited's membership and HTTP API but stores no data.)
TXT
    exit 1
  fi
  echo "==> building the rqlited TEST DOUBLE (not rqlite: no replication, for demonstration only)"
  echo "    (the first build compiles for a few minutes; cargo shows its progress)"
  cargo build --release -p rq4d-tests --bin rqlited-double
  rqlited=$PWD/target/release/rqlited-double
fi
echo "==> building rq4d"
cargo build --release -p rq4d
rq4d=$PWD/target/release/rq4d

base=$PWD/local-cluster
mkdir -p "$base"
seeds=$(for i in $(seq 1 "$n"); do printf '127.0.1.%s:7946,' "$i"; done)
seeds=${seeds%,}
pids=()
stop() {
  # Once: Ctrl-C runs this for INT and would run it again on EXIT.
  trap - EXIT INT TERM
  echo; echo "==> stopping (SIGTERM)"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped; data and logs are in $base"
}
trap stop EXIT INT TERM

echo "==> starting $n nodes (rqlited: $rqlited)"
for i in $(seq 1 "$n"); do
  "$rq4d" --node-id "node$i" --expect "$n" --gossip-bind "127.0.1.$i:7946" \
    --api-addr "127.0.1.$i:7947" --seeds "$seeds" --rqlited "$rqlited" \
    --data-dir "$base/node$i" >"$base/node$i.log" 2>&1 &
  pids+=($!)
done

echo "==> waiting for the cluster to form (logs: $base/node*.log)"
start=$(date +%s)
while :; do
  table=$("$rq4d" members --api 127.0.1.1:7947 2>/dev/null || true)
  running=$(printf '%s\n' "$table" | grep -c ' running ' || true)
  leaders=$(printf '%s\n' "$table" | grep -c ' leader ' || true)
  if [ "$running" -eq "$n" ] && [ "$leaders" -eq 1 ]; then break; fi
  if [ $(( $(date +%s) - start )) -gt 90 ]; then
    echo "not formed after 90 s; members so far:"; printf '%s\n' "$table"; exit 1
  fi
  sleep 0.5
done
printf '%s\n\n' "$table"
echo "formed in $(( $(date +%s) - start )) s. Try:"
echo "  curl -s 127.0.1.1:4001/nodes?pretty       # rqlite's view"
echo "  $rq4d members --api 127.0.1.2:7947        # any node's view"
echo "  kill -9 ${pids[0]}                         # crash node1 and watch the others"
echo "Ctrl-C stops the cluster."
wait
