#!/usr/bin/env python3
"""Chaos test for rq4d in Docker: kills, stops, pauses, partitions, adds and removes the containers
of a compose cluster at random, and checks after every round that there is still exactly one
healthy rqlite cluster made of exactly the running containers.

    python3 compose/chaos.py --rounds 10                       # the short run (CI)
    python3 compose/chaos.py --rounds 120 --max-minutes 55 --summary compose/chaos-summary.md

It needs a Docker Engine, the image (scripts/docker-build.sh makes rq4d:test-double), root for
`nsenter` + `iptables` (partitions; skipped, and said so, when they do not work) and Python 3.9+
(standard library only). It is bounded in rounds (--rounds) and wall time (--max-minutes: no round
starts after it; every wait has a timeout), and removes everything it created — containers,
volumes, networks, iptables rules (they live in the containers' network namespaces) — on exit,
on Ctrl-C and on SIGTERM.

Phases:
  1. formation: 5 containers started all at once, in reverse order, and one at a time with random
     gaps, each in a fresh project: the same single cluster of 5 each time;
  2. chaos: on a 5-node cluster, each round applies one fault picked at random (kill-follower,
     kill-leader, stop, pause, scale-up, remove, restart, partition), heals it if it heals, waits
     for the cluster and checks the invariants (below); a client writes rows throughout; the
     summary splits each recovery into rqlited's part and rq4d's, from snapshots every 0.5 s
     and, for a killed leader, from a fine watch every 0.1 s (FineWatch);
  3. final: waits reap-after so that every dead node must be gone, checks once more, and — with a
     real rqlited only — reads every row back with a strong read.

Invariants, checked after every round (a violation is a round whose cluster does not satisfy them
within --round-timeout, or a data check that fails):
  * exactly one cluster: every running node reports the same leader, the same voter set and the
    same rq4d cluster id, and /health 200 (which is false on a Conflict);
  * every running container is a voter; no container dead for longer than reap-after (+ grace)
    is still one;
  * no container stopped by itself (rq4d or rqlited crashed);
  * no node's data deleted: a volume that once held committed rqlite state still holds it, with
    the same node id and cluster id;
  * no acknowledged write lost (strong read at the end) — meaningful only with a real rqlited:
    with the test double (no replication) it is reported as not run.

Exit status: 0 no violation, 1 violations, 2 setup error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPOSE_FILE = HERE / "compose.yaml"
SERVICE = "db"
GOSSIP_PORT, API_PORT, HTTP_PORT = 7946, 7947, 4001
CHAIN = "RQ4D-CHAOS"
KINDS = [
    "kill-follower",
    "kill-leader",
    "stop",
    "pause",
    "scale-up",
    "remove",
    "restart",
    "partition",
]
FORMATIONS = ["all-at-once", "reverse-order", "one-at-a-time", "voter-cap"]
# The voter-cap formation: this many containers under --voters VOTER_CAP (compose/voters.yaml).
CAP_NODES, VOTER_CAP = 7, 5
# Rounds watched finely (FineWatch) besides the snapshots: those whose goal is finer than a
# snapshot's 0.5 s and more.
FINE_KINDS = ("kill-leader",)
FINE_EVERY = 0.1
WEIGHTS = {
    "kill-follower": 2.0,
    "kill-leader": 1.5,
    "stop": 1.5,
    "pause": 1.2,
    "scale-up": 1.2,
    "remove": 1.0,
    "restart": 2.0,
    "partition": 1.6,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 15s, 2m)")
    value = float(m.group(1))
    return value * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


# ------------------------------------------------------------------------------------------------
# Docker and compose


class CommandFailed(RuntimeError):
    pass


def run(args: list[str], *, check: bool = True, timeout: float = 120, env=None) -> str:
    try:
        proc = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise CommandFailed(f"{' '.join(args)}: timed out after {timeout}s") from e
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    return run(["docker", *args], check=check, timeout=timeout)


def compose_command() -> list[str]:
    """`docker compose` (v2) when it exists, else `docker-compose` (1.29)."""
    probe = subprocess.run(
        ["docker", "compose", "version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise CommandFailed("neither `docker compose` nor `docker-compose` is installed")


@dataclass
class Project:
    name: str
    env: dict
    compose: list[str]
    # Compose files laid over compose.yaml (e.g. voters.yaml).
    overlays: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 180) -> str:
        files = [arg for f in [str(COMPOSE_FILE), *self.overlays] for arg in ("-f", f)]
        cmd = [*self.compose, "-p", self.name, *files, *args]
        return run(cmd, timeout=timeout, env={**os.environ, **self.env})

    def container_ids(self) -> list[str]:
        out = docker(
            "ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.name}"
        )
        return [line for line in out.split() if line]


def inspect(ids: list[str]) -> list[dict]:
    if not ids:
        return []
    out = docker("inspect", *ids, check=False)
    try:
        return json.loads(out) if out.strip() else []
    except json.JSONDecodeError:
        return []


# ------------------------------------------------------------------------------------------------
# HTTP


def http_json(url: str, timeout: float = 2.0, data: bytes | None = None):
    """(status, parsed JSON or text); status 0 when unreachable."""
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            code = resp.status
    except urllib.error.HTTPError as e:
        body = e.read() if e.fp else b""
        code = e.code
    except (OSError, urllib.error.URLError, ValueError):
        return 0, None
    try:
        return code, json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return code, body.decode("utf-8", "replace")


# ------------------------------------------------------------------------------------------------
# The model of the cluster


@dataclass
class Container:
    cid: str
    name: str
    number: int
    state: str = "running"  # running | stopped | removed
    node_id: str | None = None
    ip: str | None = None
    pid: int = 0
    data_dir: str | None = None
    down_since: float | None = None  # monotonic time it stopped being live (stopped/removed)
    reaped_seen: bool = False
    committed: dict | None = None  # rq4d.json once it held committed state


@dataclass
class NodeView:
    cid: str
    node_id: str | None = None
    healthy: bool = False
    health_text: str = ""
    decision: str = ""
    leader: str | None = None
    voters: frozenset = frozenset()
    cluster_id: int | None = None
    raft_state: str = ""
    reachable: bool = False
    # The leader this node's own card names (what its rq4d learnt from its rqlited's /status).
    card_leader: str | None = None


def parse_voters(store: dict) -> frozenset:
    nodes = store.get("nodes")
    if isinstance(nodes, list) and nodes:
        return frozenset(
            n.get("id") for n in nodes if str(n.get("suffrage", "Voter")).lower() == "voter"
        )
    conf = (store.get("raft") or {}).get("latest_configuration", "")
    return frozenset(re.findall(r"Suffrage:Voter ID:(\S+) Address:", conf or ""))


def view_node(cid: str, ip: str) -> NodeView:
    view = NodeView(cid)
    code, health = http_json(f"http://{ip}:{API_PORT}/health")
    if code:
        view.reachable = True
        view.healthy = code == 200
        if isinstance(health, dict):
            view.decision = health.get("decision", "")
        view.health_text = str(health)[:200]
    code, members = http_json(f"http://{ip}:{API_PORT}/members")
    if code == 200 and isinstance(members, dict):
        view.node_id = members.get("node_id")
        me = next((m for m in members.get("members", []) if m.get("state") == "self"), None)
        if me and me.get("card"):
            view.cluster_id = me["card"].get("cluster_id")
            running = (me["card"].get("db") or {}).get("Running") if isinstance(me["card"].get("db"), dict) else None
            view.card_leader = (running or {}).get("leader")
    code, status = http_json(f"http://{ip}:{HTTP_PORT}/status")
    if code == 200 and isinstance(status, dict):
        store = status.get("store") or {}
        view.node_id = view.node_id or store.get("node_id")
        leader = store.get("leader") or {}
        view.leader = leader.get("node_id") or None
        view.voters = parse_voters(store)
        view.raft_state = (store.get("raft") or {}).get("state", "")
    return view


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# ------------------------------------------------------------------------------------------------
# The writer: acknowledged writes, throughout


class Writer(threading.Thread):
    def __init__(self, targets_fn):
        super().__init__(daemon=True)
        self.targets_fn = targets_fn
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.next_id = 1
        self.acked: set[int] = set()
        self.attempts = 0
        self.failures = 0
        self.round = 0

    def run(self) -> None:
        rng = random.Random(7)
        while not self.stop_event.is_set():
            try:
                targets = self.targets_fn()
            except RuntimeError:  # the model changed under us
                targets = []
            if not targets:
                time.sleep(0.2)
                continue
            ip = rng.choice(targets)
            with self.lock:
                row = self.next_id
                self.next_id += 1
                self.attempts += 1
                rnd = self.round
            body = json.dumps(
                [
                    "CREATE TABLE IF NOT EXISTS chaos (id INTEGER NOT NULL PRIMARY KEY, round INTEGER)",
                    ["INSERT INTO chaos(id, round) VALUES(?, ?)", row, rnd],
                ]
            ).encode()
            code, doc = http_json(f"http://{ip}:{HTTP_PORT}/db/execute", timeout=3, data=body)
            ok = (
                code == 200
                and isinstance(doc, dict)
                and not doc.get("error")
                and len(doc.get("results", [])) == 2
                and not any("error" in r for r in doc["results"])
            )
            with self.lock:
                if ok:
                    self.acked.add(row)
                else:
                    self.failures += 1
            self.stop_event.wait(0.2)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


# ------------------------------------------------------------------------------------------------
# The fine watch: two endpoints per node, every 0.1 s, for the rounds with a sub-second goal


def fine_view(ip: str) -> tuple[str | None, bool]:
    """(the leader this node's rqlited names, whether rq4d's /health is 200), each asked with a
    short timeout so one slow node does not stretch a tick."""
    code, status = http_json(f"http://{ip}:{HTTP_PORT}/status", timeout=0.5)
    leader = None
    if code == 200 and isinstance(status, dict):
        leader = ((status.get("store") or {}).get("leader") or {}).get("node_id") or None
    code, _ = http_json(f"http://{ip}:{API_PORT}/health", timeout=0.5)
    return leader, code == 200


class FineWatch(threading.Thread):
    """Asks every running node's rqlited `/status` and rq4d `/health` at once, every FINE_EVERY
    seconds, and notes (seconds from the fault's start, at the end of the tick that saw it):
    `leader`, every rqlited names one running leader; `health`, the first tick from then on at
    which every /health is 200. A tick takes a few ms, so each mark is late by at most
    FINE_EVERY plus one tick: five times finer than a snapshot, which also runs docker inspect
    and asks /members. It stops by itself once both are seen."""

    def __init__(self, nodes: list[tuple[str, str]], since: float):
        super().__init__(daemon=True)
        self.nodes = nodes  # (node id, ip) of the running containers
        self.since = since
        self.stop_event = threading.Event()
        self.marks: dict = {}

    def run(self) -> None:
        ids = {node_id for node_id, _ in self.nodes}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
            while not self.stop_event.is_set() and "health" not in self.marks:
                tick = time.monotonic()
                seen = list(pool.map(lambda n: fine_view(n[1]), self.nodes))
                at = time.monotonic() - self.since
                leaders = {leader for leader, _ in seen}
                leader = next(iter(leaders)) if len(leaders) == 1 else None
                if "leader" not in self.marks and leader in ids:
                    self.marks["leader"] = at
                if "leader" in self.marks and all(healthy for _, healthy in seen):
                    self.marks["health"] = at
                self.stop_event.wait(max(0.0, FINE_EVERY - (time.monotonic() - tick)))

    def finish(self, grace: float) -> dict:
        """The marks, after up to `grace` seconds more in which to see them: the snapshots may
        see the cluster whole a moment before a tick does."""
        self.join(timeout=grace)
        self.stop_event.set()
        self.join(timeout=5)
        return dict(self.marks)


# ------------------------------------------------------------------------------------------------
# The chaos driver


@dataclass
class RoundResult:
    number: int
    kind: str
    detail: str
    running: int
    voters: int
    recovery: float | None
    elapsed: float
    problems: list[str] = field(default_factory=list)
    leader: str = ""
    # Seconds from the fault's start to: every rqlited naming one running leader; every rq4d's
    # card naming it; every /health 200; the whole check passing (see Chaos.milestones).
    marks: dict = field(default_factory=dict)


class Chaos:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.compose = compose_command()
        self.projects: list[Project] = []
        self.containers: dict[str, Container] = {}
        self.project: Project | None = None
        self.partitioned: list[str] = []  # container ids whose netns has rules
        self.paused: list[str] = []
        self.writer: Writer | None = None
        self.iptables_ok = False
        self.iptables_note = ""
        self.rounds: list[RoundResult] = []
        self.formation: list[tuple[str, float | None, list[str]]] = []
        # The voter-cap formation: what it found, for the summary.
        self.cap_result: str | None = None
        # --voters of the project under test (None: every node votes).
        self.voter_cap: int | None = None
        self.violations: list[str] = []
        self.reap_delays: list[float] = []
        self.last_voters: frozenset = frozenset()
        self.last_leader: str | None = None
        self.artifacts = Path(args.artifacts or tempfile.mkdtemp(prefix="rq4d-chaos-"))
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.real_rqlited = False
        self.image_label = "?"
        self.image_revision = "?"
        self.durability = "not run"
        self.durability_ran = False
        self.durability_ok = False
        self.started = time.monotonic()

    # -- setup and teardown ------------------------------------------------------------------

    def preflight(self) -> None:
        docker("info", "--format", "{{.ServerVersion}}", timeout=20)
        out = docker("image", "inspect", self.args.image, check=False)
        if not out.strip() or out.strip() == "[]":
            raise CommandFailed(
                f"image {self.args.image} not found: build it with scripts/docker-build.sh"
            )
        labels = json.loads(out)[0].get("Config", {}).get("Labels") or {}
        self.image_label = labels.get("rq4d.rqlited", "?")
        self.image_revision = labels.get("org.opencontainers.image.revision", "?")
        self.real_rqlited = self.image_label not in ("test-double", "?")

    def new_project(self, suffix: str, replicas: int) -> Project:
        name = f"rq4dchaos{os.getpid()}{suffix}"
        env = {
            "RQ4D_IMAGE": self.args.image,
            "RQ4D_REPLICAS": str(replicas),
            "RQ4D_EXPECT": str(self.args.expect),
            "RQ4D_REAP_AFTER": f"{self.args.reap_after:g}s",
            "RQ4D_RESTART": "no",
            "RQ4D_CLUSTER_NAME": name,
            # Sealed gossip, as the quick start runs it: one key per project.
            "RQ4D_GOSSIP_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
        project = Project(name, env, self.compose)
        self.projects.append(project)
        return project

    def destroy(self, project: Project) -> None:
        ids = project.container_ids()
        volumes = {
            m.get("Name")
            for doc in inspect(ids)
            for m in doc.get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Name")
        }
        for cid in ids:
            docker("unpause", cid, check=False, timeout=20)
        try:
            project.run("down", "-v", "--remove-orphans", "-t", "3", timeout=180)
        except CommandFailed as e:
            log(f"compose down: {e}")
        leftover = project.container_ids()
        if leftover:
            docker("rm", "-f", "-v", *leftover, check=False, timeout=120)
        if volumes:
            docker("volume", "rm", *sorted(volumes), check=False, timeout=60)
        docker("network", "rm", f"{project.name}_rqlite", check=False, timeout=30)
        docker("network", "rm", f"{project.name}-rqlite", check=False, timeout=30)
        if project in self.projects:
            self.projects.remove(project)

    def cleanup(self) -> None:
        # Stopped, not dropped: the summary, written after the cleanup, reports its counts.
        if self.writer:
            self.writer.stop()
        if self.partitioned:
            self.heal_partition()
        for project in list(self.projects):
            self.destroy(project)

    # -- reading the cluster -----------------------------------------------------------------

    def refresh(self) -> dict[str, dict]:
        """Re-reads docker's view of the project's containers (ip, pid, state)."""
        assert self.project
        docs = {d["Id"]: d for d in inspect(self.project.container_ids())}
        for cid, doc in docs.items():
            c = self.containers.get(cid)
            if c is None:
                continue
            nets = doc.get("NetworkSettings", {}).get("Networks") or {}
            ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)
            c.ip = ip or c.ip
            c.pid = doc.get("State", {}).get("Pid", 0)
            for m in doc.get("Mounts") or []:
                if m.get("Destination") == "/data":
                    c.data_dir = m.get("Source")
        return docs

    def live(self) -> list[Container]:
        return [c for c in self.containers.values() if c.state == "running"]

    def targets(self) -> list[str]:
        return [c.ip for c in self.live() if c.ip and c.cid not in self.paused]

    def snapshot(self) -> tuple[dict[str, NodeView], dict[str, dict]]:
        docs = self.refresh()
        running = [c for c in self.live() if c.ip]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            views = dict(zip([c.cid for c in running], pool.map(lambda c: view_node(c.cid, c.ip), running)))
        for cid, view in views.items():
            if view.node_id:
                self.containers[cid].node_id = view.node_id
        return views, docs

    def problems(self, views: dict[str, NodeView], docs: dict[str, dict], strict_reap: bool = False) -> list[str]:
        """What keeps the cluster from being the one cluster it should be, now."""
        now = time.monotonic()
        out: list[str] = []
        live = self.live()
        for c in live:
            doc = docs.get(c.cid)
            st = (doc or {}).get("State", {})
            if not doc or not st.get("Running"):
                out.append(
                    f"EXITED {c.name}: container stopped by itself (exit {st.get('ExitCode')}, {st.get('Error') or st.get('Status')})"
                )
        if any(p.startswith("EXITED") for p in out):
            return out
        for c in live:
            v = views.get(c.cid)
            if v is None or not v.reachable:
                out.append(f"{c.name}: rq4d API unreachable")
            elif not v.healthy:
                out.append(f"{c.name} ({v.node_id}): unhealthy: {v.decision}")
            if v is not None and "conflict" in v.decision.lower():
                out.append(f"CONFLICT {c.name} ({v.node_id}): {v.decision}")
        if out:
            return out
        leaders = {v.leader for v in views.values()}
        if len(leaders) != 1 or None in leaders:
            out.append(f"leaders differ: {sorted(str(x) for x in leaders)}")
        voter_sets = {v.voters for v in views.values()}
        if len(voter_sets) != 1:
            out.append(f"voter sets differ: {[sorted(s) for s in voter_sets]}")
        clusters = {v.cluster_id for v in views.values()}
        if len(clusters) != 1 or None in clusters:
            out.append(f"cluster ids differ: {sorted(str(x) for x in clusters)}")
        if out:
            return out
        voters = next(iter(voter_sets))
        leader = next(iter(leaders))
        ids = {c.node_id for c in live}
        if leader not in ids:
            out.append(f"leader {leader} is not a running container")
        if self.voter_cap is None:
            missing = ids - voters
            if missing:
                out.append(f"running containers not voters: {sorted(missing)}")
        else:
            # Every running container is healthy, so a member that sees the leader; the cap
            # says how many of them vote.
            want = min(self.voter_cap, len(ids))
            if len(voters & ids) != want or len(voters) != want:
                out.append(f"{len(voters)} voters ({sorted(voters)}), want {want} of the {len(ids)} running under --voters {self.voter_cap}")
        dead = {c.node_id: c for c in self.containers.values() if c.state != "running" and c.node_id}
        grace = self.args.reap_grace
        strangers = voters - ids - set(dead)
        if strangers:
            out.append(f"voters that are no container of this run: {sorted(strangers)}")
        overdue_allowed = 0
        for node_id, c in sorted(dead.items(), key=lambda kv: kv[1].down_since or 0):
            if node_id in voters:
                age = now - (c.down_since or now)
                limit = self.args.reap_after + grace + 6 * overdue_allowed
                overdue_allowed += 1
                if strict_reap or age > limit:
                    out.append(f"dead {c.name} ({node_id}) still a voter {age:.0f}s after it died")
        return out

    def note_reaped(self, views: dict[str, NodeView]) -> None:
        if not views:
            return
        voters = next(iter(views.values())).voters
        now = time.monotonic()
        for c in self.containers.values():
            if c.state != "running" and c.node_id and not c.reaped_seen and c.node_id not in voters:
                c.reaped_seen = True
                if c.down_since is not None:
                    self.reap_delays.append(now - c.down_since)

    def milestones(self, views: dict[str, NodeView], marks: dict, since: float) -> None:
        """Notes, at the first snapshot each holds, the steps of a recovery: rqlited has a
        leader (every running rqlited names one running node), rq4d knows it (every node's own
        card names it: its supervisor polled /status and gossiped it), /health flips (every
        node ready). Granularity: one snapshot, every 0.5 s plus the time the snapshot takes."""
        now = time.monotonic() - since
        running = self.live()
        ids = {c.node_id for c in running}
        seen = [views.get(c.cid) for c in running]
        if not running or any(v is None for v in seen):
            return
        leaders = {v.leader for v in seen}
        leader = next(iter(leaders)) if len(leaders) == 1 else None
        if "leader" not in marks and leader in ids:
            marks["leader"] = now
        # The later steps count from the leader on: before it, a follower's /health can still
        # say ready from its last poll of a leader that is gone.
        if "leader" not in marks:
            return
        if "rq4d" not in marks and all(v.card_leader == leader for v in seen):
            marks["rq4d"] = now
        if "health" not in marks and all(v.healthy for v in seen):
            marks["health"] = now

    def wait_converged(self, timeout: float, strict_reap: bool = False, marks: dict | None = None, since: float | None = None) -> tuple[bool, float, list[str]]:
        start = time.monotonic()
        last_report = start
        problems: list[str] = ["not checked"]
        while True:
            views, docs = self.snapshot()
            if marks is not None:
                self.milestones(views, marks, since if since is not None else start)
            problems = self.problems(views, docs, strict_reap)
            self.note_reaped(views)
            if not problems:
                v = next(iter(views.values()))
                self.last_voters = v.voters
                self.last_leader = v.leader
                if marks is not None:
                    marks["converged"] = time.monotonic() - (since if since is not None else start)
                return True, time.monotonic() - start, []
            if any(p.startswith(("EXITED", "CONFLICT")) for p in problems):
                return False, time.monotonic() - start, problems
            now = time.monotonic()
            if now - start > timeout:
                return False, now - start, problems
            if now - last_report > 15:
                log("  waiting: " + "; ".join(problems)[:300])
                last_report = now
            time.sleep(0.5)

    def check_data(self) -> list[str]:
        out = []
        for c in self.containers.values():
            if c.state == "removed" or not c.data_dir:
                continue
            path = Path(c.data_dir) / "rq4d.json"
            try:
                stored = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                stored = None
            raft_db = (Path(c.data_dir) / "rqlite" / "raft.db").exists()
            if c.committed is None:
                if stored and stored.get("committed") and raft_db:
                    c.committed = stored
                continue
            if not stored:
                out.append(f"DATA {c.name}: rq4d.json gone from its volume")
            elif not raft_db:
                out.append(f"DATA {c.name}: rqlite/raft.db gone from its volume")
            elif not stored.get("committed"):
                out.append(f"DATA {c.name}: its committed state was reset (wiped)")
            elif stored.get("node_id") != c.committed.get("node_id"):
                out.append(f"DATA {c.name}: node id changed {c.committed.get('node_id')} -> {stored.get('node_id')}")
            elif stored.get("cluster_id") != c.committed.get("cluster_id"):
                out.append(f"DATA {c.name}: cluster id changed {c.committed.get('cluster_id')} -> {stored.get('cluster_id')}")
        return out

    def save_one(self, folder: Path, c: Container, tail: str = "all") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["docker", "logs", "--tail", tail, c.cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        (folder / f"{c.name}-{c.node_id}.log").write_text(proc.stdout)

    def slow(self, took: float) -> bool:
        """Whether a round or formation took long enough for its logs to be kept (--keep-slow):
        a slow round that breaks no rule is where the next recovery change is aimed."""
        return 0 < self.args.keep_slow < took

    def save_logs(self, label: str, tail: str = "600") -> None:
        folder = self.artifacts / label
        for c in self.containers.values():
            if c.state != "removed":
                self.save_one(folder, c, tail)
        log(f"  logs saved in {folder}")

    # -- formation ---------------------------------------------------------------------------

    def adopt(self, project: Project) -> None:
        self.project = project
        self.containers = {}
        for doc in inspect(project.container_ids()):
            labels = doc.get("Config", {}).get("Labels") or {}
            c = Container(
                cid=doc["Id"],
                name=doc["Name"].lstrip("/"),
                number=int(labels.get("com.docker.compose.container-number", "0")),
                state="running" if doc.get("State", {}).get("Running") else "stopped",
                # rq4d names a node after its container (Docker's DNS) until the node says.
                node_id=doc["Name"].lstrip("/"),
            )
            self.containers[c.cid] = c
        self.refresh()

    def formation_scenario(self, how: str) -> None:
        if how == "voter-cap":
            return self.voter_cap_scenario()
        n = self.args.nodes
        project = self.new_project(how.replace("-", ""), n)
        log(f"formation: {n} nodes, {how}")
        t0 = time.monotonic()
        try:
            if how == "all-at-once":
                project.run("up", "-d", "--scale", f"{SERVICE}={n}")
                t0 = time.monotonic()
            else:
                project.run("up", "--no-start", "--scale", f"{SERVICE}={n}")
                docs = sorted(inspect(project.container_ids()), key=lambda d: int((d["Config"]["Labels"] or {}).get("com.docker.compose.container-number", "0")))
                if how == "reverse-order":
                    docs.reverse()
                t0 = time.monotonic()
                for i, doc in enumerate(docs):
                    if how == "one-at-a-time" and i:
                        time.sleep(self.rng.uniform(0.5, self.args.max_gap))
                    docker("start", doc["Id"])
            self.adopt(project)
            for c in self.containers.values():
                c.state = "running"
            ok, took, problems = self.wait_converged(self.args.round_timeout)
            formed = time.monotonic() - t0
            if ok and len(self.last_voters) != n:
                ok, problems = False, [f"{len(self.last_voters)} voters, expected {n}"]
            self.formation.append((how, formed if ok else None, problems))
            if ok:
                log(f"  one cluster of {n}, leader {self.last_leader}, {formed:.1f}s after the first start")
                if self.slow(formed):
                    self.save_logs(f"slow-formation-{how}-{len(self.formation)}")
            else:
                self.violations.append(f"formation {how}: " + "; ".join(problems))
                log(f"  VIOLATION: {'; '.join(problems)}")
                self.save_logs(f"formation-{how}")
        finally:
            self.destroy(project)
            self.project = None

    def promotions(self, containers: list | None = None) -> int:
        """rq4d_role_changes_total{role="voter"} summed over `containers` (default: the running
        ones)."""
        total = 0.0
        for c in self.live() if containers is None else containers:
            code, text = http_json(f"http://{c.ip}:{API_PORT}/metrics")
            if code == 200 and isinstance(text, str):
                for line in text.splitlines():
                    if line.startswith('rq4d_role_changes_total{role="voter"}'):
                        total += float(line.split()[-1])
        return int(total)

    def voter_cap_scenario(self) -> None:
        """CAP_NODES containers at once under --voters VOTER_CAP: the cap's voters and the rest
        non-voters; then two voters killed (not the leader): once reaped, non-voters take
        their places and the voters are VOTER_CAP again."""
        n, cap = CAP_NODES, VOTER_CAP
        project = self.new_project("votercap", n)
        project.env["RQ4D_VOTERS"] = str(cap)
        project.overlays.append(str(HERE / "voters.yaml"))
        log(f"formation: {n} nodes at once under --voters {cap}")
        self.voter_cap = cap
        try:
            project.run("up", "-d", "--scale", f"{SERVICE}={n}")
            # Timed from when `up` returns, as the all-at-once formation is: compose creating
            # seven containers one after another is no part of rq4d's formation.
            t0 = time.monotonic()
            self.adopt(project)
            ok, _, problems = self.wait_converged(self.args.round_timeout)
            formed = time.monotonic() - t0
            if not ok:
                return self.cap_failed(problems, formed)
            log(f"  {cap} voters + {n - cap} non-voters, leader {self.last_leader}, {formed:.1f}s after the start")
            if self.slow(formed):
                self.save_logs(f"slow-formation-voter-cap-{len(self.formation) + 1}")
            victims = [c for c in self.live() if c.node_id in self.last_voters and c.node_id != self.last_leader][:2]
            # Promotions of the formation itself (a joiner that took a free slot only after it
            # joined as a non-voter) are not the refill's: counted apart, on the containers that
            # survive (a victim's counter goes with it).
            at_formation = self.promotions([c for c in self.live() if c not in victims])
            t1 = time.monotonic()
            for c in victims:
                docker("kill", c.cid)
                self.went_down(c, "stopped", t1)
            ok, _, problems = self.wait_converged(self.args.reap_after + self.args.round_timeout)
            healed = time.monotonic() - t1
            if not ok:
                return self.cap_failed(problems, None)
            promoted = self.promotions() - at_formation
            names = ", ".join(c.name for c in victims)
            self.cap_result = (
                f"{n} containers, --voters {cap}: {cap} voters + {n - cap} non-voters {formed:.1f} s after the start; "
                f"two voters killed ({names}): {cap} voters again {healed:.1f} s later (reap-after {self.args.reap_after:g}s), "
                f"promotions counted: {promoted} (and {at_formation} during the formation)"
            )
            if promoted != len(victims):
                self.cap_failed([f"{promoted} promotions counted for {len(victims)} voters lost"], formed)
            else:
                self.formation.append(("voter-cap", formed, []))
                log("  " + self.cap_result)
        finally:
            self.voter_cap = None
            self.destroy(project)
            self.project = None

    def cap_failed(self, problems: list[str], formed: float | None) -> None:
        self.formation.append(("voter-cap", None, problems))
        self.violations.append("voter-cap: " + "; ".join(problems))
        log(f"  VIOLATION: {'; '.join(problems)}")
        self.save_logs("formation-voter-cap")

    # -- faults ------------------------------------------------------------------------------

    def choose(self) -> str:
        live = self.live()
        stopped = [c for c in self.containers.values() if c.state == "stopped"]
        kinds = [k for k in self.args.faults]
        weights = []
        allowed = []
        existing = len(live) + len(stopped)
        for kind in kinds:
            w = WEIGHTS[kind]
            ok = True
            if kind in ("kill-follower", "kill-leader", "stop", "pause"):
                ok = self.safe_to_lose(1)
            elif kind == "partition":
                ok = self.iptables_ok and self.safe_to_lose(1)
            elif kind == "remove":
                ok = bool(stopped) or self.safe_to_lose(1)
            elif kind == "restart":
                ok = bool(stopped) or self.safe_to_lose(1)
                if len(live) < self.args.nodes:
                    w *= 3
            elif kind == "scale-up":
                ok = existing < self.args.max_nodes
                if len(live) < self.args.nodes:
                    w *= 2
            if ok:
                allowed.append(kind)
                weights.append(w)
        if not allowed:
            return "restart" if stopped else "scale-up"
        return self.rng.choices(allowed, weights)[0]

    def safe_to_lose(self, k: int) -> bool:
        """Whether k more live voters may go down without losing quorum or the node floor."""
        live = self.live()
        if len(live) - k < self.args.min_nodes:
            return False
        voters = self.last_voters or frozenset(c.node_id for c in live)
        live_voters = [c for c in live if c.node_id in voters]
        return (len(live_voters) - k) * 2 > len(voters)

    def pick(self, pool: list[Container]) -> Container:
        return self.rng.choice(sorted(pool, key=lambda c: c.number))

    def leader(self) -> Container | None:
        return next((c for c in self.live() if c.node_id == self.last_leader), None)

    def went_down(self, c: Container, state: str, since: float) -> None:
        """`since`: when the fault began — before `docker stop` or `rm -f`, which return only
        once the container is gone (seconds later with a real rqlited): the reaper's clock
        starts when gossip sees the node go, not when docker reports it."""
        c.state = state
        if c.down_since is None:
            c.down_since = since

    def came_up(self, c: Container) -> None:
        c.state = "running"
        c.down_since = None
        c.reaped_seen = False

    def apply(self, kind: str) -> str:
        live = self.live()
        if kind == "kill-follower":
            c = self.pick([x for x in live if x.node_id != self.last_leader] or live)
            began = time.monotonic()
            docker("kill", "-s", "KILL", c.cid)
            self.went_down(c, "stopped", began)
            return f"SIGKILL {c.name} (follower)"
        if kind == "kill-leader":
            c = self.leader() or self.pick(live)
            began = time.monotonic()
            docker("kill", "-s", "KILL", c.cid)
            self.went_down(c, "stopped", began)
            return f"SIGKILL {c.name} (leader)"
        if kind == "stop":
            c = self.pick(live)
            role = "leader" if c.node_id == self.last_leader else "follower"
            began = time.monotonic()
            docker("stop", c.cid, timeout=60)
            self.went_down(c, "stopped", began)
            return f"docker stop {c.name} ({role})"
        if kind == "pause":
            c = self.pick(live)
            role = "leader" if c.node_id == self.last_leader else "follower"
            hold = self.rng.uniform(2, self.args.reap_after * 2)
            docker("pause", c.cid)
            self.paused.append(c.cid)
            time.sleep(hold)
            docker("unpause", c.cid)
            self.paused.remove(c.cid)
            return f"pause {c.name} ({role}) {hold:.0f}s"
        if kind == "scale-up":
            c = self.start_replica()
            return f"new replica {c.name}"
        if kind == "remove":
            stopped = [x for x in self.containers.values() if x.state == "stopped"]
            pool = stopped if stopped and (not self.safe_to_lose(1) or self.rng.random() < 0.5) else live
            c = self.pick(pool)
            was = c.state
            self.save_one(self.artifacts / "removed", c)
            began = time.monotonic()
            docker("rm", "-f", "-v", c.cid, timeout=60)
            self.went_down(c, "removed", began)
            return f"remove {c.name} for good (was {was})"
        if kind == "restart":
            stopped = [x for x in self.containers.values() if x.state == "stopped"]
            if stopped and (not self.safe_to_lose(1) or self.rng.random() < 0.7):
                c = self.pick(stopped)
                down = time.monotonic() - (c.down_since or time.monotonic())
                docker("start", c.cid)
                self.came_up(c)
                return f"start {c.name} with its volume (down {down:.0f}s)"
            c = self.pick(live)
            role = "leader" if c.node_id == self.last_leader else "follower"
            docker("restart", "-t", "10", c.cid, timeout=60)
            return f"docker restart {c.name} ({role})"
        if kind == "partition":
            return self.partition()
        raise ValueError(kind)

    def start_replica(self) -> Container:
        """A new container of the service, configured exactly like the others."""
        assert self.project
        model = next(iter(inspect([c.cid for c in self.live()][:1])), None)
        numbers = [c.number for c in self.containers.values()]
        number = max(numbers, default=0) + 1
        if model is None:
            raise CommandFailed("no running container to copy the configuration from")
        nets = list((model.get("NetworkSettings", {}).get("Networks") or {}).keys())
        env = [e for e in model["Config"].get("Env") or [] if e.startswith(("RQ4D_", "NO_COLOR"))]
        labels = {
            "com.docker.compose.project": self.project.name,
            "com.docker.compose.service": SERVICE,
            "com.docker.compose.oneoff": "False",
            "com.docker.compose.container-number": str(number),
        }
        name = f"{self.project.name}_{SERVICE}_{number}"
        args = ["run", "-d", "--name", name, "--network", nets[0], "--network-alias", SERVICE, "-v", "/data"]
        for e in env:
            args += ["-e", e]
        for k, v in labels.items():
            args += ["--label", f"{k}={v}"]
        cid = docker(*args, model["Config"]["Image"]).strip()
        c = Container(cid=cid, name=name, number=number, node_id=name)
        self.containers[cid] = c
        self.refresh()
        return c

    def iptables(self, c: Container, *rule: str, check: bool = True) -> None:
        run(["nsenter", "-t", str(c.pid), "-n", "iptables", "-w", "5", *rule], check=check, timeout=20)

    def probe_iptables(self) -> None:
        if os.geteuid() != 0:
            self.iptables_note = "partition faults skipped: not root (nsenter needs root)"
            return
        if not shutil.which("nsenter") or not shutil.which("iptables"):
            self.iptables_note = "partition faults skipped: nsenter or iptables not installed"
            return
        c = next((x for x in self.live() if x.pid), None)
        if c is None:
            self.iptables_note = "partition faults skipped: no container to probe"
            return
        try:
            self.iptables(c, "-N", "RQ4D-PROBE")
            self.iptables(c, "-X", "RQ4D-PROBE")
            self.iptables_ok = True
        except CommandFailed as e:
            self.iptables_note = f"partition faults skipped: iptables in a container's netns failed: {e}"

    def partition(self) -> str:
        live = self.live()
        # the largest group that still leaves a quorum on the other side
        max_group = 1
        while self.safe_to_lose(max_group + 1):
            max_group += 1
        size = self.rng.randint(1, max_group)
        group = self.rng.sample(sorted(live, key=lambda c: c.number), size)
        if self.rng.random() < 0.3 and self.leader() and self.leader() not in group:
            group[0] = self.leader()
        rest = [c for c in live if c not in group]
        hold = self.rng.uniform(3, self.args.reap_after * 2)
        for c in live:
            self.iptables(c, "-N", CHAIN, check=False)
            self.iptables(c, "-I", "INPUT", "-j", CHAIN)
            self.partitioned.append(c.cid)
        for a in group:
            for b in rest:
                self.iptables(a, "-A", CHAIN, "-s", b.ip, "-j", "DROP")
                self.iptables(b, "-A", CHAIN, "-s", a.ip, "-j", "DROP")
        time.sleep(hold)
        self.heal_partition()
        names = ",".join(c.name.rsplit("_", 1)[-1] for c in group)
        lead = " incl. leader" if any(c.node_id == self.last_leader for c in group) else ""
        return f"cut off {{{names}}}{lead} ({size} of {len(live)}) {hold:.0f}s"

    def heal_partition(self) -> None:
        for cid in list(self.partitioned):
            c = self.containers.get(cid)
            if c and c.state == "running" and c.pid:
                self.iptables(c, "-D", "INPUT", "-j", CHAIN, check=False)
                self.iptables(c, "-F", CHAIN, check=False)
                self.iptables(c, "-X", CHAIN, check=False)
            self.partitioned.remove(cid)

    # -- the run -----------------------------------------------------------------------------

    def chaos(self) -> None:
        n = self.args.nodes
        project = self.new_project("", n)
        log(f"chaos: project {project.name}, {n} nodes, reap-after {self.args.reap_after:g}s")
        project.run("up", "-d", "--scale", f"{SERVICE}={n}")
        self.adopt(project)
        ok, took, problems = self.wait_converged(self.args.round_timeout)
        if not ok:
            self.violations.append("initial cluster did not form: " + "; ".join(problems))
            self.save_logs("initial")
            return
        log(f"  formed: leader {self.last_leader}, {len(self.last_voters)} voters ({took:.1f}s)")
        self.probe_iptables()
        if not self.iptables_ok:
            log(self.iptables_note)
        self.check_data()
        self.writer = Writer(self.targets)
        self.writer.start()
        deadline = self.started + self.args.max_minutes * 60
        print_header()
        for number in range(1, self.args.rounds + 1):
            if time.monotonic() > deadline:
                log(f"--max-minutes reached: stopping after {number - 1} rounds")
                break
            self.writer.round = number
            kind = self.choose()
            t0 = time.monotonic()
            try:
                detail = self.apply(kind)
            except CommandFailed as e:
                detail = f"fault failed: {e}"
            log(f"round {number}: {kind}: {detail}")
            marks: dict = {"healed": time.monotonic() - t0}
            watch = None
            if kind in FINE_KINDS:
                watch = FineWatch([(c.node_id, c.ip) for c in self.live() if c.node_id and c.ip], t0)
                watch.start()
            ok, took, problems = self.wait_converged(self.args.round_timeout, marks=marks, since=t0)
            if watch is not None:
                marks.update({f"fine_{k}": v for k, v in watch.finish(grace=1.0 if ok else 0.0).items()})
                if "fine_health" in marks:
                    log(f"  fine watch: every rqlited names the leader after {marks['fine_leader']:.2f}s, every /health 200 after {marks['fine_health']:.2f}s")
            data = self.check_data()
            result = RoundResult(
                number=number,
                kind=kind,
                detail=detail,
                running=len(self.live()),
                voters=len(self.last_voters),
                recovery=took if ok else None,
                elapsed=time.monotonic() - t0,
                problems=problems + data,
                leader=self.last_leader or "",
                marks=marks,
            )
            self.rounds.append(result)
            print_row(result)
            if result.problems:
                for p in result.problems:
                    self.violations.append(f"round {number} ({kind}: {detail}): {p}")
                self.save_logs(f"round-{number:03d}")
                if sum(1 for r in self.rounds[-3:] if r.problems) == 3:
                    log("three violating rounds in a row: stopping")
                    break
            elif result.recovery is not None and self.slow(result.recovery):
                self.save_logs(f"slow-round-{number:03d}")
        self.final()

    def final(self) -> None:
        if self.writer:
            self.writer.stop()
        log("final: waiting for every dead node to be reaped")
        dead = [c for c in self.containers.values() if c.state != "running" and c.node_id]
        wait = self.args.reap_after + self.args.reap_grace + 6 * len(dead)
        ok, took, problems = self.wait_converged(wait + 60, strict_reap=False)
        if ok:
            # every dead node must now be gone: give the reaper up to its deadline
            end = time.monotonic() + wait + 30
            while True:
                views, docs = self.snapshot()
                problems = self.problems(views, docs, strict_reap=True)
                self.note_reaped(views)
                if not problems or time.monotonic() > end:
                    break
                time.sleep(1)
            ok = not problems
        problems += self.check_data()
        if problems:
            for p in problems:
                self.violations.append(f"final: {p}")
            self.save_logs("final")
        self.final_state = (ok and not problems, problems)
        self.save_logs("end", tail="all")
        run_it = self.args.durability == "always" or (self.args.durability == "auto" and self.real_rqlited)
        if run_it and self.writer:
            self.durability_check()
        elif self.writer:
            self.durability = (
                f"not run with the double ({len(self.writer.acked)} writes acknowledged; the test "
                "double keeps rows only on the leader that took them, so a strong read after "
                "failovers proves nothing)"
            )

    def durability_check(self) -> None:
        assert self.writer
        self.durability_ran = True
        ip = next((c.ip for c in self.live() if c.node_id == self.last_leader), None)
        if ip is None:
            self.durability = "FAILED: no leader to read from"
            self.violations.append("durability: no leader to read from")
            return
        q = urllib.request.quote("SELECT * FROM chaos")
        code, doc = http_json(f"http://{ip}:{HTTP_PORT}/db/query?level=strong&q={q}", timeout=30)
        try:
            rows = doc["results"][0].get("values") or []
            present = {int(r[0]) for r in rows}
        except (TypeError, KeyError, IndexError, ValueError):
            self.durability = f"FAILED: strong read answered {code}: {str(doc)[:200]}"
            self.violations.append(f"durability: strong read failed ({code})")
            return
        lost = sorted(self.writer.acked - present)
        self.durability = (
            f"{len(self.writer.acked)} acknowledged writes, {len(present)} rows read back "
            f"(strong), {len(lost)} lost"
        )
        self.durability_ok = not lost
        if lost:
            self.violations.append(f"durability: {len(lost)} acknowledged writes lost, e.g. {lost[:10]}")

    # -- report ------------------------------------------------------------------------------

    def recovered_by_kind(self):
        """Each fault kind with its rounds that recovered, in KINDS order; kinds without any
        are left out."""
        for kind in KINDS:
            rs = [r for r in self.rounds if r.kind == kind and r.recovery is not None]
            if rs:
                yield kind, rs

    def summary(self, command: str) -> str:
        lines = []
        add = lines.append
        total = time.monotonic() - self.started
        add("# rq4d chaos run")
        add("")
        add(f"- command: `{command}`")
        add(f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
        add(f"- image: `{self.args.image}` (rqlited: {self.image_label}; rq4d revision {self.image_revision})")
        add(f"- compose: `{' '.join(self.compose)}` ({compose_version(self.compose)}); engine {docker_version()}")
        add(f"- nodes: {self.args.nodes} (min {self.args.min_nodes}, max {self.args.max_nodes}), expect {self.args.expect}, reap-after {self.args.reap_after:g}s, seed {self.args.seed}")
        add(f"- wall time: {total / 60:.1f} min")
        add("")
        add("## Formation")
        add("")
        add("| start | formed after | result |")
        add("| --- | --- | --- |")
        for how, formed, problems in self.formation:
            size = CAP_NODES if how == "voter-cap" else self.args.nodes
            add(f"| {how} | {'%.1f s' % formed if formed is not None else '-'} | {'one cluster of %d' % size if formed is not None else 'VIOLATION: ' + '; '.join(problems)} |")
        if not self.formation:
            add("| (skipped) | | |")
        add("")
        if self.cap_result:
            add(f"Voter cap: {self.cap_result}.")
            add("")
        add("## Rounds")
        add("")
        add("| # | fault | detail | running | voters | recovery | result |")
        add("| ---: | --- | --- | ---: | ---: | ---: | --- |")
        for r in self.rounds:
            rec = f"{r.recovery:.1f} s" if r.recovery is not None else "-"
            res = "ok" if not r.problems else "VIOLATION: " + "; ".join(r.problems)[:300]
            add(f"| {r.number} | {r.kind} | {r.detail} | {r.running} | {r.voters} | {rec} | {res} |")
        add("")
        add("## Summary")
        add("")
        recs = [r.recovery for r in self.rounds if r.recovery is not None]
        add(f"- rounds: {len(self.rounds)}")
        add("- faults by kind (count; recovery median / p95 / max):")
        for kind in KINDS:
            rs = [r for r in self.rounds if r.kind == kind]
            if not rs:
                add(f"  - {kind}: 0")
                continue
            kr = [r.recovery for r in rs if r.recovery is not None]
            add(f"  - {kind}: {len(rs)}; {fmt_stats(kr)}")
        add(f"- recovery (fault healed → one healthy cluster of exactly the running containers): {fmt_stats(recs)}")
        add("")
        add("### Recovery, step by step (seconds from the fault's start; median / p95)")
        add("")
        add("Each column is the first snapshot at which it held; snapshots come every 0.5 s plus the")
        add("time one takes (every node's /health, /members and rqlited's /status), so each figure")
        add("is late by up to that much. `healed`: the fault's command returned (a kill, a stop, a")
        add("pause's end, a partition's removal). `rqlited leader`: every running rqlited names one")
        add("running leader. `rq4d knows`: every node's own card names it (its supervisor polled")
        add("/status). `/health`: every node ready. `one cluster`: the whole check (voters, reaps).")
        add("The later steps count from `rqlited leader` on (before it a follower's /health may")
        add("still say ready from its last poll of a leader that is gone); `-`: not seen before the")
        add("whole check passed, which does not wait for the cards.")
        add("")
        add("| fault | n | healed | rqlited leader | rq4d knows | /health | one cluster |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for kind, rs in self.recovered_by_kind():
            cells = []
            for key in ("healed", "leader", "rq4d", "health", "converged"):
                xs = [r.marks[key] for r in rs if key in r.marks]
                cells.append(f"{pct(xs, 0.5):.1f} / {pct(xs, 0.95):.1f}" if xs else "-")
            add(f"| {kind} | {len(rs)} | " + " | ".join(cells) + " |")
        add("")
        add("### Against the goals")
        add("")
        add("Goals: every fault kind's recovery p95 ≤ 5 s; after a killed leader, one healthy cluster")
        add("within 0.5 s of rqlited's own new leader, per round. The snapshots' lag (`one cluster` −")
        add("`rqlited leader` above) is late by up to a snapshot; a killed leader's rounds are also")
        add("watched finely: every running node's rqlited /status and rq4d /health, all at once, every")
        add(f"{FINE_EVERY:g} s, and the goal is judged on that (`/health` − `rqlited leader`, both from")
        add("the fine watch, each late by at most one tick; a round the watch did not see whole, on")
        add("the snapshots' lag). Figures of the test double are not figures of rqlite.")
        add("")
        add("| fault | n | recovery p95 | p95 ≤ 5 s | one cluster − rqlited leader, median / p95 | fine: /health − rqlited leader, median / p95 / max | ≤ 0.5 s |")
        add("| --- | ---: | ---: | --- | ---: | ---: | --- |")
        for kind, rs in self.recovered_by_kind():
            p95 = pct([r.recovery for r in rs], 0.95)
            lag = [r.marks["converged"] - r.marks["leader"] for r in rs if "converged" in r.marks and "leader" in r.marks]
            lag_cell = f"{pct(lag, 0.5):.1f} / {pct(lag, 0.95):.1f}" if lag else "-"
            fine = [r.marks["fine_health"] - r.marks["fine_leader"] for r in rs if "fine_health" in r.marks and "fine_leader" in r.marks]
            fine_cell = fmt_fine(fine)
            # Each round by its finest figure: the fine watch's, else the snapshots'.
            judged = [
                r.marks["fine_health"] - r.marks["fine_leader"] if "fine_health" in r.marks and "fine_leader" in r.marks
                else r.marks["converged"] - r.marks["leader"]
                for r in rs
                if ("fine_health" in r.marks and "fine_leader" in r.marks) or ("converged" in r.marks and "leader" in r.marks)
            ]
            lag_goal = ("met" if pct(judged, 0.95) <= 0.5 else "not met") if judged and kind == "kill-leader" else ""
            add(f"| {kind} | {len(rs)} | {p95:.1f} s | {'met' if p95 <= 5 else 'not met'} | {lag_cell} | {fine_cell} | {lag_goal} |")
        add("")
        for kind, rs in self.recovered_by_kind():
            leader = [r.marks["fine_leader"] for r in rs if "fine_leader" in r.marks]
            health = [r.marks["fine_health"] for r in rs if "fine_health" in r.marks]
            missed = len(rs) - len(health)
            if leader:
                add(f"- {kind}, fine watch (median / p95 / max s from the fault's start): every rqlited named the new leader after {fmt_fine(leader)} (rqlited's own failover), every /health was 200 after {fmt_fine(health)}" + (f"; {missed} round(s) not seen whole by the fine watch" if missed else ""))
                add("")
        if self.reap_delays:
            add(f"- dead nodes reaped: {len(self.reap_delays)}, observed removed {fmt_stats(self.reap_delays)} after they died (reap-after {self.args.reap_after:g}s; observed at round boundaries, so upper bounds)")
        if not self.iptables_ok:
            add(f"- {self.iptables_note}")
        if self.writer:
            add(f"- writes: {self.writer.attempts} attempted, {len(self.writer.acked)} acknowledged, {self.writer.failures} refused or timed out (during faults)")
        add(f"- acknowledged-write durability: {self.durability}")
        final_ok, final_problems = getattr(self, "final_state", (False, ["not reached"]))
        add(f"- final check (after reap-after: no dead voter left, data intact): {'ok' if final_ok else 'FAILED: ' + '; '.join(final_problems)}")
        add(f"- violations: {len(self.violations)}")
        for v in self.violations:
            add(f"  - {v}")
        return "\n".join(lines) + "\n"


def fmt_fine(values: list[float]) -> str:
    """median / p95 / max to the hundredth: the fine watch's resolution is a tenth."""
    if not values:
        return "-"
    return f"{pct(values, 0.5):.2f} / {pct(values, 0.95):.2f} / {max(values):.2f}"


def fmt_stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} s / {pct(values, 0.95):.1f} s / {max(values):.1f} s"


