//! Simulated nodes (`gantry-sim-nodes`) against a real 3-replica cluster: nodes register Ready with the
//! configured capacity and keep renewing their Leases; pods bound to them go Running/Ready with an IP,
//! finish as their annotations say and complete graceful deletion; a node whose heartbeats are stopped
//! stops renewing its Lease and leaves its pods alone until resumed. The control plane runs its own
//! controllers (a node lifecycle controller may taint stale nodes), so the assertions only look at
//! what the simulated kubelet owns.

use std::future::Future;
use std::time::{Duration, Instant};

use gantry_sim_nodes::{client_from_kubeconfig, SimConfig, SimNodes, EXIT_CODE, RUN_SECONDS};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing with `what` and the last observation after DEADLINE.
async fn eventually<T, Fut: Future<Output = Result<T, String>>>(what: &str, check: impl FnMut() -> Fut) -> T {
    gantry_tests::poll::eventually(what, DEADLINE, check).await
}

fn pod(name: &str, node: &str, annotations: serde_json::Value, policy: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"nodeName": node, "restartPolicy": policy,
                 "containers": [{"name": "app", "image": "registry.example/app:1"}]}
    }))
    .expect("pod json")
}

fn condition(pod: &Pod, type_: &str) -> Option<String> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).map(|c| c.status.clone())
}

fn phase(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.phase.clone()
}

