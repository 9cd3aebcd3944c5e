//! Driving the real `kubectl` against a test cluster's Kubernetes API.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::ProcessCluster;

/// Longest a single kubectl command may run (the longest `rollout status --timeout` the tests use is
/// 120 s). A command still running then is killed and fails the test with what it printed so far,
/// so a request the server never answers shows up as a named failure instead of a hung test.
pub const KUBECTL_DEADLINE: Duration = Duration::from_secs(180);

/// `/usr/bin/kubectl` with a kubeconfig and a private discovery cache.
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub cache_dir: PathBuf,
}

impl Kubectl {
    /// Runs kubectl against replica `server` (an `https://` URL), killing it after [`KUBECTL_DEADLINE`].
    pub fn run(&self, server: &str, args: &[&str]) -> Output {
        let child = std::process::Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .arg("--server")
            .arg(server)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running /usr/bin/kubectl");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(KUBECTL_DEADLINE) {
            Ok(out) => out.expect("waiting for kubectl"),
            Err(_) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let out = rx.recv().ok().and_then(Result::ok);
                let printed = out
                    .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
                panic!(
                    "kubectl {args:?} against {server} still running after {KUBECTL_DEADLINE:?}; it printed: {}",
                    printed.unwrap_or_default()
                );
            }
        }
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it exits non-zero.
    pub fn ok(&self, server: &str, args: &[&str]) -> String {
        let out = self.run(server, args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, server: &str, args: &[&str]) -> String {
        let out = self.run(server, args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Waits until every replica's API answers `/readyz` through kubectl.
pub async fn wait_api_ready(cluster: &ProcessCluster, k: &Kubectl) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..cluster.size() {
        let url = cluster.api_url(i).expect("api url");
        loop {
            if k.kubeconfig.exists() {
                let out = k.run(&url, &["get", "--raw", "/readyz"]);
                if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "replica {i} api not ready: {}", cluster.log_tail(i));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Starts a 3-replica cluster serving the Kubernetes API and waits until every replica is ready.
/// Returns the cluster, kubectl set up for its admin kubeconfig, and a scratch directory.
pub async fn start_api_cluster() -> (ProcessCluster, Kubectl, tempfile::TempDir) {
    start_api_cluster_with(Vec::new()).await
}

/// Like [`start_api_cluster`], but the replicas run no controllers: the API's own semantics, as an
/// apiserver test runs without a controller manager, so objects stay exactly what the test wrote.
pub async fn start_api_only_cluster() -> (ProcessCluster, Kubectl, tempfile::TempDir) {
    start_api_cluster_with(vec!["--disable-controllers".into()]).await
}

async fn start_api_cluster_with(extra_args: Vec<String>) -> (ProcessCluster, Kubectl, tempfile::TempDir) {
    let config = crate::cluster::ClusterConfig { kubernetes_api: true, extra_args, ..Default::default() };
    let launcher = crate::launcher::Launcher::gantry().expect("gantry binary");
    let cluster = ProcessCluster::start(launcher, config).await.expect("cluster");
    let work = tempfile::tempdir().expect("tempdir");
    let k = Kubectl { kubeconfig: cluster.kubeconfig(), cache_dir: work.path().join("cache") };
    wait_api_ready(&cluster, &k).await;
    (cluster, k, work)
}