def compose_version(cmd: list[str]) -> str:
    return run([*cmd, "version", "--short"], check=False, timeout=20).strip() or "?"


def docker_version() -> str:
    return docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20).strip() or "?"


def print_header() -> None:
    print(f"{'#':>4}  {'fault':<13}  {'running':>7}  {'voters':>6}  {'recovery':>8}  result / detail", flush=True)


def print_row(r: RoundResult) -> None:
    rec = f"{r.recovery:.1f}s" if r.recovery is not None else "-"
    res = "ok" if not r.problems else "VIOLATION " + "; ".join(r.problems)[:200]
    print(f"{r.number:>4}  {r.kind:<13}  {r.running:>7}  {r.voters:>6}  {rec:>8}  {res}: {r.detail}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10, help="chaos rounds (default 10; 0: formation scenarios only)")
    p.add_argument("--max-minutes", type=float, default=20, help="start no round after this (default 20)")
    p.add_argument("--nodes", type=int, default=5, help="cluster size to start with and aim for (default 5)")
    p.add_argument("--min-nodes", type=int, default=3, help="never take the running nodes below this (default 3)")
    p.add_argument("--max-nodes", type=int, default=7, help="containers (running + stopped) at most (default 7)")
    p.add_argument("--expect", type=int, default=3, help="RQ4D_EXPECT (default 3)")
    p.add_argument("--reap-after", type=parse_duration, default=15.0, help="RQ4D_REAP_AFTER (default 15s)")
    p.add_argument("--reap-grace", type=parse_duration, default=20.0, help="time after reap-after by which a dead voter must be gone (default 20s)")
    p.add_argument("--round-timeout", type=parse_duration, default=120.0, help="a round not converged after this is a violation (default 120s)")
    p.add_argument("--max-gap", type=parse_duration, default=4.0, help="longest gap of the one-at-a-time formation (default 4s)")
    p.add_argument("--faults", default=",".join(KINDS), help=f"kinds to draw from (default all: {','.join(KINDS)})")
    p.add_argument("--no-formation", action="store_true", help="skip the formation scenarios")
    p.add_argument("--formations", default=",".join(FORMATIONS), help=f"formation scenarios (default all: {','.join(FORMATIONS)})")
    p.add_argument("--formation-repeat", type=int, default=1, help="run the formation scenarios this many times (default 1)")
    p.add_argument("--durability", choices=["auto", "always", "never"], default="auto", help="the acknowledged-writes check: auto = only when the image carries a real rqlited (default); always = also with the double (meaningful only if the leader never changed: for testing the checker)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    p.add_argument("--image", default=os.environ.get("RQ4D_IMAGE", "rq4d:test-double"), help="image (default $RQ4D_IMAGE or rq4d:test-double)")
    p.add_argument("--summary", default=None, help="write the markdown summary to this file")
    p.add_argument("--artifacts", default=None, help="where logs of violating rounds go (default: a temp dir)")
    p.add_argument("--keep-slow", type=parse_duration, default=5.0, help="also keep the logs of a round or formation that took longer than this (default 5s, the recovery goal; 0: never)")
    args = p.parse_args()
    if args.seed is None:
        args.seed = int(time.time()) % 100000
    args.formations = [k.strip() for k in args.formations.split(",") if k.strip()]
    if [k for k in args.formations if k not in FORMATIONS]:
        p.error(f"unknown formation scenario; known: {FORMATIONS}")
    args.faults = [k.strip() for k in args.faults.split(",") if k.strip()]
    unknown = [k for k in args.faults if k not in KINDS]
    if unknown:
        p.error(f"unknown fault kinds {unknown}; known: {KINDS}")
    command = "python3 compose/chaos.py " + " ".join(sys.argv[1:])

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, interrupted)  # also when started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    try:
        chaos = Chaos(args)
        chaos.preflight()
    except CommandFailed as e:
        print(f"chaos: {e}", file=sys.stderr)
        return 2
    log(f"image {args.image} (rqlited: {chaos.image_label}); compose: {' '.join(chaos.compose)}; seed {args.seed}")
    status = 0
    try:
        if not args.no_formation:
            for _ in range(args.formation_repeat):
                for how in args.formations:
                    chaos.formation_scenario(how)
        if args.rounds > 0:
            chaos.chaos()
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        status = 130
    except CommandFailed as e:
        log(f"error: {e}")
        chaos.violations.append(f"driver error: {e}")
        status = 2
    finally:
        chaos.cleanup()
    text = chaos.summary(command)
    print()
    print(text)
    checks = len(chaos.formation) + len(chaos.rounds) + (1 if hasattr(chaos, "final_state") else 0)
    failed = sum(1 for f in chaos.formation if f[1] is None) + sum(1 for r in chaos.rounds if r.problems)
    if hasattr(chaos, "final_state") and not chaos.final_state[0]:
        failed += 1
    if chaos.durability_ran:
        checks += 1
        failed += 0 if chaos.durability_ok else 1
    if chaos.violations and not failed:  # e.g. a driver error
        checks, failed = checks + 1, 1
    print(f"chaos: {checks - failed} passed, {failed} failed")
    if args.summary and status != 130:
        Path(args.summary).write_text(text)
        log(f"summary written to {args.summary}")
    if status:
        return status
    return 1 if chaos.violations else 0


if __name__ == "__main__":
    sys.exit(main())
