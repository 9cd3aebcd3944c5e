//! Jobs against a real 3-replica cluster whose controller manager runs the Job controller, with
//! simulated nodes running the pods (they finish as their `sim.gantry.dev/*` annotations say).
//!
//! Pods are pinned to a simulated node through `nodeName`, so these tests exercise the Job controller
//! and not the scheduler.

use std::time::Duration;

use gantry_sim_nodes::{client_from_kubeconfig, SimConfig, SimNodes, EXIT_CODE, RUN_SECONDS};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;
use serde_json::json;

use gantry_tests::poll::eventually;

const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

fn job_manifest(name: &str, node: &str, completions: i32, parallelism: i32, backoff: i32, exit_code: &str) -> String {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "completions": completions, "parallelism": parallelism, "backoffLimit": backoff,
            "template": {
                "metadata": {"annotations": {RUN_SECONDS: "1", EXIT_CODE: exit_code}},
                "spec": {
                    "nodeName": node, "restartPolicy": "Never",
                    "containers": [{"name": "work", "image": "registry.example/work:1"}]
                }
            }
        }
    })
    .to_string()
}

fn condition(job: &Job, type_: &str) -> Option<(String, Option<String>)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone()))
}

async fn pods_of(pods: &Api<Pod>, job: &str) -> Vec<Pod> {
    let params = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    pods.list(&params).await.expect("list job pods").items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_or_stop_at_their_backoff_limit() {
    let (cluster, kubectl, work) = gantry_tests::kube::start_api_cluster().await;
    let server = cluster.api_url(0).expect("api url");
    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client from admin kubeconfig");
    let config = SimConfig {
        nodes: 1,
        name_prefix: "jobsim-".to_string(),
        cpu: "8".to_string(),
        memory: "32Gi".to_string(),
        pods: 100,
        ..SimConfig::default()
    };
    let sim = SimNodes::start(client.clone(), config).await.expect("start simulated nodes");
    let node = sim.node_names().into_iter().next().expect("one simulated node");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // --- completions 3, parallelism 2: completes with exactly three successful pods -----------------
    let ok = work.path().join("ok.json");
    std::fs::write(&ok, job_manifest("ok", &node, 3, 2, 6, "0")).expect("write manifest");
    kubectl.ok(&server, &["apply", "-f", ok.to_str().expect("utf-8 path")]);
    kubectl.ok(&server, &["wait", "--for=condition=complete", "job/ok", "--timeout=90s"]);
    let done = jobs.get("ok").await.expect("job ok");
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(status.succeeded, Some(3), "{status:?}");
    assert_eq!(status.failed.unwrap_or(0), 0, "{status:?}");
    assert!(status.start_time.is_some() && status.completion_time.is_some(), "{status:?}");
    assert_eq!(condition(&done, "SuccessCriteriaMet").map(|c| c.0).as_deref(), Some("True"));
    assert_eq!(condition(&done, "Complete").and_then(|c| c.1).as_deref(), Some("CompletionsReached"));
    let ok_pods = pods_of(&pods, "ok").await;
    assert_eq!(ok_pods.len(), 3, "one pod per completion, no extras");
    for p in &ok_pods {
        assert!(p.metadata.name.as_deref().is_some_and(|n| n.starts_with("ok-")), "{:?}", p.metadata.name);
        let owner = p.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
        assert_eq!(
            owner.map(|o| (o.kind.as_str(), o.uid.as_str())),
            Some(("Job", done.metadata.uid.as_deref().unwrap_or("?")))
        );
    }
    eventually("finalizers released from the ok pods", Duration::from_secs(30), || async {
        let tracked = pods_of(&pods, "ok")
            .await
            .into_iter()
            .filter(|p| p.metadata.finalizers.iter().flatten().any(|f| f == TRACKING_FINALIZER))
            .count();
        if tracked == 0 {
            Ok(())
        } else {
            Err(format!("{tracked} pods still tracked"))
        }
    })
    .await;
    let described = kubectl.ok(&server, &["describe", "job", "ok"]);
    assert!(described.contains("SuccessfulCreate") && described.contains("Completed"), "{described}");

    // --- a failing pod with backoffLimit 1: two pods (one back-off of 10 s), then Failed ------------
    let fail = work.path().join("fail.json");
    std::fs::write(&fail, job_manifest("fail", &node, 1, 1, 1, "1")).expect("write manifest");
    kubectl.ok(&server, &["apply", "-f", fail.to_str().expect("utf-8 path")]);
    kubectl.ok(&server, &["wait", "--for=condition=failed", "job/fail", "--timeout=120s"]);
    let failed = jobs.get("fail").await.expect("job fail");
    assert_eq!(condition(&failed, "FailureTarget").map(|c| c.0).as_deref(), Some("True"));
    assert_eq!(condition(&failed, "Failed").and_then(|c| c.1).as_deref(), Some("BackoffLimitExceeded"));
    let message = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed").and_then(|c| c.message.clone()));
    assert_eq!(message.as_deref(), Some("Job has reached the specified backoff limit"));
    assert_eq!(failed.status.as_ref().and_then(|s| s.failed), Some(2));
    // Nothing more is created after the Job failed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fail_pods = pods_of(&pods, "fail").await;
    assert_eq!(fail_pods.len(), 2, "backoffLimit 1 allows exactly two pods");
    let described = kubectl.ok(&server, &["describe", "job", "fail"]);
    assert!(described.contains("BackoffLimitExceeded"), "{described}");
}
