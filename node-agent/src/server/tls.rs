//! TLS of the agent's server: a self-signed serving certificate kept under `<root-dir>/pki/`
//! (created on first start, reused afterwards), and client certificates verified against the
//! cluster CA from the agent's kubeconfig.
//!
//! The serving certificate is self-signed because nobody verifies it: upstream's API server does not
//! verify kubelet serving certificates unless `--kubelet-certificate-authority` is set, and Gantry's
//! control plane does not either. Client certificates are optional at the TLS layer (Prometheus
//! scrapes without one); [`auth`](super::auth) decides per request.
//!
//! Must not depend on the HTTP server; the `ring` provider is passed explicitly, never installed as
//! the process default.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The serving certificate, under `<root-dir>/pki/`.
pub const CERT_FILE: &str = "agent.crt";
/// Its key.
pub const KEY_FILE: &str = "agent.key";

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("generating the serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("serving certificate {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cluster ca from the kubeconfig: {0}")]
    ClientCa(String),
    #[error("building the tls server config: {0}")]
    Config(#[from] rustls::Error),
}

/// The serving certificate and key (PEM) under `pki_dir`, created for `hosts` when missing or unreadable.
pub fn ensure_serving_cert(pki_dir: &Path, hosts: &[String]) -> Result<(String, String), TlsError> {
    let cert_path = pki_dir.join(CERT_FILE);
    let key_path = pki_dir.join(KEY_FILE);
    if let (Ok(cert), Ok(key)) = (std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path)) {
        if parse_pair(&cert, &key).is_ok() {
            return Ok((cert, key));
        }
        tracing::warn!(path = %cert_path.display(), "serving certificate unreadable: generating a new one");
    }
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { action, path, source }
    };
    std::fs::create_dir_all(pki_dir).map_err(io("creating", pki_dir))?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "gantry-node-agent");
    let cert = params.self_signed(&key)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    for (path, contents, mode) in [(&key_path, &key_pem, 0o600), (&cert_path, &cert_pem, 0o644)] {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(io("writing", path))?;
        file.write_all(contents.as_bytes()).map_err(io("writing", path))?;
    }
    tracing::info!(path = %cert_path.display(), ?hosts, "generated a self-signed serving certificate");
    Ok((cert_pem, key_pem))
}

fn parse_pair(cert_pem: &str, key_pem: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    Ok((chain, key))
}

/// The server config: serves `cert_pem`/`key_pem`, asks for a client certificate and verifies one
/// against `client_cas` (DER) when given, accepts connections without one. With no CA at all every
/// client is anonymous (only the open endpoints answer).
pub fn server_config(cert_pem: &str, key_pem: &str, client_cas: &[Vec<u8>]) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) =
        parse_pair(cert_pem, key_pem).map_err(|reason| TlsError::Invalid { path: PathBuf::from(CERT_FILE), reason })?;
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let mut config = if client_cas.is_empty() {
        builder.with_no_client_auth().with_single_cert(chain, key)?
    } else {
        let mut roots = RootCertStore::empty();
        for der in client_cas {
            roots.add(CertificateDer::from(der.clone())).map_err(|e| TlsError::ClientCa(e.to_string()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        builder.with_client_cert_verifier(verifier).with_single_cert(chain, key)?
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_certificate_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let hosts = vec!["127.0.0.1".to_string(), "node-1".to_string()];
        let (cert, key) = ensure_serving_cert(&pki, &hosts).expect("created");
        let again = ensure_serving_cert(&pki, &hosts).expect("reused");
        assert_eq!((cert.clone(), key.clone()), again, "an existing certificate is reused");
        server_config(&cert, &key, &[]).expect("usable");
        std::fs::write(pki.join(CERT_FILE), "garbage").expect("corrupt");
        let (fresh, _) = ensure_serving_cert(&pki, &hosts).expect("replaced");
        assert_ne!(fresh, cert, "an unreadable certificate is replaced");
    }

    #[test]
    fn a_bad_client_ca_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = ensure_serving_cert(dir.path(), &["localhost".to_string()]).expect("cert");
        assert!(matches!(server_config(&cert, &key, &[b"not der".to_vec()]), Err(TlsError::ClientCa(_))));
    }
}
