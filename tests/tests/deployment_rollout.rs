//! Deployments against a real 3-replica cluster whose controller manager runs the scheduler and the
//! Deployment and ReplicaSet controllers, with simulated nodes running the pods: scaling, a rolling
//! update watched pod by pod against its maxSurge/maxUnavailable bounds, `kubectl rollout status`,
//! `undo`, `pause` and `resume`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gantry_sim_nodes::{client_from_kubeconfig, SimConfig, SimNodes};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::json;

use gantry_tests::poll::eventually;

const REPLICAS: usize = 3;
const MAX_SURGE: usize = 1;
const MAX_UNAVAILABLE: usize = 1;

fn manifest(image: &str) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": MAX_UNAVAILABLE}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        }
    })
    .to_string()
}

fn is_ready(p: &Pod) -> bool {
    let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn image(p: &Pod) -> String {
    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default()
}

/// The live (not terminating) pods of the Deployment, as the watch shows them over time.
#[derive(Default)]
struct PodWatch {
    live: BTreeMap<String, Pod>,
    /// (live, ready) after every event, once tracking started.
    samples: Vec<(usize, usize)>,
    tracking: bool,
}

impl PodWatch {
    fn observe(&mut self, pod: Pod, deleted: bool) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if deleted || pod.metadata.deletion_timestamp.is_some() {
            self.live.remove(&name);
        } else {
            self.live.insert(name, pod);
        }
        if self.tracking {
            let ready = self.live.values().filter(|p| is_ready(p)).count();
            self.samples.push((self.live.len(), ready));
        }
    }

    fn ready_with_image(&self, want: &str) -> usize {
        self.live.values().filter(|p| is_ready(p) && image(p) == want).count()
    }
}

fn spawn_pod_watch(pods: Api<Pod>) -> Arc<Mutex<PodWatch>> {
    let state = Arc::new(Mutex::new(PodWatch::default()));
    let s = state.clone();
    tokio::spawn(async move {
        // With back-off the stream waits between retries once the cluster is gone; without it, it
        // retries in a busy loop that never yields, and the runtime cannot shut down at the end.
        let stream = watcher(pods, watcher::Config::default().labels("app=web")).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let mut w = s.lock().expect("watch state");
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => w.observe(p, false),
                Ok(watcher::Event::Delete(p)) => w.observe(p, true),
                Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => {}
            }
        }
    });
    state
}

