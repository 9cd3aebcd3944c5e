//! The rustls configuration of the HTTPS API server: serving certificate from the cluster PKI, optional
//! client certificates verified against the cluster CA, ALPN `http/1.1`; and of its client towards node
//! agents (logs and exec), which presents the kubelet client certificate.
//!
//! Owns only TLS settings. Must not depend on the HTTP server, the store or authentication logic (the
//! server hands the verified peer certificate to `auth`), and never installs or uses a process-default
//! crypto provider: the `ring` provider is passed explicitly.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::pki::{
    Pki, PkiError, CA_CERT_FILE, KUBELET_CLIENT_CERT_FILE, KUBELET_CLIENT_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE,
};

/// The only application protocol offered.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Builds the API server's TLS config from `pki`: serves `pki.server_cert_pem`, requests client
/// certificates and verifies them against the cluster CA, but accepts connections without one (bearer
/// tokens are authenticated later).
pub fn server_config(pki: &Pki) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let ca_path = pki.dir.join(CA_CERT_FILE);
    let invalid =
        |path: &std::path::Path, reason: String| PkiError::InvalidCertificate { path: path.to_owned(), reason };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_cert_pem.as_bytes()) {
        let cert = cert.map_err(|e| invalid(&ca_path, e.to_string()))?;
        roots.add(cert).map_err(|e| invalid(&ca_path, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(invalid(&ca_path, "no certificate found".to_owned()));
    }
    let client_verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|source| PkiError::ClientVerifier { source })?;

    let cert_path = pki.dir.join(SERVER_CERT_FILE);
    let chain = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(invalid(&cert_path, "no certificate found".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes())
        .map_err(|e| PkiError::InvalidKey { path: pki.dir.join(SERVER_KEY_FILE), reason: e.to_string() })?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| PkiError::TlsConfig { source })?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain, key)
        .map_err(|source| PkiError::TlsConfig { source })?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// The client config for connections to node agents: presents `apiserver-kubelet-client.crt` and
/// does not verify the agent's serving certificate, which is self-signed. Upstream's API server does
/// the same unless `--kubelet-certificate-authority` is given; the handshake signature is still
/// checked, so the session is bound to whatever key the agent showed.
pub fn kubelet_client_config(pki: &Pki) -> Result<Arc<ClientConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_path = pki.dir.join(KUBELET_CLIENT_CERT_FILE);
    let chain = CertificateDer::pem_slice_iter(pki.kubelet_client_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::InvalidCertificate { path: cert_path.clone(), reason: e.to_string() })?;
    let key = PrivateKeyDer::from_pem_slice(pki.kubelet_client_key_pem.as_bytes())
        .map_err(|e| PkiError::InvalidKey { path: pki.dir.join(KUBELET_CLIENT_KEY_FILE), reason: e.to_string() })?;
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| PkiError::TlsConfig { source })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UnverifiedAgentCert(provider)))
        .with_client_auth_cert(chain, key)
        .map_err(|source| PkiError::TlsConfig { source })?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any agent serving certificate (see [`kubelet_client_config`]) but verifies handshake
/// signatures with the provider's algorithms.
#[derive(Debug)]
struct UnverifiedAgentCert(Arc<CryptoProvider>);

