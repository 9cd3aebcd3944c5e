//! Container images for runtime tests without a registry: OCI layouts built with `umoci` around the
//! static busybox (with its applet links), imported into a containerd's `k8s.io` namespace with
//! `ctr images import --base-name` so they are known as `localhost/NAME:TAG` (RUNTIME-NOTES).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The static busybox installed by `busybox-static`.
pub const BUSYBOX: &str = "/bin/busybox";
/// The sandbox image `PrivateContainerd` configures.
pub const PAUSE_IMAGE: &str = "localhost/pause:latest";
/// A busybox image whose default command is a shell.
pub const BUSYBOX_IMAGE: &str = "localhost/busybox:1";

/// Why an image could not be built or imported.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{command} failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
}

fn run(cmd: &mut Command) -> Result<String, ImageError> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| ImageError::Io { context: format!("running {shown}"), source })?;
    if !out.status.success() {
        return Err(ImageError::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds an OCI layout of busybox tagged `tag` with default command `cmd`, and tars it to
/// `<work>/<name>.tar`. Returns the tarball.
pub fn build_busybox_image(work: &Path, name: &str, tag: &str, cmd: &[&str]) -> Result<PathBuf, ImageError> {
    let io = |context: &str| {
        let context = format!("{context} for image {name}");
        move |source| ImageError::Io { context, source }
    };
    let layout = work.join(format!("{name}-layout"));
    let bundle = work.join(format!("{name}-bundle"));
    let image = format!("{}:{tag}", layout.display());
    // A previous build (an earlier `cargo xtask up`) may have left its layout and bundle behind.
    for dir in [&layout, &bundle] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io("removing an earlier build"))?;
        }
    }
    run(Command::new("umoci").arg("init").arg("--layout").arg(&layout))?;
    run(Command::new("umoci").args(["new", "--image", &image]))?;
    run(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle))?;
    let rootfs = bundle.join("rootfs");
    for dir in ["bin", "tmp", "www", "etc"] {
        std::fs::create_dir_all(rootfs.join(dir)).map_err(io("creating rootfs directories"))?;
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).map_err(io("copying busybox"))?;
    let applets = run(Command::new(BUSYBOX).arg("--list"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox") {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).map_err(io("linking applets"))?;
        }
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").map_err(io("writing passwd"))?;
    std::fs::write(rootfs.join("www/index.html"), "hello from gantry\n").map_err(io("writing index.html"))?;
    run(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle))?;
    let mut config = Command::new("umoci");
    config.args(["config", "--image", &image, "--config.env", "PATH=/bin"]);
    for arg in cmd {
        config.args(["--config.cmd", arg]);
    }
    run(&mut config)?;
    let tar = work.join(format!("{name}.tar"));
    run(Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&tar).arg("."))?;
    Ok(tar)
}

/// Imports a layout tarball into containerd (`endpoint` as `unix:///...`) as `localhost/<name>:<tag>`.
pub fn import(endpoint: &str, tar: &Path, name: &str) -> Result<(), ImageError> {
    let socket = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    run(Command::new("ctr")
        .args(["-a", socket, "-n", "k8s.io", "images", "import", "--base-name"])
        .arg(format!("localhost/{name}"))
        .arg(tar))?;
    Ok(())
}

/// Builds and imports [`PAUSE_IMAGE`] (busybox sleeping forever) and [`BUSYBOX_IMAGE`].
pub fn import_test_images(endpoint: &str, work: &Path) -> Result<(), ImageError> {
    let pause = build_busybox_image(work, "pause", "latest", &["sleep", "infinity"])?;
    import(endpoint, &pause, "pause")?;
    let busybox = build_busybox_image(work, "busybox", "1", &["sh"])?;
    import(endpoint, &busybox, "busybox")
}