async fn renew_time(leases: &Api<Lease>, node: &str) -> Result<Timestamp, String> {
    let lease = leases.get(node).await.map_err(|e| format!("get lease {node}: {e}"))?;
    let spec = lease.spec.unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(node) {
        return Err(format!("lease {node} held by {:?}", spec.holder_identity));
    }
    spec.renew_time.map(|t| t.0).ok_or_else(|| format!("lease {node} has no renewTime"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_nodes_register_heartbeat_and_run_pods() {
    let (cluster, _kubectl, _work) = gantry_tests::kube::start_api_cluster().await;
    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client from admin kubeconfig");
    let config = SimConfig {
        nodes: 3,
        name_prefix: "simtest-".to_string(),
        cpu: "4".to_string(),
        memory: "16Gi".to_string(),
        pods: 50,
        lease_interval: Duration::from_millis(500),
        status_interval: Duration::from_secs(5),
        ..SimConfig::default()
    };
    let sim = SimNodes::start(client.clone(), config).await.expect("start simulated nodes");
    let names = sim.node_names();
    assert_eq!(names, ["simtest-0", "simtest-1", "simtest-2"]);

    // --- registration --------------------------------------------------------------------------------
    let nodes: Api<Node> = Api::all(client.clone());
    for name in &names {
        let node = nodes.get(name).await.expect("node registered");
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("kubernetes.io/hostname"), Some(name));
        assert_eq!(labels.get("type").map(String::as_str), Some("sim"));
        let status = node.status.clone().unwrap_or_default();
        let capacity = status.capacity.unwrap_or_default();
        assert_eq!(capacity.get("cpu"), Some(&Quantity("4".into())), "{name} capacity");
        assert_eq!(capacity.get("memory"), Some(&Quantity("16Gi".into())), "{name} capacity");
        assert_eq!(capacity.get("pods"), Some(&Quantity("50".into())), "{name} capacity");
        assert_eq!(status.allocatable.unwrap_or_default().get("pods"), Some(&Quantity("50".into())));
        let ready = status.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status).as_deref(), Some("True"), "{name} Ready");
        assert!(
            status.node_info.is_some_and(|i| i.kubelet_version == "v1.33.0-gantry-sim"),
            "{name} reports the simulated kubelet version"
        );
    }

    // --- leases are renewed --------------------------------------------------------------------------
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for name in &names {
        let first = renew_time(&leases, name).await.expect("lease created at registration");
        eventually(&format!("lease {name} renewed"), || async {
            let now = renew_time(&leases, name).await?;
            if now > first {
                Ok(())
            } else {
                Err(format!("renewTime still {now}"))
            }
        })
        .await;
    }

    // --- a bound pod runs ----------------------------------------------------------------------------
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("web", "simtest-0", json!({}), "Always")).await.expect("create web");
    let web = eventually("web Running and Ready", || async {
        let p = pods.get("web").await.map_err(|e| e.to_string())?;
        if phase(&p).as_deref() == Some("Running") && condition(&p, "Ready").as_deref() == Some("True") {
            Ok(p)
        } else {
            Err(format!("{:?}", p.status))
        }
    })
    .await;
    let status = web.status.clone().unwrap_or_default();
    assert!(status.pod_ip.as_deref().is_some_and(|ip| ip.starts_with("10.")), "pod ip {:?}", status.pod_ip);
    assert!(status.host_ip.is_some() && status.start_time.is_some(), "{status:?}");
    let containers = status.container_statuses.unwrap_or_default();
    assert_eq!(containers.len(), 1);
    assert!(containers[0].ready && containers[0].state.as_ref().is_some_and(|s| s.running.is_some()));

    // --- a pod that exits 0 with restartPolicy Never succeeds ------------------------------------------
    let job = pod("once", "simtest-2", json!({RUN_SECONDS: "1", EXIT_CODE: "0"}), "Never");
    pods.create(&PostParams::default(), &job).await.expect("create once");
    let once = eventually("once Succeeded", || async {
        let p = pods.get("once").await.map_err(|e| e.to_string())?;
        if phase(&p).as_deref() == Some("Succeeded") {
            Ok(p)
        } else {
            Err(format!("{:?}", p.status))
        }
    })
    .await;
    let term = once
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.state)
        .and_then(|s| s.terminated);
    assert_eq!(term.map(|t| (t.exit_code, t.reason)), Some((0, Some("Completed".to_string()))));

    // --- graceful deletion completes -----------------------------------------------------------------
    pods.delete("web", &DeleteParams::default()).await.expect("delete web");
    eventually("web removed", || async {
        match pods.get_opt("web").await {
            Ok(None) => Ok(()),
            Ok(Some(p)) => Err(format!("still there, deletionTimestamp {:?}", p.metadata.deletion_timestamp)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;

    // --- stopped heartbeats ------------------------------------------------------------------------
    sim.stop_heartbeats("simtest-1");
    // A renewal may be in flight when heartbeats stop; the value after it is the frozen one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let frozen = renew_time(&leases, "simtest-1").await.expect("lease of stopped node");
    let alive_before = renew_time(&leases, "simtest-0").await.expect("lease of live node");
    pods.create(&PostParams::default(), &pod("orphan", "simtest-1", json!({}), "Always")).await.expect("create orphan");
    // Absence of renewals can only be observed over time: eight lease intervals.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(renew_time(&leases, "simtest-1").await.expect("lease"), frozen, "stopped node renewed its lease");
    assert!(renew_time(&leases, "simtest-0").await.expect("lease") > alive_before, "live node stopped renewing");
    let orphan = pods.get("orphan").await.expect("orphan");
    assert_ne!(phase(&orphan).as_deref(), Some("Running"), "a dead node started a pod");

    // --- resumed heartbeats ------------------------------------------------------------------------
    sim.resume_heartbeats("simtest-1");
    eventually("simtest-1 lease renewed after resume", || async {
        let now = renew_time(&leases, "simtest-1").await?;
        if now > frozen {
            Ok(())
        } else {
            Err(format!("renewTime still {now}"))
        }
    })
    .await;
    eventually("orphan Running after resume", || async {
        let p = pods.get("orphan").await.map_err(|e| e.to_string())?;
        if phase(&p).as_deref() == Some("Running") {
            Ok(())
        } else {
            Err(format!("{:?}", p.status))
        }
    })
    .await;
    eventually("simtest-1 Ready after resume", || async {
        let n = nodes.get("simtest-1").await.map_err(|e| e.to_string())?;
        let ready = n.status.and_then(|s| s.conditions).unwrap_or_default().into_iter().find(|c| c.type_ == "Ready");
        match ready {
            Some(c) if c.status == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    sim.shutdown().await;
    drop(cluster);
}

/// Scale smoke test (run explicitly with `--ignored`): 1,000 nodes register, and a burst of 1,000 pods
/// bound across them all turns Running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 1,000 simulated nodes"]
async fn a_thousand_nodes_run_a_burst_of_pods() {
    use futures::{StreamExt, TryStreamExt};
    let (cluster, _kubectl, _work) = gantry_tests::kube::start_api_cluster().await;
    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client from admin kubeconfig");
    let started = Instant::now();
    let config = SimConfig { nodes: 1000, name_prefix: "scale-".to_string(), ..SimConfig::default() };
    let sim = SimNodes::start(client.clone(), config).await.expect("start simulated nodes");
    eprintln!("1000 nodes registered in {:?}", started.elapsed());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = Instant::now();
    futures::stream::iter(0..1000)
        .map(|i| {
            let pods = pods.clone();
            async move {
                pods.create(
                    &PostParams::default(),
                    &pod(&format!("burst-{i}"), &format!("scale-{i}"), json!({}), "Always"),
                )
                .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create pods");
    eprintln!("1000 pods created in {:?}", created.elapsed());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = pods.list(&Default::default()).await.expect("list pods");
        let running = list.items.iter().filter(|p| phase(p).as_deref() == Some("Running")).count();
        if running == 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "only {running} of 1000 pods Running");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("1000 pods Running {:?} after creation started", created.elapsed());
    sim.shutdown().await;
    drop(cluster);
}
