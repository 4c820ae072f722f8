#!/usr/bin/env bash
# Offline check of kubernetes/rq4d.yaml (no Kubernetes cluster runs on these machines): the
# schema of the oldest and the newest Kubernetes it is meant for (kubernetes-validate, strict:
# unknown fields are errors), then the rules that make it form and keep its cluster
# (kubernetes/check_manifest.py, with its self-test). Installs kubernetes-validate into a
# virtualenv under ${TMPDIR:-/tmp} the first time (needs PyPI).
#
#   scripts/k8s-validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RQ4D_K8S_VENV:-${TMPDIR:-/tmp}/rq4d-k8s-validate}
if [[ ! -x $venv/bin/kubernetes-validate ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
for version in 1.27.0 1.37.0; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" kubernetes/rq4d.yaml
    echo "kubernetes/rq4d.yaml: schema of Kubernetes $version: ok"
done
"$venv/bin/python" kubernetes/check_manifest.py --self-test kubernetes/rq4d.yaml
