//! The control-plane replica leading Raft (which runs the scheduler and the controllers) is SIGKILLed in
//! the middle of a Deployment rolling update: another replica takes over within a few seconds, the
//! rollout completes, no pod is created twice for the same slot and no old pod is leaked.
//!
//! Every client (the pod watch, the simulated nodes, kubectl) talks to a replica that is not killed, so
//! the watch sees every pod creation of the whole scenario without a gap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gantry_sim_nodes::{SimConfig, SimNodes};
use gantry_tests::cluster::ProcessCluster;
use gantry_tests::poll::eventually;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::json;

const REPLICAS: usize = 6;
const HASH: &str = "pod-template-hash";
const OLD_IMAGE: &str = "registry.example/web:1";
const NEW_IMAGE: &str = "registry.example/web:2";
/// How long a new leader may take to elect itself and get its controllers acting again.
const TAKEOVER_BOUND: Duration = Duration::from_secs(15);

fn manifest(image: &str) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": REPLICAS,
            // Slows every rollout step down so the kill lands while the rollout is half done.
            "minReadySeconds": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "web", "image": image}]}
            }
        }
    })
    .to_string()
}

/// A kube client for the admin kubeconfig, pointed at `url` (one replica) instead of the kubeconfig's server.
async fn client_for(kubeconfig: &std::path::Path, url: &str) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read admin kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kubeconfig config");
    config.cluster_url = url.parse().expect("replica url");
    kube::Client::try_from(config).expect("kube client")
}

fn is_ready(p: &Pod) -> bool {
    let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn hash_of(p: &Pod) -> String {
    p.metadata.labels.as_ref().and_then(|l| l.get(HASH)).cloned().unwrap_or_default()
}

fn rv_of(p: &Pod) -> u64 {
    p.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// One pod the watch ever saw.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    hash: String,
    /// Resource version the pod had when first seen (its creation, unless first seen in a re-list).
    first_rv: u64,
    deleted: bool,
}

/// Every pod of the Deployment the watch ever saw, by uid, plus the live ones.
#[derive(Default)]
struct PodWatch {
    synced: bool,
    ever: BTreeMap<String, Seen>,
    live: BTreeMap<String, Pod>,
}

impl PodWatch {
    fn observe(&mut self, pod: Pod, deleted: bool) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let entry = self.ever.entry(uid.clone()).or_insert_with(|| Seen {
            name: pod.metadata.name.clone().unwrap_or_default(),
            hash: hash_of(&pod),
            first_rv: rv_of(&pod),
            deleted: false,
        });
        if deleted {
            entry.deleted = true;
            self.live.remove(&uid);
        } else {
            self.live.insert(uid, pod);
        }
    }

    fn created_with_hash(&self, hash: &str) -> Vec<&Seen> {
        self.ever.values().filter(|s| s.hash == hash).collect()
    }

    fn ready_with_hash(&self, hash: &str) -> usize {
        self.live
            .values()
            .filter(|p| hash_of(p) == hash && p.metadata.deletion_timestamp.is_none() && is_ready(p))
            .count()
    }

    fn summary(&self) -> String {
        let live: Vec<String> = self
            .live
            .values()
            .map(|p| {
                format!(
                    "{}[{}{}{}]",
                    p.metadata.name.as_deref().unwrap_or(""),
                    hash_of(p),
                    if is_ready(p) { " ready" } else { "" },
                    if p.metadata.deletion_timestamp.is_some() { " terminating" } else { "" }
                )
            })
            .collect();
        format!("{} pods ever seen, live: {live:?}", self.ever.len())
    }
}

fn spawn_pod_watch(pods: Api<Pod>) -> Arc<Mutex<PodWatch>> {
    let state = Arc::new(Mutex::new(PodWatch::default()));
    let s = state.clone();
    tokio::spawn(async move {
        // With back-off, a watch whose cluster is gone sleeps between retries instead of spinning,
        // so the runtime can cancel this task when the test ends.
        let stream = watcher(pods, watcher::Config::default().labels("app=web")).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let mut w = s.lock().expect("watch state");
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => w.observe(p, false),
                Ok(watcher::Event::Delete(p)) => w.observe(p, true),
                Ok(watcher::Event::InitDone) => w.synced = true,
                Ok(watcher::Event::Init) | Err(_) => {}
            }
        }
    });
    state
}

