//! Running the `nft` command: applying a script as one transaction (`nft -f -`), listing the names
//! of a table's objects and deleting a table. The only part of the proxy that touches the packet
//! filter; [`Netfilter`] lets the sync loop run against a recording fake in tests.

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::model::SetKind;
use super::script::{self, KernelObjects};

/// How long one `nft` run may take (a full 1,000-Service table takes well under a second).
pub const NFT_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of nft's error output kept in an error.
const STDERR_LINES: usize = 8;

/// Why an `nft` run failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("the nft command was not found ({0}); install nftables or start the agent with --proxy-mode=none")]
    Missing(String),
    #[error("running nft {what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("nft {what} failed ({status}): {stderr}")]
    Failed { what: String, status: String, stderr: String },
    #[error("nft {what} did not finish within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("reading the objects of table {table}: {message}")]
    Listing { table: String, message: String },
}

/// What the sync loop needs from the packet filter.
pub trait Netfilter: Send + Sync + 'static {
    /// Applies `script` as one transaction.
    fn apply(&self, script: String) -> impl Future<Output = Result<(), NftError>> + Send;
    /// The chains, sets and maps table `table` (family `ip`) holds; empty when there is no such table.
    fn objects(&self, table: &str) -> impl Future<Output = Result<KernelObjects, NftError>> + Send;
}

/// The `nft` command.
#[derive(Debug, Clone)]
pub struct Nft {
    program: String,
    /// Arguments before nft's own (`netns exec NS nft` when run through `ip`).
    prefix: Vec<String>,
    timeout: Duration,
}

impl Default for Nft {
    fn default() -> Self {
        Self { program: "nft".into(), prefix: Vec::new(), timeout: NFT_TIMEOUT }
    }
}

impl Nft {
    /// `nft` inside network namespace `name` (`ip netns exec`), for tests and benchmarks that must
    /// not touch the host's tables.
    pub fn in_network_namespace(name: &str) -> Self {
        Self {
            program: "ip".into(),
            prefix: ["netns", "exec", name, "nft"].map(String::from).to_vec(),
            timeout: NFT_TIMEOUT,
        }
    }

    /// `nft ARGS` (e.g. `-j list table ip T`): its standard output.
    pub async fn output(&self, args: &[&str]) -> Result<String, NftError> {
        Ok(String::from_utf8_lossy(&self.run(args, None).await?).into_owned())
    }

    /// Runs `nft ARGS` with `stdin`; its stdout.
    async fn run(&self, args: &[&str], stdin: Option<String>) -> Result<Vec<u8>, NftError> {
        let what = args.join(" ");
        let mut child = Command::new(&self.program)
            .args(&self.prefix)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => NftError::Missing(source.to_string()),
                _ => NftError::Io { what: what.clone(), source },
            })?;
        let io = |source| NftError::Io { what: what.clone(), source };
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // Written beside the wait: nft reads its whole input before answering, and a large script
            // does not fit in the pipe.
            let write = async move {
                pipe.write_all(text.as_bytes()).await?;
                pipe.shutdown().await
            };
            let (written, output) =
                tokio::time::timeout(self.timeout, async { tokio::join!(write, child.wait_with_output()) })
                    .await
                    .map_err(|_| NftError::Timeout { what: what.clone(), timeout: self.timeout })?;
            let output = output.map_err(io)?;
            check(&what, &output)?;
            written.map_err(io)?;
            return Ok(output.stdout);
        }
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| NftError::Timeout { what: what.clone(), timeout: self.timeout })?
            .map_err(io)?;
        check(&what, &output)?;
        Ok(output.stdout)
    }

    /// Deletes table `table` (family `ip`) if it exists.
    pub async fn delete_table(&self, table: &str) -> Result<(), NftError> {
        self.apply(script::delete_table(table)).await
    }
}

fn check(what: &str, output: &std::process::Output) -> Result<(), NftError> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).take(STDERR_LINES).collect();
    Err(NftError::Failed { what: what.to_string(), status: output.status.to_string(), stderr: stderr.join(" | ") })
}

