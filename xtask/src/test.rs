//! `cargo xtask test`: install missing prerequisites, build the binaries, run the whole test suite.
//!
//! 1. Prerequisites (Debian packages, checked with `dpkg-query`, so a rerun is a no-op):
//!    - needed now: `protobuf-compiler`, `clang`, `libclang-dev` (to build the gRPC bindings and
//!      RocksDB), `etcd-server`, `etcd-client` (etcd is the reference the store is compared with,
//!      etcdctl talks to our etcd-compatible API), `curl`, and for the node agent's tests on a real
//!      runtime `containerd`, `runc`, `containernetworking-plugins`, `umoci`, `busybox-static`, `iproute2`,
//!      and `nftables` (the node agent's service proxy and its cluster DNS redirect program the packet
//!      filter with `nft`).
//!
//!    As root, missing packages are installed with `apt-get update` (once) and `apt-get install -y`.
//!    Otherwise the command prints what to install and fails when a package is missing.
//!    The Python `kubernetes` client (for the API compatibility tests) is installed with pip if missing.
//! 2. `cargo build --workspace --bins --tests`, so process-level tests find `gantry-control-plane` (and the
//!    other binaries) in the target directory; `GANTRY_BIN_DIR` is set to that directory unless already
//!    set.
//! 3. `cargo nextest run --workspace --no-fail-fast [ARGS...]` (or `cargo test --workspace
//!    --no-fail-fast [ARGS...]` when cargo-nextest is not installed); its exit code is this command's.

use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Result};

use crate::util::{self, step, warn, Workspace};

/// Debian packages the build and the current tests need.
const REQUIRED: &[&str] = &[
    "protobuf-compiler",
    "libprotobuf-dev",
    "clang",
    "libclang-dev",
    "etcd-server",
    "etcd-client",
    "curl",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "umoci",
    "busybox-static",
    "iproute2",
    "nftables",
];

/// Commands that the required packages provide, checked when `dpkg-query` is not available.
const REQUIRED_COMMANDS: &[(&str, &str)] = &[
    ("protoc", "protobuf-compiler"),
    ("clang", "clang"),
    ("etcd", "etcd-server"),
    ("etcdctl", "etcd-client"),
    ("curl", "curl"),
    ("nft", "nftables"),
];

/// Directory of the `gantry-control-plane` binary for process-level tests (read by the `tests` crate).
const BIN_DIR_ENV: &str = "GANTRY_BIN_DIR";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not check or install prerequisites.
    #[arg(long)]
    no_install: bool,
    /// Extra arguments for the test runner (`cargo nextest run`, or `cargo test`), after `--`.
    #[arg(last = true, value_name = "ARGS")]
    runner_args: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.no_install {
        step("skipping prerequisites (--no-install)");
    } else {
        prerequisites()?;
        python_client()?;
    }

    let ws = Workspace::locate()?;
    step(format!("building the workspace binaries (target dir {})", ws.target_dir.display()));
    let mut build = util::cargo();
    build
        .current_dir(&ws.root)
        // `--tests` activates dev-dependencies exactly as the test run will, so features unify the same
        // way and nothing (RocksDB above all) is compiled twice.
        .args(["build", "--workspace", "--bins", "--tests"]);
    util::run_ok(&mut build)?;

    let mut test = util::cargo();
    test.current_dir(&ws.root);
    // Point the process-level tests at the binaries just built (the tests crate honours this variable;
    // without it, it searches next to the test executables).
    if std::env::var_os(BIN_DIR_ENV).is_none() {
        test.env(BIN_DIR_ENV, ws.target_dir.join("debug"));
    }
    if have_nextest() {
        step("running the test suite with cargo-nextest");
        test.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        warn("cargo-nextest is not installed; falling back to `cargo test`");
        step("running the test suite with cargo test");
        test.args(["test", "--workspace", "--no-fail-fast"]);
    }
    test.args(&args.runner_args);
    let status = util::run(&mut test)?;
    if status.success() {
        step("all tests passed");
    } else {
        step(format!("tests failed ({status})"));
    }
    Ok(util::exit_code(status))
}

/// True when `cargo nextest` works.
fn have_nextest() -> bool {
    util::cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The official Python `kubernetes` client, which the API compatibility tests drive.
const PYTHON_CLIENT: &str = "kubernetes==37.0.2";

fn python_has_kubernetes() -> bool {
    Command::new("python3")
        .args(["-c", "import kubernetes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs the Python `kubernetes` client with pip when it is missing.
fn python_client() -> Result<()> {
    if !util::have_command("python3") {
        bail!("python3 is missing; install it (Debian: apt-get install -y python3 python3-pip)");
    }
    if python_has_kubernetes() {
        return Ok(());
    }
    step(format!("installing the Python client ({PYTHON_CLIENT})"));
    let pip = |extra: &[&str]| -> Result<bool> {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"])
            .args(extra)
            .arg(PYTHON_CLIENT)
            .status()?;
        Ok(status.success() && python_has_kubernetes())
    };
    // Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told otherwise.
    if !pip(&[])? && !pip(&["--break-system-packages"])? {
        bail!("could not install {PYTHON_CLIENT} with pip (python3 -m pip install {PYTHON_CLIENT})");
    }
    Ok(())
}

/// Checks the Debian packages and installs the missing ones when possible.
fn prerequisites() -> Result<()> {
    step("checking prerequisites");
    if !util::have_command("dpkg-query") {
        let missing: Vec<&str> =
            REQUIRED_COMMANDS.iter().filter(|(cmd, _)| !util::have_command(cmd)).map(|(cmd, _)| *cmd).collect();
        if !missing.is_empty() {
            bail!(
                "not a Debian system (no dpkg-query) and these commands are missing: {}; install \
                 them (Debian packages: {})",
                missing.join(", "),
                REQUIRED.join(" ")
            );
        }
        warn("not a Debian system (no dpkg-query); found the needed commands, not checking packages");
        return Ok(());
    }

    let missing_required = missing_packages(REQUIRED);
    if missing_required.is_empty() {
        util::say("all prerequisites are installed");
        return Ok(());
    }

    if !util::is_root() || !util::have_command("apt-get") {
        bail!(
            "missing Debian packages: {}. Install them with:\n    sudo apt-get update && sudo apt-get install -y {}",
            missing_required.join(" "),
            missing_required.join(" ")
        );
    }

    run_apt(&["update"])?;
    step(format!("installing {}", missing_required.join(" ")));
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing_required);
    run_apt(&args)?;
    let still = missing_packages(REQUIRED);
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(" "));
    }
    Ok(())
}

/// The packages of `pkgs` that `dpkg-query` does not report as installed.
fn missing_packages<'a>(pkgs: &[&'a str]) -> Vec<&'a str> {
    pkgs.iter()
        .copied()
        .filter(|pkg| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]).stderr(Stdio::null()).output();
            !matches!(out, Ok(o) if o.status.success()
                && String::from_utf8_lossy(&o.stdout).trim() == "install ok installed")
        })
        .collect()
}

/// Runs `apt-get ARGS` non-interactively.
fn run_apt(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null());
    util::run_ok(&mut cmd)
}
