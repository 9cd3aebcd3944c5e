"""One replica left without a quorum, then with it again.

Run by tests/tests/api_no_quorum.rs with KUBECONFIG, GANTRY_API_SERVER (the surviving replica) and
GANTRY_PHASE: `alone` while the other two replicas are dead, `quorum` after one came back.
Prints `ok - ...` per check and `all checks passed`, or raises.
"""

import os
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NS = "default"


def api():
    cfg = client.Configuration()
    config.load_kube_config(config_file=os.environ["KUBECONFIG"], client_configuration=cfg)
    cfg.host = os.environ["GANTRY_API_SERVER"]
    cfg.retries = False
    return client.ApiClient(cfg)


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok - {name}", flush=True)


def readyz(c):
    resp = c.call_api("GET", c.configuration.host + "/readyz", _request_timeout=10)
    resp.read()
    return resp.status


def alone(c):
    core = client.CoreV1Api(c)
    listed = core.list_namespaced_config_map(NS, resource_version="0", _request_timeout=10)
    check("resourceVersion=0 lists are served from the cache",
          "before" in [cm.metadata.name for cm in listed.items], f"{listed.items}")
    events = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version="0", timeout_seconds=2,
                                   _request_timeout=10):
        events.append((ev["type"], ev["object"].metadata.name))
    check("watches are served from the cache", ("ADDED", "before") in events, f"{events}")
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="during"), data={"a": "1"})
    started = time.time()
    try:
        core.create_namespaced_config_map(NS, body, _request_timeout=30)
        raise AssertionError("a write without quorum succeeded")
    except ApiException as e:
        check("writes get 503", e.status == 503, f"{e.status}: {e.body}")
        check("with Retry-After", e.headers is not None and e.headers.get("Retry-After", "").isdigit(),
              f"{e.headers}")
        check("and a ServiceUnavailable status", '"reason":"ServiceUnavailable"' in e.body.replace(" ", ""), e.body)
    check("the write fails within the request timeout", time.time() - started < 25, f"{time.time() - started:.1f}s")
    check("readyz reports not ready", readyz(c) != 200)


def quorum(c):
    core = client.CoreV1Api(c)
    deadline = time.time() + 60
    created = None
    while created is None and time.time() < deadline:
        try:
            body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after"), data={"a": "1"})
            created = core.create_namespaced_config_map(NS, body, _request_timeout=15)
        except ApiException as e:
            if e.status not in (503, 504):
                raise
            time.sleep(0.5)
    check("writes succeed again once a quorum is back", created is not None)
    names = [cm.metadata.name for cm in core.list_namespaced_config_map(NS).items]
    check("nothing was lost and nothing half-written", "before" in names and "after" in names and "during" not in names,
          f"{names}")
    check("readyz reports ready", readyz(c) == 200)


def main():
    c = api()
    {"alone": alone, "quorum": quorum}[os.environ["GANTRY_PHASE"]](c)
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
