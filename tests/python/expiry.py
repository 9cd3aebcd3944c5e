"""410 Gone after compaction, through the official Python client.

Run by tests/tests/python_expiry.rs with KUBECONFIG, GANTRY_API_SERVER and GANTRY_STAGE:
  before: creates ConfigMaps, reads a first page (limit=1) and prints {"token", "rv"} as JSON;
  after (the harness compacted the store in between; GANTRY_TOKEN, GANTRY_RV set): continuing the
  list and watching from the old resourceVersion both fail with 410 Expired.
Prints `ok - ...` per check and `all checks passed`, or raises.
"""

import json
import os

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NS = "expiry"


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok - {name}", flush=True)


def core():
    cfg = client.Configuration()
    config.load_kube_config(config_file=os.environ["KUBECONFIG"], client_configuration=cfg)
    cfg.host = os.environ["GANTRY_API_SERVER"]
    return client.CoreV1Api(client.ApiClient(cfg))


def before(api):
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    for i in range(3):
        api.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i}")))
    page = api.list_namespaced_config_map(NS, limit=1)
    check("the first page has a continue token", bool(page.metadata._continue))
    print(json.dumps({"token": page.metadata._continue, "rv": page.metadata.resource_version}), flush=True)


def after(api):
    try:
        api.list_namespaced_config_map(NS, limit=1, _continue=os.environ["GANTRY_TOKEN"])
        raise AssertionError("continuing a compacted list succeeded")
    except ApiException as e:
        check("a continue token older than the compaction gets 410", e.status == 410, f"{e.status}: {e.body}")
        check("with reason Expired", json.loads(e.body).get("reason") == "Expired", e.body)
    try:
        for _ in watch.Watch().stream(api.list_namespaced_config_map, NS, resource_version=os.environ["GANTRY_RV"],
                                      timeout_seconds=5):
            raise AssertionError("a watch from a compacted resourceVersion delivered an event")
        raise AssertionError("a watch from a compacted resourceVersion ended without an error")
    except ApiException as e:
        check("a watch from a compacted resourceVersion gets 410", e.status == 410, f"{e.status}: {e}")
    fresh = api.list_namespaced_config_map(NS)
    check("a fresh list works after compaction", len(fresh.items) == 3, f"{len(fresh.items)} items")


def main():
    {"before": before, "after": after}[os.environ["GANTRY_STAGE"]](core())
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
