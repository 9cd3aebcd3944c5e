//! Small helpers shared by the subcommands: printing steps, running commands, invoking cargo, locating
//! the workspace and target directory, picking free loopback ports, and inspecting or signalling
//! processes by pid (through `/proc` and the `kill` command, so no `unsafe` is needed).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Prints text (a line break is added) to stdout. Unlike `println!`, a closed stdout (say
/// `cargo xtask up | head`) does not panic halfway through starting or stopping processes.
pub fn say(text: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text.as_ref());
    let _ = out.flush();
}

/// Prints a step header, so a long log shows what xtask was doing.
pub fn step(msg: impl AsRef<str>) {
    say(format!("==> {}", msg.as_ref()));
}

/// Prints text (a line break is added) to stderr, ignoring a closed stderr.
pub fn say_err(text: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr().lock(), "{}", text.as_ref());
}

/// Prints a warning to stderr.
pub fn warn(msg: impl AsRef<str>) {
    say_err(format!("xtask: warning: {}", msg.as_ref()));
}

/// Renders a command line for display.
fn display(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Runs a command with inherited stdio after echoing it; returns its exit status.
pub fn run(cmd: &mut Command) -> Result<ExitStatus> {
    say(format!("$ {}", display(cmd)));
    cmd.status().with_context(|| format!("failed to start `{}`", display(cmd)))
}

/// Runs a command (see [`run`]) and fails unless it exits successfully.
pub fn run_ok(cmd: &mut Command) -> Result<()> {
    let status = run(cmd)?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Converts a child's exit status into this process's exit code (128 + signal when it was killed).
pub fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// A `cargo` command: the cargo that runs xtask (`$CARGO`), without the package variables that
/// `cargo run` set for xtask itself, so they do not leak into builds and tests.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("CARGO_PKG_")
            || key_str.starts_with("CARGO_MANIFEST_")
            || matches!(key_str.as_ref(), "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE")
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Where the workspace and its build output live.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root (the directory of the root `Cargo.toml`).
    pub root: PathBuf,
    /// Cargo's target directory, honouring `CARGO_TARGET_DIR` and cargo config.
    pub target_dir: PathBuf,
}

impl Workspace {
    /// Asks `cargo metadata` for the workspace root and target directory.
    pub fn locate() -> Result<Self> {
        let mut cmd = cargo();
        cmd.args(["metadata", "--format-version", "1", "--no-deps"]);
        // `cargo run` tells xtask where its manifest is; from there cargo finds the workspace even when
        // `cargo xtask` was started with `--manifest-path` from elsewhere.
        if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
            cmd.current_dir(dir);
        }
        cmd.stderr(Stdio::inherit());
        let out = cmd.output().context("failed to run `cargo metadata`")?;
        if !out.status.success() {
            bail!("`cargo metadata` failed ({})", out.status);
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("cannot parse `cargo metadata` output")?;
        let field = |name: &str| -> Result<PathBuf> {
            meta.get(name)
                .and_then(serde_json::Value::as_str)
                .map(PathBuf::from)
                .with_context(|| format!("`cargo metadata` output has no {name}"))
        };
        Ok(Self { root: field("workspace_root")?, target_dir: field("target_directory")? })
    }

    /// Path of a binary built with the given profile directory (`debug` or `release`).
    pub fn binary(&self, profile_dir: &str, name: &str) -> PathBuf {
        self.target_dir.join(profile_dir).join(name)
    }
}

/// True when `name` is an executable file on `PATH`.
pub fn have_command(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        fs::metadata(dir.join(name)).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

/// True when this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            // Uid: real effective saved fs
            return line.split_whitespace().nth(2) == Some("0");
        }
    }
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Picks `n` distinct free TCP ports on 127.0.0.1 (all bound at once, then released).
pub fn free_loopback_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot bind a free port on 127.0.0.1")?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// True when nothing listens on `addr` (we can bind it ourselves).
pub fn port_is_free(addr: &str) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// True when something accepts TCP connections on `addr`.
pub fn accepts_tcp(addr: &str) -> bool {
    match addr.parse::<SocketAddr>() {
        Ok(sa) => TcpStream::connect_timeout(&sa, Duration::from_millis(500)).is_ok(),
        Err(_) => false,
    }
}

/// True when a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Format: `pid (comm) state ...`; comm may contain spaces or parentheses, so look after the last ')'.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) if Path::new("/proc/self").exists() => false,
        // No /proc: ask `kill -0`.
        Err(_) => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false),
    }
}

/// The command line of a live process, if it can be read.
pub fn pid_cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(raw.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect())
}

/// Sends a signal (`TERM`, `KILL`, ...) to a pid with the `kill` command.
pub fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("failed to run `kill`")?;
    if !status.success() && pid_alive(pid) {
        bail!("`kill -s {sig} {pid}` failed ({status})");
    }
    Ok(())
}

/// Waits until none of `pids` is alive or `timeout` passes; returns the ones still alive.
pub fn wait_for_exit(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The last `lines` lines of a (log) file, reading at most its last 64 KiB.
pub fn tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = fs::File::open(path)?;
        let len = f.metadata()?.len();
        let start = len.saturating_sub(64 * 1024);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// A path shown relative to `base` when it lies under it.
pub fn rel<'a>(path: &'a Path, base: &Path) -> &'a Path {
    path.strip_prefix(base).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_loopback_ports(6).expect("ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
        assert!(port_is_free(&format!("127.0.0.1:{}", ports[0])));
    }

    #[test]
    fn listening_port_is_detected() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        assert!(accepts_tcp(&addr));
        assert!(!port_is_free(&addr));
        drop(listener);
        assert!(!accepts_tcp(&addr));
        assert!(!accepts_tcp("not an address"));
    }

    #[test]
    fn own_process_is_alive_and_exited_child_is_not() {
        assert!(pid_alive(std::process::id()));
        let cmdline = pid_cmdline(std::process::id()).expect("cmdline");
        assert!(!cmdline.is_empty());
        let mut child = Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!pid_alive(pid));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("xtask-tail-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("log");
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        fs::write(&file, text).expect("write");
        assert_eq!(tail(&file, 2), "line 99\nline 100");
        assert!(tail(&dir.join("missing"), 2).starts_with("(cannot read"));
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn exit_codes_carry_over() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(0)), ExitCode::from(0));
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), ExitCode::from(3));
        assert_eq!(exit_code(ExitStatus::from_raw(9)), ExitCode::from(137));
    }
}
