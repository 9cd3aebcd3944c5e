//! Kubeconfig files: parsing (YAML, or JSON as Gantry writes it) and resolving one context into the
//! server address and credentials `api-bench` connects with.
//!
//! Supported: `server` (`https://HOST[:PORT][/PREFIX]`), `certificate-authority[-data]`,
//! `tls-server-name`, `client-certificate[-data]` / `client-key[-data]`, `token` and `tokenFile`.
//! Relative file paths are resolved against the kubeconfig's directory, as kubectl does. Exec and
//! auth-provider plugins and `insecure-skip-tls-verify` are rejected with a clear error: the
//! benchmark always verifies the server against the cluster CA.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// Errors while loading a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// A file could not be read.
    #[error("failed to read {what} {path}")]
    Read {
        /// What the file is (kubeconfig, CA, ...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The document is neither valid YAML nor JSON of the expected shape.
    #[error("failed to parse kubeconfig {path}")]
    Parse {
        /// Kubeconfig path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A named entry is missing.
    #[error("kubeconfig has no {kind} named {name:?}")]
    Missing {
        /// `context`, `cluster` or `user`.
        kind: &'static str,
        /// The name looked for.
        name: String,
    },
    /// Neither `--context` nor `current-context` names a context.
    #[error("kubeconfig has no current-context; pass --context")]
    NoContext,
    /// An inline `*-data` field is not valid base64.
    #[error("kubeconfig field {field} is not valid base64")]
    Base64 {
        /// Field name.
        field: &'static str,
        /// Underlying error.
        #[source]
        source: base64::DecodeError,
    },
    /// The server URL is unusable.
    #[error("invalid kubeconfig server url {url:?}: {reason}")]
    Server {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A feature the benchmark does not implement.
    #[error("kubeconfig user/cluster uses {0}, which api-bench does not support")]
    Unsupported(&'static str),
}

/// The kubeconfig document (only the fields used here).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Document {
    #[serde(default)]
    clusters: Vec<Named<ClusterEntry>>,
    #[serde(default)]
    users: Vec<Named<UserEntry>>,
    #[serde(default)]
    contexts: Vec<Named<ContextEntry>>,
    #[serde(default)]
    current_context: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterEntry {
    server: String,
    #[serde(default)]
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    tls_server_name: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct UserEntry {
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(default)]
    exec: Option<serde_yaml_ng::Value>,
    #[serde(default, rename = "auth-provider")]
    auth_provider: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ContextEntry {
    cluster: String,
    #[serde(default)]
    user: String,
}

/// Where the API server is: `https://host:port` plus an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// Host name or IP literal (without IPv6 brackets).
    pub host: String,
    /// TCP port (443 when the URL has none).
    pub port: u16,
    /// Path prefix without trailing slash (usually empty).
    pub path_prefix: String,
}

impl ServerAddress {
    /// Parses `https://HOST[:PORT][/PREFIX]`.
    pub fn parse(url: &str) -> Result<Self, KubeconfigError> {
        let err = |reason: &str| KubeconfigError::Server { url: url.to_string(), reason: reason.to_string() };
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| err(&e.to_string()))?;
        if uri.scheme_str() != Some("https") {
            return Err(err("only https:// servers are supported"));
        }
        let host = uri.host().ok_or_else(|| err("no host"))?.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            host: host.to_string(),
            port: uri.port_u16().unwrap_or(443),
            path_prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// `host:port` for the `Host` header (IPv6 literals bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Client credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A client certificate chain and its private key, PEM.
    ClientCertificate {
        /// Certificate chain, PEM.
        cert_pem: Vec<u8>,
        /// Private key, PEM.
        key_pem: Vec<u8>,
    },
    /// `Authorization: Bearer <token>`.
    BearerToken(String),
    /// No credentials (anonymous).
    None,
}

/// One resolved kubeconfig context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedKubeconfig {
    /// Context name used.
    pub context: String,
    /// API server.
    pub server: ServerAddress,
    /// Name the server certificate must be valid for (`tls-server-name`, else the URL's host).
    pub tls_server_name: String,
    /// Cluster CA bundle, PEM.
    pub ca_pem: Vec<u8>,
    /// How to authenticate.
    pub credentials: Credentials,
}

/// Reads and resolves `path`, using `context` or else the file's `current-context`.
pub fn load(path: &Path, context: Option<&str>) -> Result<ResolvedKubeconfig, KubeconfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
        what: "kubeconfig",
        path: path.to_path_buf(),
        source,
    })?;
    let base_dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    parse(&text, &base_dir, context).map_err(|e| match e {
        KubeconfigError::Parse { source, .. } => KubeconfigError::Parse { path: path.to_path_buf(), source },
        other => other,
    })
}

