#!/usr/bin/env bash
# Makes what compose/secure.yaml mounts: rqlite's auth file and a certificate authority with one
# certificate for the service name "db", in compose/.secrets/rqlite/ (not in git). Run it once;
# it keeps what exists.
#
#   scripts/rqlite-secrets.sh          # then: docker compose -f compose/compose.yaml -f compose/secure.yaml up -d
#
#   auth.json      users: rq4d (status, ready, remove, join, join-read-only: what rq4d does) and
#                  app (execute, query), each with a random password; `cat` it to see them
#   ca.pem         the CA that signed node.pem: what clients and rq4d (RQ4D_RQLITE_CA_CERT) trust
#   node.pem, node-key.pem   one certificate for the name "db", for the HTTPS API and for the
#                  Raft port (rqlited's -node-verify-server-name db, rq4d's RQ4D_RQLITE_SERVER_NAME):
#                  containers' addresses change, the name does not
#
# The files are readable by every user of this host, because the containers run as uid 10001;
# on a shared host use Docker or Kubernetes secrets instead. Needs openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=compose/.secrets/rqlite
mkdir -p "$dir"
command -v openssl >/dev/null || { echo "openssl is needed to make the certificates" >&2; exit 1; }
password() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
if [[ ! -s $dir/auth.json ]]; then
    cat >"$dir/auth.json" <<JSON
[
  {"username": "rq4d", "password": "$(password)", "perms": ["status", "ready", "remove", "join", "join-read-only"]},
  {"username": "app", "password": "$(password)", "perms": ["execute", "query"]}
]
JSON
fi
if [[ ! -s $dir/ca.pem ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=rq4d compose CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
fi
if [[ ! -s $dir/node.pem ]]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=db" \
        -keyout "$dir/node-key.pem" -out "$dir/node.csr" 2>/dev/null
    openssl x509 -req -in "$dir/node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -days 825 -out "$dir/node.pem" \
        -extfile <(printf 'subjectAltName=DNS:db\nextendedKeyUsage=serverAuth,clientAuth\n') 2>/dev/null
    rm -f "$dir/node.csr"
fi
chmod 644 "$dir"/*.pem "$dir/auth.json"
chmod 600 "$dir/ca-key.pem"
echo "$dir"
