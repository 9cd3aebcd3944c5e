"""A stream of creates and an open watch while the harness SIGKILLs the store leader.

Run by tests/tests/api_leader_kill.rs with KUBECONFIG and GANTRY_API_SERVERS (every replica's URL).
Protocol on stdio: after the first creates are acknowledged the script prints `started`; the
harness kills the leader and writes `killed`; the script goes on creating, then checks:
  - every create that got a 2xx exists afterwards (read through a surviving replica);
  - the watch, resumed from its last resourceVersion after every break, saw each object exactly
    once, in strictly increasing resourceVersion order, and saw exactly the objects that exist.
It prints `ok - ...` lines and `all checks passed`, or raises.
"""

import os
import sys
import threading
import time

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

SERVERS = os.environ["GANTRY_API_SERVERS"].split(",")
# The watch and the creates start on the leader's replica, so the kill breaks both.
LEADER = int(os.environ["GANTRY_LEADER_INDEX"])
NS = "leader-kill"
BEFORE_KILL = 40
AFTER_KILL = 60


def api_for(server):
    cfg = client.Configuration()
    config.load_kube_config(config_file=os.environ["KUBECONFIG"], client_configuration=cfg)
    cfg.host = server
    cfg.retries = False
    return client.CoreV1Api(client.ApiClient(cfg))


APIS = [api_for(s) for s in SERVERS]


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok - {name}", flush=True)


class Watcher(threading.Thread):
    """Follows configmaps in NS, resuming from the last resourceVersion through another replica
    whenever the stream breaks."""

    def __init__(self, start_rv):
        super().__init__(daemon=True)
        self.rv = start_rv
        self.events = []  # (type, name, rv)
        self.resumes = 0
        self.breaks_after_kill = 0
        self.killed = threading.Event()
        self.stop = threading.Event()

    def run(self):
        attempt = LEADER
        while not self.stop.is_set():
            api = APIS[attempt % len(APIS)]
            attempt += 1
            try:
                w = watch.Watch()
                for ev in w.stream(api.list_namespaced_config_map, NS, resource_version=self.rv,
                                   timeout_seconds=5, _request_timeout=15):
                    obj = ev["object"]
                    rv = obj.metadata.resource_version
                    self.events.append((ev["type"], obj.metadata.name, int(rv)))
                    self.rv = rv
                    if self.stop.is_set():
                        return
            except ApiException as e:
                if e.status == 410:
                    raise AssertionError(f"watch from {self.rv} expired: {e.body}")
                self.broke()
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                self.broke()
            time.sleep(0.05)

    def broke(self):
        self.resumes += 1
        if self.killed.is_set():
            self.breaks_after_kill += 1


def create_all(names, acked, state):
    for name in names:
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"n": name})
        for _ in range(20):
            api = APIS[state["server"] % len(APIS)]
            try:
                api.create_namespaced_config_map(NS, body, _request_timeout=10)
                acked.append(name)
                break
            except ApiException as e:
                if e.status == 409:
                    # An earlier attempt was committed although its answer was lost.
                    acked.append(name)
                    break
                state["server"] += 1
            except (urllib3.exceptions.HTTPError, OSError):
                state["server"] += 1
            time.sleep(0.1)


T0 = time.time()


def progress(what):
    print(f"# {time.time() - T0:6.1f}s {what}", flush=True)


def main():
    first = APIS[LEADER]
    first.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    start_rv = first.list_namespaced_config_map(NS).metadata.resource_version
    watcher = Watcher(start_rv)
    watcher.start()

    acked = []
    state = {"server": LEADER}
    create_all([f"cm-{i:04d}" for i in range(BEFORE_KILL)], acked, state)
    watcher.killed.set()  # from here on the harness may kill at any moment
    print("started", flush=True)
    line = sys.stdin.readline().strip()
    check("the harness killed the leader", line.startswith("killed"), line)
    progress("leader killed")
    create_all([f"cm-{i:04d}" for i in range(BEFORE_KILL, BEFORE_KILL + AFTER_KILL)], acked, state)
    progress(f"creates done ({len(acked)} acknowledged)")
    check("creates went on after the kill", len(acked) >= BEFORE_KILL + AFTER_KILL // 2, f"{len(acked)} acknowledged")

    # Read the outcome through any replica that answers.
    existing = None
    for _ in range(50):
        for api in APIS:
            try:
                listed = api.list_namespaced_config_map(NS, _request_timeout=10)
                existing = {cm.metadata.name: int(cm.metadata.resource_version) for cm in listed.items}
                final_rv = int(listed.metadata.resource_version)
                break
            except (ApiException, urllib3.exceptions.HTTPError, OSError):
                continue
        if existing is not None:
            break
        time.sleep(0.2)
    check("a surviving replica answers the list", existing is not None)
    missing = [n for n in acked if n not in existing]
    check("every acknowledged create exists", not missing, f"missing {missing}")

    progress("outcome read")
    deadline = time.time() + 30
    while time.time() < deadline and (not watcher.events or watcher.events[-1][2] < final_rv):
        if len({n for _, n, _ in watcher.events}) >= len(existing):
            break
        time.sleep(0.1)
    watcher.stop.set()
    progress(f"watch caught up ({len(watcher.events)} events)")
    events = list(watcher.events)
    revisions = [rv for _, _, rv in events]
    check("watch events arrive in strictly increasing resourceVersion order",
          all(a < b for a, b in zip(revisions, revisions[1:])), f"{revisions}")
    names = [n for _, n, _ in events]
    dupes = sorted({n for n in names if names.count(n) > 1})
    check("the watch saw every object exactly once", not dupes, f"duplicates {dupes}")
    check("the watch saw only ADDED events", all(t == "ADDED" for t, _, _ in events), f"{events}")
    seen = {n: rv for _, n, rv in events}
    check("the watch saw exactly the objects that exist", seen == existing,
          f"only in watch {sorted(set(seen) - set(existing))}, not in watch {sorted(set(existing) - set(seen))}")
    check("the kill broke the watch, which resumed elsewhere", watcher.breaks_after_kill >= 1,
          f"{watcher.resumes} resumes")
    print(f"acknowledged {len(acked)}, existing {len(existing)}, events {len(events)}, resumes {watcher.resumes}")
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