/// Parses kubeconfig text; relative file paths are taken relative to `base_dir`.
pub fn parse(text: &str, base_dir: &Path, context: Option<&str>) -> Result<ResolvedKubeconfig, KubeconfigError> {
    let doc: Document =
        serde_yaml_ng::from_str(text).map_err(|source| KubeconfigError::Parse { path: PathBuf::new(), source })?;
    let context_name = context.map(str::to_string).or_else(|| doc.current_context.clone().filter(|c| !c.is_empty()));
    let context_name = context_name.ok_or(KubeconfigError::NoContext)?;
    let ctx = find(&doc.contexts, "context", &context_name)?;
    let cluster = find(&doc.clusters, "cluster", &ctx.cluster)?;
    if cluster.insecure_skip_tls_verify {
        return Err(KubeconfigError::Unsupported("insecure-skip-tls-verify"));
    }
    let server = ServerAddress::parse(&cluster.server)?;
    let ca_pem = material(
        &cluster.certificate_authority_data,
        "certificate-authority-data",
        &cluster.certificate_authority,
        "certificate authority",
        base_dir,
    )?
    .ok_or(KubeconfigError::Unsupported("no certificate-authority (system roots)"))?;
    let user = if ctx.user.is_empty() { UserEntry::default() } else { find(&doc.users, "user", &ctx.user)?.clone() };
    Ok(ResolvedKubeconfig {
        context: context_name,
        tls_server_name: cluster.tls_server_name.clone().unwrap_or_else(|| server.host.clone()),
        server,
        ca_pem,
        credentials: credentials(&user, base_dir)?,
    })
}

fn find<'a, T>(entries: &'a [Named<T>], kind: &'static str, name: &str) -> Result<&'a T, KubeconfigError> {
    entries
        .iter()
        .find(|e| e.name == name)
        .map(|e| &e.value)
        .ok_or_else(|| KubeconfigError::Missing { kind, name: name.to_string() })
}

fn credentials(user: &UserEntry, base_dir: &Path) -> Result<Credentials, KubeconfigError> {
    if user.exec.is_some() {
        return Err(KubeconfigError::Unsupported("an exec credential plugin"));
    }
    if user.auth_provider.is_some() {
        return Err(KubeconfigError::Unsupported("an auth-provider plugin"));
    }
    let cert = material(
        &user.client_certificate_data,
        "client-certificate-data",
        &user.client_certificate,
        "client certificate",
        base_dir,
    )?;
    let key = material(&user.client_key_data, "client-key-data", &user.client_key, "client key", base_dir)?;
    if let (Some(cert_pem), Some(key_pem)) = (cert, key) {
        return Ok(Credentials::ClientCertificate { cert_pem, key_pem });
    }
    if let Some(token) = user.token.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Credentials::BearerToken(token.clone()));
    }
    if let Some(file) = &user.token_file {
        let path = base_dir.join(file);
        let token = std::fs::read_to_string(&path).map_err(|source| KubeconfigError::Read {
            what: "token file",
            path,
            source,
        })?;
        return Ok(Credentials::BearerToken(token.trim().to_string()));
    }
    Ok(Credentials::None)
}