async fn revision_sets(sets: &Api<ReplicaSet>) -> Vec<(String, String, i32)> {
    let list = sets.list(&ListParams::default().labels("app=web")).await.expect("list replicasets").items;
    let mut out: Vec<(String, String, i32)> = list
        .iter()
        .map(|rs| {
            let rev =
                rs.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision")).cloned();
            let image = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.spec.as_ref());
            let image = image.and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default();
            (rev.unwrap_or_default(), image, rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_scale_roll_out_within_bounds_and_roll_back() {
    // Step timings go to stderr, so a slow or stuck run shows where its time went.
    let t0 = Instant::now();
    let step = |what: &str| eprintln!("deployment_rollout {:>7.1}s: {what}", t0.elapsed().as_secs_f64());
    let (cluster, kubectl, work) = gantry_tests::kube::start_api_cluster().await;
    step("cluster ready");
    let server = cluster.api_url(0).expect("api url");
    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client from admin kubeconfig");
    let config = SimConfig { nodes: 2, name_prefix: "deploysim-".to_string(), ..SimConfig::default() };
    let sim = SimNodes::start(client.clone(), config).await.expect("start simulated nodes");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let watch = spawn_pod_watch(pods.clone());
    let k = |args: &[&str]| kubectl.ok(&server, args);
    let file = work.path().join("web.json");

    step("simulated nodes started");
    // Create: one ReplicaSet at revision 1, rolled out.
    std::fs::write(&file, manifest("registry.example/web:1")).expect("write manifest");
    k(&["apply", "-f", file.to_str().expect("path")]);
    let out = k(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(revision_sets(&sets).await, [("1".to_string(), "registry.example/web:1".to_string(), 3)]);

    step("created and rolled out");
    // Scale up and down.
    k(&["scale", "deployment/web", "--replicas=5"]);
    eventually("5 ready pods", Duration::from_secs(60), || async {
        let w = watch.lock().expect("watch state");
        let ready = w.ready_with_image("registry.example/web:1");
        if ready == 5 && w.live.len() == 5 {
            Ok(())
        } else {
            Err(format!("{ready} ready of {}", w.live.len()))
        }
    })
    .await;
    k(&["scale", "deployment/web", "--replicas=3"]);
    eventually("3 live pods", Duration::from_secs(60), || async {
        let n = watch.lock().expect("watch state").live.len();
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} live pods"))
        }
    })
    .await;
    let out = k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");

    step("scaled up and down");
    // Rolling update, watched pod by pod.
    watch.lock().expect("watch state").tracking = true;
    k(&["set", "image", "deployment/web", "web=registry.example/web:2"]);
    let out = k(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    eventually("3 ready v2 pods and nothing else", Duration::from_secs(60), || async {
        let w = watch.lock().expect("watch state");
        let ready = w.ready_with_image("registry.example/web:2");
        if ready == 3 && w.live.len() == 3 {
            Ok(())
        } else {
            Err(format!("{ready} ready v2 of {}", w.live.len()))
        }
    })
    .await;
    {
        let mut w = watch.lock().expect("watch state");
        w.tracking = false;
        assert!(w.samples.len() >= 6, "the rollout was observed: {:?}", w.samples);
        for (i, (live, ready)) in w.samples.iter().enumerate() {
            assert!(
                *live <= REPLICAS + MAX_SURGE,
                "sample {i}: {live} live pods exceed replicas + maxSurge: {:?}",
                w.samples
            );
            assert!(
                *ready >= REPLICAS - MAX_UNAVAILABLE,
                "sample {i}: {ready} ready pods below replicas - maxUnavailable: {:?}",
                w.samples
            );
        }
        w.samples.clear();
    }
    assert_eq!(
        revision_sets(&sets).await,
        [
            ("1".to_string(), "registry.example/web:1".to_string(), 0),
            ("2".to_string(), "registry.example/web:2".to_string(), 3)
        ]
    );
    let described = k(&["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
    assert!(described.contains("Scaled up replica set web-"), "{described}");

    step("rolled out v2 within bounds");
    // Undo: the revision 1 ReplicaSet comes back as revision 3.
    k(&["rollout", "undo", "deployment/web"]);
    let out = k(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = deployments.get("web").await.expect("get deployment");
    let template_image = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|s| s.containers.first());
    assert_eq!(template_image.and_then(|c| c.image.as_deref()), Some("registry.example/web:1"));
    assert_eq!(
        d.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision")).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        revision_sets(&sets).await,
        [
            ("2".to_string(), "registry.example/web:2".to_string(), 0),
            ("3".to_string(), "registry.example/web:1".to_string(), 3)
        ]
    );
    let history = k(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('2') && history.contains('3'), "{history}");

    step("undone to revision 3");
    // Pause: a template change makes no new ReplicaSet until resumed.
    k(&["rollout", "pause", "deployment/web"]);
    k(&["set", "image", "deployment/web", "web=registry.example/web:3"]);
    eventually("the paused condition", Duration::from_secs(30), || async {
        let d = deployments.get("web").await.map_err(|e| e.to_string())?;
        let observed = d.metadata.generation <= d.status_observed_generation();
        let conditions = d.status.and_then(|s| s.conditions).unwrap_or_default();
        let paused =
            conditions.iter().any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused"));
        if paused && observed {
            Ok(())
        } else {
            Err(format!("{conditions:?}"))
        }
    })
    .await;
    assert_eq!(revision_sets(&sets).await.len(), 2, "no rollout while paused");
    k(&["rollout", "resume", "deployment/web"]);
    let out = k(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let revs = revision_sets(&sets).await;
    assert!(revs.contains(&("4".to_string(), "registry.example/web:3".to_string(), 3)), "{revs:?}");

    step("paused and resumed");
    sim.shutdown().await;
    drop(cluster);
}

trait ObservedGeneration {
    fn status_observed_generation(&self) -> Option<i64>;
}

impl ObservedGeneration for Deployment {
    fn status_observed_generation(&self) -> Option<i64> {
        self.status.as_ref().and_then(|s| s.observed_generation)
    }
}
