//! A private containerd, configured as `RUNTIME-NOTES.md` measured: its own root, state, socket and
//! runc state directory, `restrict_oom_score_adj` (root lacks CAP_SYS_RESOURCE here), cgroupfs, and
//! its own CNI configuration directory. It never touches a system instance, and it is killed (its
//! whole process group) when dropped, unless [`PrivateContainerd::detach`]ed.

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
        crate::tail_of_file(&self.dir.join("containerd.log"), 30)
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
    /// Leaves containerd running after this value is gone (for `cargo xtask up`); returns its pid,
    /// which is also its process group.
    pub fn detach(self) -> u32 {
        let pid = self.child.id();
        std::mem::forget(self);
        pid
    }

    /// The socket, state and config directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILLs the containerd process alone, leaving its shims and their containers running (a
    /// crashed daemon); a new [`PrivateContainerd::start`] on the same directory picks them up.
    pub fn kill_daemon_only(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        // Shims re-parent themselves out of containerd's process group, so they (and the containers
        // they run) are found by the socket they were started with and killed first.
        kill_shims_of(&self.socket());
        // setsid made containerd a session (and group) leader.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// SIGKILLs the shims started for the containerd at `socket`, and their children (each container's
/// first process, whose death ends its PID namespace).
pub fn kill_shims_of(socket: &Path) {
    let socket = socket.display().to_string();
    let procs = processes();
    let shims: Vec<i32> = procs
        .iter()
        .filter(|p| p.cmdline.contains("containerd-shim") && p.cmdline.contains(&socket))
        .map(|p| p.pid)
        .collect();
    let children = procs.iter().filter(|p| shims.contains(&p.ppid)).map(|p| p.pid);
    for pid in children.chain(shims.iter().copied()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

struct Process {
    pid: i32,
    ppid: i32,
    cmdline: String,
}

/// Every process's pid, parent and command line, from /proc.
fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            Some(Process { pid, ppid, cmdline })
        })
        .collect()
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