/// Inline base64 data if present, else the contents of the referenced file, else `None`.
fn material(
    data: &Option<String>,
    data_field: &'static str,
    file: &Option<PathBuf>,
    what: &'static str,
    base_dir: &Path,
) -> Result<Option<Vec<u8>>, KubeconfigError> {
    if let Some(data) = data.as_ref().filter(|d| !d.is_empty()) {
        let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|source| KubeconfigError::Base64 { field: data_field, source })?;
        return Ok(Some(bytes));
    }
    match file {
        Some(file) => {
            let path = base_dir.join(file);
            std::fs::read(&path).map(Some).map_err(|source| KubeconfigError::Read { what, path, source })
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn json_with_inline_data_like_gantry_writes() -> Result<(), KubeconfigError> {
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "gantry",
                "cluster": { "server": "https://127.0.0.1:40123", "certificate-authority-data": b64(CA) } }],
            "users": [{ "name": "admin",
                "user": { "client-certificate-data": b64(CERT), "client-key-data": b64(KEY) } }],
            "contexts": [{ "name": "gantry", "context": { "cluster": "gantry", "user": "admin" } }],
            "current-context": "gantry",
            "preferences": {},
        });
        let k = parse(&doc.to_string(), Path::new("/nonexistent"), None)?;
        assert_eq!(k.context, "gantry");
        assert_eq!(k.server, ServerAddress { host: "127.0.0.1".into(), port: 40123, path_prefix: String::new() });
        assert_eq!(k.tls_server_name, "127.0.0.1");
        assert_eq!(k.ca_pem, CA.as_bytes());
        assert_eq!(
            k.credentials,
            Credentials::ClientCertificate { cert_pem: CERT.as_bytes().to_vec(), key_pem: KEY.as_bytes().to_vec() }
        );
        Ok(())
    }

    #[test]
    fn yaml_with_relative_file_paths() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("pki"))?;
        std::fs::write(dir.path().join("pki/ca.crt"), CA)?;
        std::fs::write(dir.path().join("pki/admin.crt"), CERT)?;
        std::fs::write(dir.path().join("admin.key"), KEY)?;
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: pki/ca.crt\n    \
             server: https://[::1]:6443/prefix/\n    tls-server-name: kubernetes\n  name: local\n\
             contexts:\n- context:\n    cluster: local\n    user: admin\n  name: other\n\
             - context:\n    cluster: local\n    user: admin\n  name: local\n\
             current-context: other\nusers:\n- name: admin\n  user:\n    client-certificate: pki/admin.crt\n    \
             client-key: {}\n",
            dir.path().join("admin.key").display()
        );
        let path = dir.path().join("config");
        std::fs::write(&path, yaml)?;
        let k = load(&path, Some("local"))?;
        assert_eq!(k.context, "local");
        assert_eq!(k.server, ServerAddress { host: "::1".into(), port: 6443, path_prefix: "/prefix".into() });
        assert_eq!(k.server.authority(), "[::1]:6443");
        assert_eq!(k.tls_server_name, "kubernetes");
        assert_eq!(k.ca_pem, CA.as_bytes());
        assert_eq!(
            k.credentials,
            Credentials::ClientCertificate { cert_pem: CERT.as_bytes().to_vec(), key_pem: KEY.as_bytes().to_vec() }
        );
        Ok(())
    }

    #[test]
    fn yaml_with_tokens_inline_and_from_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("token"), "from-file\n")?;
        let yaml = |user: &str| {
            format!(
                "clusters:\n- name: c\n  cluster:\n    server: https://api.example:8443\n    \
                 certificate-authority-data: {}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n\
                 current-context: x\nusers:\n- name: u\n  user: {user}\n",
                b64(CA)
            )
        };
        let inline = parse(&yaml("{token: abc123}"), dir.path(), None)?;
        assert_eq!(inline.credentials, Credentials::BearerToken("abc123".into()));
        assert_eq!(inline.server.authority(), "api.example:8443");
        let file = parse(&yaml("{tokenFile: token}"), dir.path(), None)?;
        assert_eq!(file.credentials, Credentials::BearerToken("from-file".into()));
        let exec = parse(&yaml("{exec: {command: aws}}"), dir.path(), None);
        assert!(matches!(exec, Err(KubeconfigError::Unsupported(_))), "{exec:?}");
        Ok(())
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let missing = parse("contexts: []\ncurrent-context: nope\n", Path::new("."), None);
        assert!(matches!(missing, Err(KubeconfigError::Missing { kind: "context", .. })), "{missing:?}");
        assert!(matches!(parse("{}", Path::new("."), None), Err(KubeconfigError::NoContext)));
        let http = ServerAddress::parse("http://127.0.0.1:8080");
        assert!(matches!(http, Err(KubeconfigError::Server { .. })), "{http:?}");
        let bad = parse(
            "clusters:\n- {name: c, cluster: {server: 'https://h', certificate-authority-data: '%%%'}}\n\
             contexts:\n- {name: x, context: {cluster: c}}\ncurrent-context: x\n",
            Path::new("."),
            None,
        );
        assert!(matches!(bad, Err(KubeconfigError::Base64 { .. })), "{bad:?}");
    }
}