/// (name, hash, spec.replicas) of the Deployment's ReplicaSets.
async fn replica_sets(sets: &Api<ReplicaSet>) -> Result<Vec<(String, String, i32)>, String> {
    let list = sets.list(&ListParams::default().labels("app=web")).await.map_err(|e| e.to_string())?;
    let mut out: Vec<(String, String, i32)> = list
        .items
        .iter()
        .map(|rs| {
            let hash = rs.metadata.labels.as_ref().and_then(|l| l.get(HASH)).cloned().unwrap_or_default();
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            (rs.metadata.name.clone().unwrap_or_default(), hash, replicas)
        })
        .collect();
    out.sort();
    Ok(out)
}

fn logs(cluster: &ProcessCluster, replicas: &[usize]) -> String {
    replicas.iter().map(|i| format!("--- replica {i} log tail ---\n{}\n", cluster.log_tail(*i))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_mid_rollout_completes_without_duplicate_or_leaked_pods() {
    let (mut cluster, kubectl, work) = gantry_tests::kube::start_api_cluster().await;
    let first_leader = cluster.wait_for_leader(Duration::from_secs(30)).await.expect("leader");
    let survivor = (first_leader + 1) % cluster.size();
    let server = cluster.api_url(survivor).expect("api url");
    println!("# leader is replica {first_leader}; clients use replica {survivor} ({server})");

    let client = client_for(&cluster.kubeconfig(), &server).await;
    let config = SimConfig { nodes: 3, name_prefix: "killsim-".to_string(), ..SimConfig::default() };
    let sim = SimNodes::start(client.clone(), config).await.expect("start simulated nodes");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let watch = spawn_pod_watch(pods.clone());
    eventually("the pod watch to sync", Duration::from_secs(30), || async {
        if watch.lock().expect("watch state").synced {
            Ok(())
        } else {
            Err("not synced".to_string())
        }
    })
    .await;
    let k = |args: &[&str]| kubectl.ok(&server, args);
    let file = work.path().join("web.json");

    // Revision 1, fully rolled out.
    std::fs::write(&file, manifest(OLD_IMAGE)).expect("write manifest");
    k(&["apply", "-f", file.to_str().expect("path")]);
    let out = k(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let initial = replica_sets(&sets).await.expect("list replicasets");
    assert_eq!(initial.len(), 1, "{initial:?}");
    let old_hash = initial[0].1.clone();
    assert!(!old_hash.is_empty(), "{initial:?}");

    // Start the update and wait until it is part way: some new pods ready, most still to come.
    k(&["set", "image", "deployment/web", &format!("web={NEW_IMAGE}")]);
    let new_hash = eventually("the new ReplicaSet", Duration::from_secs(30), || async {
        let sets = replica_sets(&sets).await?;
        sets.iter().find(|s| s.1 != old_hash).map(|s| s.1.clone()).ok_or(format!("{sets:?}"))
    })
    .await;
    eventually("the rollout to be part way", Duration::from_secs(60), || async {
        let w = watch.lock().expect("watch state");
        let ready = w.ready_with_hash(&new_hash);
        if (1..=REPLICAS / 2).contains(&ready) {
            Ok(())
        } else {
            Err(format!("{ready} new pods ready: {}", w.summary()))
        }
    })
    .await;

    // SIGKILL whoever leads now; leadership could have moved since the start.
    let leader = cluster.leader_index().await.expect("leader status").expect("a leader");
    assert_ne!(leader, survivor, "leadership moved to the replica the clients use; cannot run the scenario");
    let before = watch.lock().expect("watch state").summary();
    cluster.kill(leader).expect("SIGKILL the leader");
    let killed_at = Instant::now();
    println!("# killed leader replica {leader} mid-rollout; state then: {before}");

    let new_leader = cluster
        .wait_for_leader(TAKEOVER_BOUND)
        .await
        .unwrap_or_else(|e| panic!("no new leader within {TAKEOVER_BOUND:?}: {e}\n{}", logs(&cluster, &[0, 1, 2])));
    let elected = killed_at.elapsed();
    println!("# replica {new_leader} leads after {elected:?}");
    assert_ne!(new_leader, leader);

    // A linearizable list on the survivor after the election: every write the dead leader's controllers
    // got committed is at or below its resource version, so a later pod creation is the new leader's.
    let horizon = eventually("a pod list on the survivor", TAKEOVER_BOUND, || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.map_err(|e| e.to_string())?;
        list.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()).ok_or(format!("{list:?}"))
    })
    .await;
    let remaining = TAKEOVER_BOUND.saturating_sub(killed_at.elapsed());
    let acted = eventually("the new leader's controllers to create a pod", remaining, || async {
        let w = watch.lock().expect("watch state");
        if w.created_with_hash(&new_hash).iter().any(|s| s.first_rv > horizon) {
            Ok(killed_at.elapsed())
        } else {
            Err(w.summary())
        }
    })
    .await;
    println!("# controllers created a pod {acted:?} after the kill (leader elected after {elected:?})");
    assert!(acted <= TAKEOVER_BOUND, "controllers acted again only after {acted:?}");

    let out = kubectl.run(&server, &["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("successfully rolled out"),
        "rollout did not complete after the leader kill: {}{}\nwatch: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        watch.lock().expect("watch state").summary(),
        logs(&cluster, &[survivor, new_leader])
    );

    // Settled: exactly the new template's pods, none terminating, every old pod deleted.
    eventually("exactly 6 new pods and nothing else", Duration::from_secs(60), || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.map_err(|e| e.to_string())?;
        let new_ready = list
            .items
            .iter()
            .filter(|p| hash_of(p) == new_hash && p.metadata.deletion_timestamp.is_none() && is_ready(p))
            .count();
        let w = watch.lock().expect("watch state");
        let old_left = w.created_with_hash(&old_hash).iter().filter(|s| !s.deleted).count();
        if list.items.len() == REPLICAS && new_ready == REPLICAS && old_left == 0 {
            Ok(())
        } else {
            Err(format!(
                "{} pods listed, {new_ready} new ready, {old_left} old not deleted; {}",
                list.items.len(),
                w.summary()
            ))
        }
    })
    .await;

    {
        let w = watch.lock().expect("watch state");
        let created_new = w.created_with_hash(&new_hash);
        assert_eq!(
            created_new.len(),
            REPLICAS,
            "pods ever created for the new ReplicaSet (a duplicate create or a replacement): {created_new:#?}\n{}",
            logs(&cluster, &[survivor, new_leader])
        );
        assert!(created_new.iter().all(|s| !s.deleted), "a new pod was deleted: {created_new:#?}");
        let created_old = w.created_with_hash(&old_hash);
        assert_eq!(created_old.len(), REPLICAS, "pods ever created for the old ReplicaSet: {created_old:#?}");
        let others: Vec<&Seen> = w.ever.values().filter(|s| s.hash != old_hash && s.hash != new_hash).collect();
        assert!(others.is_empty(), "pods of neither ReplicaSet: {others:#?}");
        println!("# pods ever created: {} old, {} new", created_old.len(), created_new.len());
        let names: Vec<&str> = created_new.iter().map(|s| s.name.as_str()).collect();
        println!("# new pods: {names:?}");
    }

    let final_sets = replica_sets(&sets).await.expect("list replicasets");
    assert_eq!(final_sets.len(), 2, "exactly one ReplicaSet per template: {final_sets:?}");
    assert!(final_sets.iter().any(|s| s.1 == old_hash && s.2 == 0), "old ReplicaSet scaled to 0: {final_sets:?}");
    assert!(
        final_sets.iter().any(|s| s.1 == new_hash && s.2 == REPLICAS as i32),
        "new ReplicaSet at {REPLICAS}: {final_sets:?}"
    );

    sim.shutdown().await;
    drop(cluster);
}
