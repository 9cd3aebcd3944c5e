//! A private containerd for node-agent tests, configured as `RUNTIME-NOTES.md` measured: its own
//! root, state, socket and runc state directory, `restrict_oom_score_adj` (root lacks
//! CAP_SYS_RESOURCE here), cgroupfs, and its own CNI configuration directory. It never touches a
//! system instance, and it is killed (its whole process group) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Why the private containerd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("containerd did not open {socket} within {waited:?}; log tail:\n{log}")]
    NotReady { socket: String, waited: Duration, log: String },
}

/// A running private containerd.
pub struct PrivateContainerd {
    child: Child,
    dir: PathBuf,
}

impl PrivateContainerd {
    /// Writes a config under `dir` and starts `containerd --config` in its own session.
    pub fn start(dir: &Path) -> Result<Self, ContainerdError> {
        let io = |context: &str| {
            let context = format!("{context} under {}", dir.display());
            move |source| ContainerdError::Io { context, source }
        };
        for sub in ["root", "state", "runc", "cni-conf", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io("creating containerd directories"))?;
        }
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml(dir)).map_err(io("writing containerd config"))?;
        let log = std::fs::File::create(dir.join("containerd.log")).map_err(io("creating containerd log"))?;
        let err = log.try_clone().map_err(io("cloning containerd log"))?;
        let child = Command::new("setsid")
            .arg("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io("starting containerd"))?;
        let me = Self { child, dir: dir.to_path_buf() };
        me.wait_for_socket(Duration::from_secs(30))?;
        Ok(me)
    }

    /// The CRI endpoint (`unix:///...`).
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The last lines of containerd's log.
    pub fn log_tail(&self) -> String {
        crate::cluster::tail_of_file(&self.dir.join("containerd.log"), 30)
    }

    fn wait_for_socket(&self, timeout: Duration) -> Result<(), ContainerdError> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(ContainerdError::NotReady {
            socket: self.socket().display().to_string(),
            waited: start.elapsed(),
            log: self.log_tail(),
        })
    }
}

impl PrivateContainerd {
    /// SIGKILLs the containerd process alone, leaving its shims and their containers running (a
    /// crashed daemon); a new [`PrivateContainerd::start`] on the same directory picks them up.
    pub fn kill_daemon_only(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        // setsid made containerd a session (and group) leader: its shims go with it.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn config_toml(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{d}/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:latest"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
      Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni-conf"
    max_conf_num = 1
"#
    )
}
