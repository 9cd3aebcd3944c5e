"""The official Python `kubernetes` client against a Gantry API server.

Run by tests/tests/python_client.rs with KUBECONFIG pointing at the admin kubeconfig and
GANTRY_API_SERVERS listing every replica's URL. Each check raises on failure; the script prints
one line per passed check and exits non-zero on the first failure.
"""

import json
import os
import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

SERVERS = os.environ["GANTRY_API_SERVERS"].split(",")
NS = "py-suite"


def api_for(server):
    cfg = client.Configuration()
    config.load_kube_config(config_file=os.environ["KUBECONFIG"], client_configuration=cfg)
    cfg.host = server
    return client.CoreV1Api(client.ApiClient(cfg))


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok - {name}")


def expect_status(name, code, fn):
    try:
        fn()
    except ApiException as e:
        check(name, e.status == code, f"expected {code}, got {e.status}: {e.body}")
        return e
    raise AssertionError(f"{name}: expected HTTP {code}, call succeeded")


def main():
    a, b, c = (api_for(s) for s in (SERVERS * 3)[:3])

    a.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    check("namespace visible through another replica", b.read_namespace(NS).status.phase == "Active")

    # CRUD
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one", labels={"app": "x"}), data={"k": "v"})
    created = a.create_namespaced_config_map(NS, cm)
    check("create returns uid and resourceVersion", created.metadata.uid and created.metadata.resource_version)
    got = b.read_namespaced_config_map("one", NS)
    check("read through another replica", got.data == {"k": "v"})
    got.data["k"] = "v2"
    replaced = c.replace_namespaced_config_map("one", NS, got)
    check("replace moves the resourceVersion", int(replaced.metadata.resource_version) > int(created.metadata.resource_version))
    stale = got
    stale.metadata.resource_version = created.metadata.resource_version
    stale.data["k"] = "stale"
    e = expect_status("409 on a stale resourceVersion", 409, lambda: a.replace_namespaced_config_map("one", NS, stale))
    check("409 reason is Conflict", '"reason":"Conflict"' in e.body.replace(" ", ""), e.body)
    expect_status("409 AlreadyExists on a duplicate create", 409, lambda: a.create_namespaced_config_map(NS, cm))
    expect_status("404 on a missing object", 404, lambda: a.read_namespaced_config_map("nope", NS))
    bad = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_Valid"))
    e = expect_status("422 on an invalid name", 422, lambda: a.create_namespaced_config_map(NS, bad))
    check("422 names the field", "metadata.name" in e.body, e.body)
    a.patch_namespaced_config_map("one", NS, {"metadata": {"labels": {"tier": "web"}}})
    check("patch adds a label", b.read_namespaced_config_map("one", NS).metadata.labels == {"app": "x", "tier": "web"})

    # Selectors and paging
    for i in range(7):
        a.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"page-{i}", labels={"page": "yes", "n": str(i % 2)}))
        )
    sel = b.list_namespaced_config_map(NS, label_selector="page=yes,n in (1)")
    check("label selector with in()", sorted(x.metadata.name for x in sel.items) == ["page-1", "page-3", "page-5"])
    fsel = b.list_namespaced_config_map(NS, field_selector="metadata.name=page-2")
    check("field selector", [x.metadata.name for x in fsel.items] == ["page-2"])
    names, token, pages = [], None, 0
    while True:
        page = c.list_namespaced_config_map(NS, label_selector="page=yes", limit=3, _continue=token)
        names += [x.metadata.name for x in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    check("limit/continue pages through every item once", names == [f"page-{i}" for i in range(7)] and pages == 3, f"{names} in {pages} pages")
    expect_status("400 on a garbage continue token", 400, lambda: c.list_namespaced_config_map(NS, _continue="garbage"))

    # Watch resumed from a resourceVersion, seeing every later change once and in order.
    start_rv = a.list_namespaced_config_map(NS).metadata.resource_version
    for i in range(3):
        a.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"w-{i}")))
    a.delete_namespaced_config_map("w-1", NS)
    w = watch.Watch()
    seen = []
    for ev in w.stream(b.list_namespaced_config_map, NS, resource_version=start_rv, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 4:
            w.stop()
    check("watch from a resourceVersion", seen == [("ADDED", "w-0"), ("ADDED", "w-1"), ("ADDED", "w-2"), ("DELETED", "w-1")], str(seen))

    # Bookmarks: an idle watch that allows them gets one with a resourceVersion.
    w = watch.Watch()
    bookmark = None
    rv = a.list_namespaced_config_map(NS).metadata.resource_version
    for ev in w.stream(c.list_namespaced_config_map, NS, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=15):
        if ev["type"] == "BOOKMARK":
            bookmark = ev["object"]
            w.stop()
    check("bookmark arrives with a resourceVersion", bookmark is not None and int(bookmark["metadata"]["resourceVersion"]) >= int(rv), str(bookmark))

    # watch=True (what client v29 sends) through the raw API
    a.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="capital-true")))
    url = f"{a.api_client.configuration.host}/api/v1/namespaces/{NS}/configmaps?watch=True&resourceVersion={rv}&timeoutSeconds=1"
    body = a.api_client.rest_client.pool_manager.request("GET", url).data.decode()
    first = json.loads(body.splitlines()[0])
    check("watch=True is a watch, not a list", first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "capital-true", body[:200])

    # A watch started while events keep coming sees them live.
    got_live = threading.Event()

    def watcher():
        w2 = watch.Watch()
        for ev in w2.stream(b.list_namespaced_config_map, NS, field_selector="metadata.name=live", timeout_seconds=10):
            if ev["type"] == "ADDED":
                got_live.set()
                w2.stop()

    t = threading.Thread(target=watcher)
    t.start()
    # The watch lists first (empty) and then waits; creating after it started must be seen.
    while not got_live.is_set() and t.is_alive():
        try:
            a.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="live")))
        except ApiException as e:
            if e.status != 409:
                raise
        got_live.wait(0.5)
    t.join()
    check("live watch with a field selector", got_live.is_set())

    a.delete_namespaced_config_map("one", NS)
    expect_status("deleted object is gone", 404, lambda: b.read_namespaced_config_map("one", NS))
    print("all checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure and exit non-zero
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
