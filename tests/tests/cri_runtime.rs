//! `cri-proto` against a real, private containerd over its unix socket: the runtime answers
//! `Version` and `Status` (runtime ready) and lists no sandboxes; the image service answers too.

use std::time::Duration;

use gantry_cri_proto::runtime::{ListImagesRequest, ListPodSandboxRequest, StatusRequest, VersionRequest};
use gantry_tests::containerd::PrivateContainerd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_clients_talk_to_a_private_containerd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let containerd = PrivateContainerd::start(dir.path()).expect("containerd");
    let mut cri = gantry_cri_proto::connect(&containerd.endpoint(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", containerd.log_tail()));
    let version = cri.runtime.version(VersionRequest { version: "v1".into() }).await.expect("Version").into_inner();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");
    assert!(!version.runtime_version.is_empty());
    let status = cri.runtime.status(StatusRequest { verbose: false }).await.expect("Status").into_inner();
    let conditions = status.status.expect("runtime status").conditions;
    let ready = conditions.iter().find(|c| c.r#type == "RuntimeReady").expect("RuntimeReady condition");
    assert!(ready.status, "runtime not ready: {conditions:?}\n{}", containerd.log_tail());
    let sandboxes = cri.runtime.list_pod_sandbox(ListPodSandboxRequest { filter: None }).await.expect("list");
    assert!(sandboxes.into_inner().items.is_empty(), "a fresh private containerd has no sandboxes");
    cri.image.list_images(ListImagesRequest { filter: None }).await.expect("ListImages");
}
