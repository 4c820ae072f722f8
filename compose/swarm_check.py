#!/usr/bin/env python3
"""Swarm check for rq4d: the stack compose/swarm.yaml on this machine's swarm, taken through what
Swarm does to it — scale up and down, a rolling update of every task, two tasks killed at once —
checking after each step that there is exactly one healthy rqlite cluster of exactly the running
tasks, with the same members (db-<slot>) and the same cluster id throughout.

    python3 compose/swarm_check.py --image rq4d:test-double            # what scripts/docker-ci.sh runs
    python3 compose/swarm_check.py --image rq4d:8.43.3 --summary compose/swarm-summary.md

Needs root (it runs inside the network namespace of a probe container on the stack's overlay:
the host cannot reach an overlay), a Docker Engine that is a swarm manager or in no swarm
(scripts/swarm-up.sh initialises one on loopback, scripts/swarm-down.sh leaves it again) and
Python 3.9+ (standard library only). Every wait has a deadline; the stack, its volumes, its key
and the probe are removed on exit, also on failure and Ctrl-C.

During the rolling update (`docker service update --force`, what an image upgrade does) a
client writes a row every 0.2 s through the service's virtual IP, and the check samples every
0.5 s how many of the tasks run a Raft member: it must never be fewer than a majority of 3.
Whether every acknowledged write survived is checked only with a real rqlited in the image: the
test double keeps no rows, so with it that check is reported NOT RUN.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import (  # noqa: E402  (the chaos driver's helpers, one definition)
    HTTP_PORT,
    CommandFailed,
    Writer,
    docker,
    http_json,
    log,
    parse_duration,
    pct,
    view_node,
)

ROOT = Path(__file__).resolve().parent.parent


class Failed(RuntimeError):
    """A step did not reach its condition; the message says what was seen."""


class Task:
    """One running task of the service, as `docker inspect` shows it."""

    def __init__(self, doc: dict, network: str):
        self.cid: str = doc["Id"][:12]
        labels = doc["Config"]["Labels"]
        self.name: str = labels.get("com.docker.swarm.task.name", doc["Name"].lstrip("/"))
        self.slot = int(self.name.split(".")[1]) if self.name.count(".") >= 2 else 0
        net = doc["NetworkSettings"]["Networks"].get(network) or {}
        self.ip: str | None = net.get("IPAddress") or None
        self.volume: str | None = next(
            (m.get("Name") for m in doc.get("Mounts", []) if m.get("Destination") == "/data"), None
        )
        self.running: bool = bool(doc["State"].get("Running"))

    @property
    def node_id(self) -> str:
        return f"db-{self.slot}"


class SwarmCheck:
    def __init__(self, args):
        self.args = args
        self.stack = args.stack
        self.service = f"{self.stack}_db"
        self.network = f"{self.stack}_rqlite"
        self.results: list[tuple[str, str, str]] = []  # (step, outcome, detail)
        self.failures: list[str] = []
        self.cluster_id = None
        self.targets = lambda: []
        self.real_rqlited = False
        self.image_label = "?"

    # -- the service's tasks and the cluster they form --------------------------------------

    def tasks(self) -> list[Task]:
        ids = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.service}").split()
        if not ids:
            return []
        out = docker("inspect", *ids, check=False)
        try:
            docs = json.loads(out) if out.strip() else []
        except json.JSONDecodeError:
            return []
        return [t for t in (Task(d, self.network) for d in docs) if t.running and t.ip]

    def problems(self, want: set[str]) -> list[str]:
        """What keeps the tasks from being one healthy cluster whose voters are exactly `want`."""
        tasks = self.tasks()
        ids = {t.node_id for t in tasks}
        if ids != want or len(tasks) != len(want):
            return [f"running tasks {sorted(t.name for t in tasks)}, want members {sorted(want)}"]
        out: list[str] = []
        views = {t.node_id: view_node(t.cid, t.ip) for t in tasks}
        for node_id, v in sorted(views.items()):
            if not v.reachable:
                out.append(f"{node_id}: rq4d API unreachable")
            elif not v.healthy:
                out.append(f"{node_id}: not ready: {v.decision}")
            elif v.node_id != node_id:
                out.append(f"{node_id}: says it is {v.node_id}")
        if out:
            return out
        leaders = {v.leader for v in views.values()}
        voters = {v.voters for v in views.values()}
        clusters = {v.cluster_id for v in views.values()}
        if len(leaders) != 1 or None in leaders:
            out.append(f"leaders differ: {sorted(map(str, leaders))}")
        if voters != {frozenset(want)}:
            out.append(f"voters {[sorted(s) for s in voters]}, want {sorted(want)}")
        if len(clusters) != 1 or None in clusters:
            out.append(f"cluster ids differ: {sorted(map(str, clusters))}")
        elif self.cluster_id is not None and clusters != {self.cluster_id}:
            out.append(f"cluster id changed: {self.cluster_id} -> {next(iter(clusters))}")
        return out

    def wait_cluster(self, want: set[str], timeout: float) -> float:
        start = time.monotonic()
        last = start
        while True:
            problems = self.problems(want)
            if not problems:
                return time.monotonic() - start
            now = time.monotonic()
            if now - start > timeout:
                raise Failed(f"not one cluster of {sorted(want)} after {timeout:.0f}s: " + "; ".join(problems))
            if now - last > 15:
                log("  waiting: " + "; ".join(problems)[:300])
                last = now
            time.sleep(0.5)

    def members(self, n: int) -> set[str]:
        return {f"db-{slot}" for slot in range(1, n + 1)}

    def record(self, step: str, outcome: str, detail: str) -> None:
        log(f"{step}: {outcome}: {detail}")
        self.results.append((step, outcome, detail))
        if outcome == "FAILED":
            self.failures.append(f"{step}: {detail}")

    def stored(self, volume: str) -> dict | None:
        """rq4d.json in a task's volume (the host reads the volume's directory)."""
        try:
            path = docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).strip()
            return json.loads((Path(path) / "rq4d.json").read_text())
        except (CommandFailed, OSError, json.JSONDecodeError):
            return None

    # -- the steps ----------------------------------------------------------------------------

    def formed(self) -> None:
        took = self.wait_cluster(self.members(3), 120)
        tasks = self.tasks()
        view = view_node(tasks[0].cid, tasks[0].ip)
        self.cluster_id = view.cluster_id
        self.record("form", "ok", f"3 tasks, one cluster {self.cluster_id} (ready {took:.1f}s after the deploy returned)")

    def scale(self, n: int, timeout: float) -> None:
        start = time.monotonic()
        docker("service", "scale", "--detach", f"{self.service}={n}")
        self.wait_cluster(self.members(n), timeout)
        self.record(f"scale to {n}", "ok", f"voters {sorted(self.members(n))} after {time.monotonic() - start:.1f}s")

    def rolling_update(self, writer: Writer) -> None:
        before = {t.slot: t.cid for t in self.tasks()}
        samples: list[tuple[float, int, bool]] = []  # (time, tasks running a Raft member, a leader seen)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                members, leader = 0, False
                for t in self.tasks():
                    code, status = http_json(f"http://{t.ip}:{HTTP_PORT}/status", timeout=1)
                    store = (status or {}).get("store", {}) if code == 200 and isinstance(status, dict) else {}
                    state = (store.get("raft") or {}).get("state", "")
                    if state in ("Leader", "Follower", "Candidate"):
                        members += 1
                    leader |= state == "Leader"
                samples.append((time.monotonic(), members, leader))
                done.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        acked_before = len(writer.acked)
        start = time.monotonic()
        sampler.start()
        try:
            out = subprocess.run(
                ["docker", "service", "update", "--force", "--detach=false", self.service],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=self.args.update_timeout,
            )
        except subprocess.TimeoutExpired:
            done.set()
            raise Failed(f"docker service update did not finish in {self.args.update_timeout:.0f}s")
        took = time.monotonic() - start
        # The CLI returns at "converged"; the service's update state follows shortly after.
        deadline = time.monotonic() + 30
        while True:
            state = docker("service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", self.service).strip()
            if state != "updating" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.wait_cluster(self.members(3), 120)
        done.set()
        sampler.join(timeout=5)
        after = {t.slot: t.cid for t in self.tasks()}
        replaced = sorted(s for s in before if after.get(s) != before[s])
        lowest = min((m for _, m, _ in samples), default=0)
        leaderless = [t for t, _, leader in samples if not leader]
        gap = writer.longest_gap(start, time.monotonic())
        detail = (
            f"{len(replaced)} of {len(before)} tasks replaced in {took:.0f}s (update state {state or '?'}); "
            f"fewest tasks running a Raft member at once: {lowest} of 3 over {len(samples)} samples; "
            f"samples without a leader: {len(leaderless)}; writes acknowledged during it: "
            f"{len(writer.acked) - acked_before}, longest gap between acknowledgements {gap:.1f}s"
        )
        if out.returncode != 0 or state not in ("completed", ""):
            self.record("rolling update", "FAILED", f"{detail}; docker said: {' / '.join(out.stdout.strip().splitlines()[-3:])}")
        elif len(replaced) != len(before):
            self.record("rolling update", "FAILED", f"{detail}; slots not replaced: {sorted(set(before) - set(replaced))}")
        elif lowest < 2:
            self.record("rolling update", "FAILED", f"{detail}: quorum lost (fewer than 2 of 3 members running)")
        else:
            self.record("rolling update", "ok", detail)

    def kill_two(self) -> None:
        tasks = sorted(self.tasks(), key=lambda t: t.slot)
        victims = tasks[:2]
        volumes = {t.slot: t.volume for t in tasks}
        stored = {t.slot: self.stored(t.volume) for t in victims if t.volume}
        start = time.monotonic()
        docker("kill", *(t.cid for t in victims))
        # Swarm notices, and starts new tasks in the same slots (restart_policy: any).
        deadline = time.monotonic() + 60
        while {t.cid for t in self.tasks()} & {v.cid for v in victims}:
            if time.monotonic() > deadline:
                raise Failed("killed tasks still listed as running after 60 s")
            time.sleep(0.5)
        self.wait_cluster(self.members(3), 180)
        took = time.monotonic() - start
        now = {t.slot: t for t in self.tasks()}
        wrong = []
        for v in victims:
            new = now.get(v.slot)
            if new is None or new.cid == v.cid:
                wrong.append(f"slot {v.slot} not replaced")
            elif new.volume != volumes[v.slot]:
                wrong.append(f"slot {v.slot} came back on volume {new.volume}, not {volumes[v.slot]}")
            else:
                old, fresh = stored.get(v.slot) or {}, self.stored(new.volume) or {}
                for key in ("node_id", "cluster_id"):
                    if old.get(key) != fresh.get(key):
                        wrong.append(f"slot {v.slot}: rq4d.json {key} {old.get(key)} -> {fresh.get(key)}")
        names = ", ".join(f"{v.node_id} ({v.name})" for v in victims)
        if wrong:
            self.record("kill 2 of 3", "FAILED", f"{names}: " + "; ".join(wrong))
        else:
            self.record(
                "kill 2 of 3",
                "ok",
                f"{names} killed; the same members on the same volumes, one cluster again after {took:.1f}s",
            )

    def durability(self, writer: Writer) -> None:
        if not self.real_rqlited:
            self.record(
                "acknowledged writes survive",
                "NOT RUN",
                f"the image carries the rqlited test double, which keeps no rows ({len(writer.acked)} writes acknowledged)",
            )
            return
        q = urllib.request.quote("SELECT id FROM chaos")
        code, doc = http_json(f"http://{self.targets()[0]}:{HTTP_PORT}/db/query?level=strong&q={q}", timeout=30)
        try:
            present = {int(r[0]) for r in doc["results"][0].get("values") or []}
        except (TypeError, KeyError, IndexError, ValueError):
            self.record("acknowledged writes survive", "FAILED", f"strong read answered {code}: {str(doc)[:200]}")
            return
        lost = sorted(writer.acked - present)
        detail = f"{len(writer.acked)} acknowledged, {len(present)} read back (strong), {len(lost)} lost"
        self.record("acknowledged writes survive", "FAILED" if lost else "ok", detail + (f", e.g. {lost[:10]}" if lost else ""))

    def endpoint(self) -> tuple[str, object]:
        """Where applications connect, as the writer's targets: the service's virtual IP, or
        (endpoint mode dnsrr) every running task, as `db` resolves to them."""
        mode = docker("service", "inspect", "-f", "{{.Spec.EndpointSpec.Mode}}", self.service).strip()
        if mode == "dnsrr":
            return "every live task (endpoint mode dnsrr: this kernel has no IPVS)", lambda: [t.ip for t in self.tasks()]
        out = docker("service", "inspect", "-f", "{{json .Endpoint.VirtualIPs}}", self.service)
        network_id = docker("network", "inspect", "-f", "{{.Id}}", self.network).strip()
        for vip in json.loads(out) or []:
            if vip.get("NetworkID") == network_id:
                addr = vip["Addr"].split("/")[0]
                return f"the virtual IP {addr}", lambda: [addr]
        raise Failed(f"the service has no virtual IP on {self.network}")

    def run(self) -> None:
        self.formed()
        endpoint, targets = self.endpoint()
        self.targets = targets
        writer = TimedWriter(targets)
        writer.start()
        try:
            self.scale(5, 120)
            self.scale(3, 60 + self.args.reap_after)
            self.rolling_update(writer)
            self.kill_two()
        finally:
            writer.stop()
        self.durability(writer)
        self.record(
            "writes",
            "ok" if writer.acked else "FAILED",
            f"attempted {writer.attempts}, acknowledged {len(writer.acked)}, refused or failed {writer.failures} (through {endpoint})",
        )

    def summary(self) -> str:
        lines = [
            "# Swarm check",
            "",
            f"- image: `{self.args.image}` (rqlited: {self.image_label}); engine {docker('version', '-f', '{{.Server.Version}}').strip()}",
            f"- stack `{self.stack}` from compose/swarm.yaml on a single-node swarm; reap-after {self.args.reap_after:g}s",
            "",
            "| step | outcome | what was seen |",
            "|---|---|---|",
        ]
        lines += [f"| {step} | {outcome} | {detail} |" for step, outcome, detail in self.results]
        return "\n".join(lines) + "\n"


class TimedWriter(Writer):
    """The chaos driver's writer, also keeping when each write was acknowledged."""

    def __init__(self, targets_fn):
        super().__init__(targets_fn)
        self.acked_at: list[float] = []
        self._seen = 0

    def run(self) -> None:
        watcher = threading.Thread(target=self._watch, daemon=True)
        watcher.start()
        super().run()

    def _watch(self) -> None:
        while not self.stop_event.is_set():
            with self.lock:
                n = len(self.acked)
            if n > self._seen:
                self.acked_at.extend([time.monotonic()] * (n - self._seen))
                self._seen = n
            self.stop_event.wait(0.05)

    def longest_gap(self, start: float, end: float) -> float:
        times = [start] + [t for t in self.acked_at if start <= t <= end] + [end]
        return max(b - a for a, b in zip(times, times[1:]))


