#!/usr/bin/env python3
"""What the schema check cannot see in kubernetes/rq4d.yaml: that its parts fit each other and
fit rq4d. Each rule below is one way the manifest would deploy cleanly and still not form or not
keep its cluster.

    python3 kubernetes/check_manifest.py kubernetes/rq4d.yaml     # needs PyYAML
    python3 kubernetes/check_manifest.py --self-test kubernetes/rq4d.yaml

--self-test breaks the manifest one rule at a time and fails unless every break is caught, so
that a rule that can no longer fail shows up.
"""

from __future__ import annotations

import copy
import math
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def rq4d_env_names() -> set[str]:
    """Every RQ4D_* variable the daemon reads (its clap `env = "..."` attributes)."""
    text = (ROOT / "daemon/src/config.rs").read_text()
    return set(re.findall(r'env = "(RQ4D_[A-Z_]+)"', text))


def problems(docs: list[dict]) -> list[str]:
    found: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            found.append(what)

    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    sets = by_kind.get("StatefulSet", [])
    need(len(sets) == 1, f"exactly one StatefulSet (found {len(sets)})")
    if not sets:
        return found
    sts = sets[0]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container.get("env", [])}
    ports = {p["name"]: p for p in container.get("ports", [])}
    replicas = spec.get("replicas", 1)

    def selects(selector: dict) -> bool:
        return all(pod_labels.get(k) == v for k, v in selector.items())

    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    peers = services.get(spec.get("serviceName", ""))
    need(peers is not None, "the StatefulSet's serviceName names a Service of the file")
    if peers:
        ps = peers["spec"]
        need(ps.get("clusterIP") == "None", "the peer Service is headless (clusterIP: None): one DNS answer per pod")
        need(ps.get("publishNotReadyAddresses") is True,
             "the peer Service publishes not-ready addresses: pods are ready only after they found each other")
        need(selects(ps.get("selector", {})), "the peer Service selects the pods")
        need(any(p.get("protocol") == "UDP" and p["port"] == ports.get("gossip", {}).get("containerPort")
                 for p in ps.get("ports", [])), "the peer Service carries the gossip port over UDP")
        discover = env.get("RQ4D_DISCOVER", {}).get("value", "")
        need(discover.split(":")[0:2] == ["dns", peers["metadata"]["name"]]
             or discover.startswith(f"dns:{peers['metadata']['name']}."),
             f"RQ4D_DISCOVER ({discover!r}) is dns: the peer Service's name")
    clients = [s for n, s in services.items() if peers is None or n != peers["metadata"]["name"]]
    need(any(selects(s["spec"].get("selector", {})) and not s["spec"].get("publishNotReadyAddresses")
             and any(p.get("targetPort") in ("http", ports.get("http", {}).get("containerPort")) for p in s["spec"]["ports"])
             for s in clients), "a client Service sends applications to ready pods' rqlite HTTP port")

    need(spec.get("podManagementPolicy") == "Parallel",
         "podManagementPolicy: Parallel (OrderedReady waits for db-0 to be ready, which it cannot be alone)")
    need(spec.get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
         and "partition" not in spec.get("updateStrategy", {}).get("rollingUpdate", {}),
         "updates roll one pod at a time")

    unknown = sorted(n for n in env if n.startswith("RQ4D_") and n not in rq4d_env_names())
    need(not unknown, f"every RQ4D_* variable is one rq4d reads (unknown: {unknown})")
    need(env.get("RQ4D_NODE_ID", {}).get("value") == "$(POD_NAME)"
         and env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
         "the node id is the pod name (stable across restarts)")
    names = list(env)
    need("RQ4D_NODE_ID" not in names or names.index("POD_NAME") < names.index("RQ4D_NODE_ID"),
         "POD_NAME comes before the variables that expand it")
    expect = int(env.get("RQ4D_EXPECT", {}).get("value", "3"))
    need(replicas // 2 < expect <= replicas, f"RQ4D_EXPECT ({expect}) is a majority of the replicas ({replicas})")

    probes = {k: container.get(k, {}).get("httpGet", {}) for k in ("livenessProbe", "readinessProbe")}
    need(probes["livenessProbe"].get("path") == "/health/live",
         "liveness is /health/live (never fails for want of a quorum)")
    need(probes["readinessProbe"].get("path") == "/health/ready", "readiness is /health/ready (a voter that sees a leader)")
    api = ports.get("api", {}).get("containerPort")
    dockerfile = (ROOT / "Dockerfile").read_text()
    need(f"RQ4D_API_ADDR=0.0.0.0:{api}" in dockerfile, f"the api port ({api}) is the image's RQ4D_API_ADDR")
    need(all(p.get("port") in ("api", api) for p in probes.values()), "the probes ask the api port")

    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    data_dir = env.get("RQ4D_DATA_DIR", {}).get("value", "/data")
    need(any(m["mountPath"] == data_dir and n in claims for n, m in mounts.items()),
         f"the data directory ({data_dir}) is a per-pod volume claim")
    keyring = env.get("RQ4D_GOSSIP_KEYRING", {}).get("value", "")
    key_dir, _, key_file = keyring.rpartition("/")
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    need(any(n in secrets and m["mountPath"].rstrip("/") == key_dir
             and key_file in [i["path"] for i in secrets[n].get("items", [{"path": key_file}])]
             for n, m in mounts.items()),
         f"RQ4D_GOSSIP_KEYRING ({keyring!r}) is a file of a mounted Secret (gossip is sealed)")
    need(pod.get("terminationGracePeriodSeconds", 30) >= 10, "the grace period covers rq4d's 7 s stop")
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    security = pod.get("securityContext", {})
    need(user is not None and security.get("runAsNonRoot") is True
         and str(security.get("runAsUser")) == user.group(1)
         and str(security.get("fsGroup")) == user.group(2),
         "the pod runs as the image's user, and fsGroup gives it the volume (a claim is root's otherwise)")

    pdbs = by_kind.get("PodDisruptionBudget", [])
    need(len(pdbs) == 1, "one PodDisruptionBudget")
    for pdb in pdbs:
        ps = pdb["spec"]
        need(selects(ps.get("selector", {}).get("matchLabels", {})), "the PodDisruptionBudget selects the pods")
        m = ps.get("minAvailable")
        # A percentage follows scaling; Kubernetes rounds it up.
        if not (isinstance(m, str) and m.endswith("%")):
            need(False, f"minAvailable ({m!r}) is a percentage, so that it follows the replicas")
            continue
        short = [n for n in sorted({1, 2, 3, 4, 5, 7, 9, replicas}) if math.ceil(n * int(m[:-1]) / 100) < n // 2 + 1]
        need(not short, f"minAvailable ({m}) keeps a Raft majority ready (not at {short} pods)")
    return found


def breaks(docs: list[dict]):
    """Each yields a manifest broken in one way the rules must catch."""
    def edit(fn):
        d = copy.deepcopy(docs)
        fn(d)
        return d

    def sts(d):
        return next(x for x in d if x["kind"] == "StatefulSet")

    def peers(d):
        return next(x for x in d if x["kind"] == "Service" and x["spec"].get("clusterIP") == "None")

    def container(d):
        return sts(d)["spec"]["template"]["spec"]["containers"][0]

    def set_env(d, name, value):
        for e in container(d)["env"]:
            if e["name"] == name:
                e["value"] = value

    yield "peers not published while not ready", edit(lambda d: peers(d)["spec"].update(publishNotReadyAddresses=False))
    yield "OrderedReady", edit(lambda d: sts(d)["spec"].update(podManagementPolicy="OrderedReady"))
    yield "liveness on readiness", edit(lambda d: container(d)["livenessProbe"]["httpGet"].update(path="/health/ready"))
    yield "a misspelt variable", edit(lambda d: container(d)["env"].append({"name": "RQ4D_DISCOVERY", "value": "x"}))
    yield "discovery of another name", edit(lambda d: set_env(d, "RQ4D_DISCOVER", "dns:db"))
    yield "expect above replicas", edit(lambda d: set_env(d, "RQ4D_EXPECT", "5"))
    yield "a budget of one", edit(lambda d: next(x for x in d if x["kind"] == "PodDisruptionBudget")["spec"].update(minAvailable=1))
    yield "a budget below a majority", edit(lambda d: next(x for x in d if x["kind"] == "PodDisruptionBudget")["spec"].update(minAvailable="40%"))
    yield "a volume only root may write", edit(lambda d: sts(d)["spec"]["template"]["spec"]["securityContext"].pop("fsGroup"))
    yield "no keyring", edit(lambda d: container(d).update(env=[e for e in container(d)["env"] if e["name"] != "RQ4D_GOSSIP_KEYRING"]))


def main() -> int:
    args = sys.argv[1:]
    self_test = "--self-test" in args
    paths = [a for a in args if a != "--self-test"]
    status = 0
    for path in paths:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        found = problems(docs)
        for p in found:
            print(f"{path}: FAILED: {p}")
        if found:
            status = 1
        else:
            print(f"{path}: every rule holds")
        if self_test:
            for name, broken in breaks(docs):
                if problems(broken):
                    print(f"{path}: self-test: {name}: caught")
                else:
                    print(f"{path}: self-test FAILED: {name} was not caught")
                    status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