impl ServerCertVerifier for UnverifiedAgentCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::{Authenticator, UserInfo, GROUP_AUTHENTICATED};
    use crate::api::pki::{ensure_pki, issue_client_cert, ADMIN_CERT_FILE, ADMIN_KEY_FILE};
    use rustls::pki_types::ServerName;
    use rustls::ClientConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("ca pem")).expect("add ca");
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert pem");
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("client key pem");
                builder.with_client_auth_cert(chain, key).expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Arc::new(config)
    }

    /// Runs a handshake over an in-memory pipe and one request/response byte exchange; returns the peer
    /// certificate the server saw, or the server-side error.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        server_name: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from(server_name.to_owned()).expect("server name");
        let server_side = async move {
            let mut stream = TlsAcceptor::from(server).accept(server_io).await.map_err(|e| e.to_string())?;
            let (_, connection) = stream.get_ref();
            assert_eq!(connection.alpn_protocol(), Some(ALPN_HTTP1));
            let peer = connection.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            stream.write_all(&byte).await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(peer)
        };
        let client_side = async move {
            let mut stream = TlsConnector::from(client).connect(name, client_io).await.map_err(|e| e.to_string())?;
            stream.write_all(b"x").await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        let (server_result, client_result) = tokio::join!(server_side, client_side);
        let peer = server_result?;
        client_result.map_err(|e| format!("client: {e}"))?;
        Ok(peer)
    }

    #[tokio::test]
    async fn handshake_with_and_without_client_certificate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let pki = ensure_pki(dir, &["10.1.2.3".to_owned()], "https://10.1.2.3:6443").expect("pki");
        let server = server_config(&pki).expect("server config");
        let auth = Authenticator::new(None).expect("authenticator");

        let admin_cert = std::fs::read_to_string(dir.join(ADMIN_CERT_FILE)).expect("admin.crt");
        let admin_key = std::fs::read_to_string(dir.join(ADMIN_KEY_FILE)).expect("admin.key");
        let peer =
            handshake(server.clone(), client_config(&pki.ca_cert_pem, Some((&admin_cert, &admin_key))), "localhost")
                .await
                .expect("handshake with admin certificate");
        let peer = peer.expect("server sees the admin certificate");
        assert_eq!(
            auth.authenticate(Some(&peer), None),
            Some(UserInfo {
                name: "admin".to_owned(),
                uid: String::new(),
                groups: vec!["system:masters".to_owned(), GROUP_AUTHENTICATED.to_owned()],
            })
        );

        let peer = handshake(server.clone(), client_config(&pki.ca_cert_pem, None), "10.1.2.3")
            .await
            .expect("handshake without client certificate, by ip san");
        assert_eq!(peer, None);
        assert_eq!(auth.authenticate(peer.as_deref(), None), None);

        let groups = vec!["system:nodes".to_owned(), "extra".to_owned()];
        let (node_cert, node_key) = issue_client_cert(dir, "system:node:n1", &groups).expect("node cert");
        let peer = handshake(server, client_config(&pki.ca_cert_pem, Some((&node_cert, &node_key))), "::1")
            .await
            .expect("handshake with issued client certificate")
            .expect("peer certificate");
        let user = auth.authenticate(Some(&peer), None).expect("authenticated");
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.groups, vec!["system:nodes", "extra", GROUP_AUTHENTICATED]);
    }

    #[tokio::test]
    async fn foreign_client_certificate_and_unknown_host_are_rejected() {
        let ours = tempfile::tempdir().expect("tempdir");
        let theirs = tempfile::tempdir().expect("tempdir");
        let pki = ensure_pki(ours.path(), &[], "https://127.0.0.1:6443").expect("our pki");
        ensure_pki(theirs.path(), &[], "https://127.0.0.1:6443").expect("their pki");
        let server = server_config(&pki).expect("server config");

        let (cert, key) = issue_client_cert(theirs.path(), "mallory", &["system:masters".to_owned()]).expect("cert");
        let err = handshake(server.clone(), client_config(&pki.ca_cert_pem, Some((&cert, &key))), "localhost")
            .await
            .expect_err("a client certificate from another ca is refused");
        assert!(err.to_lowercase().contains("certificate"), "{err}");

        let err = handshake(server, client_config(&pki.ca_cert_pem, None), "not-in-san.example")
            .await
            .expect_err("the serving certificate is not valid for other names");
        assert!(!err.is_empty());
    }

    #[tokio::test]
    async fn the_kubelet_client_accepts_a_self_signed_agent_and_shows_its_certificate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = ensure_pki(tmp.path(), &[], "https://127.0.0.1:6443").expect("pki");
        // An agent: self-signed serving certificate, client certificates checked against the cluster CA.
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params").self_signed(&key);
        let agent_pki = Pki {
            server_cert_pem: cert.expect("self-signed").pem(),
            server_key_pem: key.serialize_pem(),
            ..pki.clone()
        };
        let agent = server_config(&agent_pki).expect("agent config");
        let peer = handshake(agent, kubelet_client_config(&pki).expect("client config"), "127.0.0.1")
            .await
            .expect("handshake with an unverified serving certificate")
            .expect("client certificate presented");
        let user = Authenticator::new(None).expect("auth").authenticate(Some(&peer), None).expect("authenticated");
        assert_eq!(user.name, "kube-apiserver-kubelet-client");
        assert!(user.groups.iter().any(|g| g == "system:masters"));
    }

    #[test]
    fn broken_pki_material_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = ensure_pki(tmp.path(), &[], "https://127.0.0.1:6443").expect("pki");
        let mut broken = pki.clone();
        broken.ca_cert_pem = String::new();
        assert!(matches!(server_config(&broken), Err(PkiError::InvalidCertificate { .. })));
        let mut broken = pki.clone();
        broken.server_key_pem = "nope".to_owned();
        assert!(matches!(server_config(&broken), Err(PkiError::InvalidKey { .. })));
        let mut broken = pki;
        broken.server_key_pem = std::fs::read_to_string(tmp.path().join(ADMIN_KEY_FILE)).expect("admin.key");
        assert!(matches!(server_config(&broken), Err(PkiError::TlsConfig { .. })), "key must match certificate");
    }
}