impl Netfilter for Nft {
    async fn apply(&self, script: String) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(script)).await.map(|_| ())
    }

    async fn objects(&self, table: &str) -> Result<KernelObjects, NftError> {
        let chains = self.run(&["-j", "list", "chains", "ip"], None).await?;
        let sets = self.run(&["-j", "-t", "list", "sets", "ip"], None).await?;
        let maps = self.run(&["-j", "-t", "list", "maps", "ip"], None).await?;
        parse_objects(table, &[&chains, &sets, &maps])
            .map_err(|message| NftError::Listing { table: table.to_string(), message })
    }
}

/// The objects of `table` in `nft -j list ...` outputs (other tables' objects are skipped).
pub fn parse_objects(table: &str, listings: &[&[u8]]) -> Result<KernelObjects, String> {
    let mut out = KernelObjects::default();
    for listing in listings {
        if listing.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let doc: Value = serde_json::from_slice(listing).map_err(|e| format!("nft printed invalid json: {e}"))?;
        let items = doc["nftables"].as_array().ok_or("nft printed no \"nftables\" array")?;
        for item in items {
            let Some((kind, object)) = item.as_object().and_then(|o| o.iter().next()) else { continue };
            if object["table"] != table || object["family"] != "ip" {
                continue;
            }
            let Some(name) = object["name"].as_str() else { continue };
            match kind.as_str() {
                "chain" => {
                    out.chains.insert(name.to_string());
                }
                "set" => {
                    out.sets.insert(name.to_string(), SetKind::Set);
                }
                "map" => {
                    out.sets.insert(name.to_string(), SetKind::Map);
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_give_the_names_of_our_tables_objects_only() {
        let chains = br#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"chain": {"family": "ip", "table": "gantry-proxy-n1", "name": "services", "handle": 1}},
            {"chain": {"family": "ip", "table": "nat", "name": "POSTROUTING", "handle": 2, "hook": "postrouting"}},
            {"chain": {"family": "ip", "table": "gantry-proxy-n1", "name": "svc-default/web/tcp/http", "handle": 3}}]}"#;
        let sets = br#"{"nftables": [{"metainfo": {}},
            {"set": {"family": "ip", "name": "hairpin", "table": "gantry-proxy-n1", "type": ["ipv4_addr", "ipv4_addr"]}},
            {"set": {"family": "ip", "name": "x", "table": "gantry-proxy-n2", "type": "ipv4_addr"}}]}"#;
        let maps = br#"{"nftables": [{"map": {"family": "ip", "name": "service-ips", "table": "gantry-proxy-n1"}}]}"#;
        let objects = parse_objects("gantry-proxy-n1", &[chains, sets, maps, b"\n"]).expect("parse");
        assert_eq!(objects.chains.iter().collect::<Vec<_>>(), ["services", "svc-default/web/tcp/http"]);
        assert_eq!(objects.sets.get("hairpin"), Some(&SetKind::Set));
        assert_eq!(objects.sets.get("service-ips"), Some(&SetKind::Map));
        assert_eq!(objects.sets.len(), 2);
        assert!(parse_objects("t", &[b"not json"]).is_err());
    }

    #[tokio::test]
    async fn a_missing_nft_names_the_way_out() {
        let nft = Nft { program: "/nonexistent/nft".into(), ..Nft::default() };
        let err = nft.apply("add table ip t\n".into()).await.expect_err("missing");
        assert!(matches!(err, NftError::Missing(_)), "{err}");
        assert!(err.to_string().contains("--proxy-mode=none"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_nft_reports_its_error_output() {
        // `sh -c` stands in for nft: it reads the script and fails the way nft does.
        let nft = Nft { program: "sh".into(), ..Nft::default() };
        let err = nft
            .run(&["-c", "cat >/dev/null; echo 'Error: syntax error' >&2; exit 1"], Some("x".repeat(1 << 20)))
            .await
            .expect_err("fails");
        assert!(err.to_string().contains("Error: syntax error"), "{err}");
    }
}