# -- outside the namespace: the stack, the probe, and the cleanup --------------------------------


def outer(args) -> int:
    if os.geteuid() != 0:
        print("swarm_check.py needs root (nsenter into the probe's network namespace)", file=sys.stderr)
        return 2
    labels = json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}", args.image)) or {}
    env = dict(
        os.environ,
        RQ4D_IMAGE=args.image,
        RQ4D_STACK=args.stack,
        RQ4D_REAP_AFTER=f"{args.reap_after:g}s",
    )
    probe = f"{args.stack}-probe"

    def down() -> None:
        subprocess.run(["docker", "rm", "-f", probe], capture_output=True, timeout=60)
        subprocess.run([str(ROOT / "scripts/swarm-down.sh")], env=env, timeout=180)

    try:
        log(f"deploying the stack {args.stack} (scripts/swarm-up.sh 3, image {args.image})")
        subprocess.run([str(ROOT / "scripts/swarm-up.sh"), "3"], env=env, check=True, timeout=300)
        docker(
            "run", "-d", "--name", probe, "--network", f"{args.stack}_rqlite", "--entrypoint", "/rqlited",
            args.image, "-http-addr", "127.0.0.1:4001", "-raft-addr", "127.0.0.1:4002", "/tmp/probe",
        )
        pid = docker("inspect", "-f", "{{.State.Pid}}", probe).strip()
        if pid in ("", "0"):
            logs = subprocess.run(["docker", "logs", probe], capture_output=True, text=True, timeout=60)
            log(f"FAILED: the probe container is not running:\n{logs.stdout}{logs.stderr}")
            return 1
        inner_args = sys.argv[1:] + ["--stack", args.stack, "--inner", "--rqlited-kind", labels.get("rq4d.rqlited", "?")]
        proc = subprocess.run(
            ["nsenter", "-t", pid, "-n", sys.executable, str(Path(__file__).resolve()), *inner_args],
            timeout=args.max_minutes * 60,
        )
        return proc.returncode
    except subprocess.CalledProcessError as e:
        log(f"FAILED: {e}")
        return 1
    except subprocess.TimeoutExpired:
        log(f"FAILED: the check did not finish in {args.max_minutes} minutes")
        return 1
    finally:
        down()


def inner(args) -> int:
    check = SwarmCheck(args)
    check.image_label = args.rqlited_kind
    check.real_rqlited = args.rqlited_kind not in ("test-double", "?")
    try:
        check.run()
    except (Failed, CommandFailed) as e:
        check.record("(stopped)", "FAILED", str(e))
    text = check.summary()
    print()
    print(text)
    if args.summary:
        Path(args.summary).write_text(text)
    ran = sum(1 for _, outcome, _ in check.results if outcome == "ok")
    not_run = sum(1 for _, outcome, _ in check.results if outcome == "NOT RUN")
    print(f"swarm check: {ran} passed, {len(check.failures)} failed, {not_run} not run")
    return 1 if check.failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default=os.environ.get("RQ4D_IMAGE", "rq4d:test-double"))
    p.add_argument("--stack", default=f"rq4dswarm{os.getpid()}")
    p.add_argument("--reap-after", type=parse_duration, default=15.0, help="RQ4D_REAP_AFTER of the stack (default 15s)")
    p.add_argument("--update-timeout", type=parse_duration, default=300.0, help="bound on docker service update (default 300s)")
    p.add_argument("--max-minutes", type=float, default=20.0)
    p.add_argument("--summary", default=None, help="write the markdown summary to this file")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rqlited-kind", default="?", help=argparse.SUPPRESS)
    args = p.parse_args()
    return inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    sys.exit(main())
