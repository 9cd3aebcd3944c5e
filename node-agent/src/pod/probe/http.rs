//! The HTTP GET of `httpGet` probes and hooks, as the kubelet sends it: HTTP/1.1 over TCP or TLS
//! (certificates are not verified), `User-Agent: kube-probe/<version>`, `Accept: */*`, the spec's
//! headers (a `Host` header sets the request's host), no keep-alive; redirects to the same host are
//! followed (at most 10), a redirect to another host ends the chain with its 3xx status. Only the
//! status line and headers are read. The whole exchange, redirects included, runs within one
//! timeout.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::action::{host_port, HttpGet, Scheme};

/// What probes send as `User-Agent` (the kubelet's `kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.33";
/// Redirects followed before giving up, as Go's HTTP client.
const MAX_REDIRECTS: usize = 10;
/// The most response head read.
const MAX_HEAD: usize = 16 * 1024;

/// Why a GET got no status.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("Get {url:?}: dial tcp {addr}: {source}")]
    Connect { url: String, addr: String, source: std::io::Error },
    #[error("Get {url:?}: tls handshake: {source}")]
    Tls { url: String, source: std::io::Error },
    #[error("Get {url:?}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("Get {url:?}: malformed response: {what}")]
    Malformed { url: String, what: String },
    #[error("Get {url:?}: invalid header {name:?}")]
    Header { url: String, name: String },
    #[error("Get {url:?}: stopped after {MAX_REDIRECTS} redirects")]
    Redirects { url: String },
    #[error("Get {url:?}: timeout: no response within {after:?}")]
    Timeout { url: String, after: Duration },
}

/// The status of the last response of a GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The chain stopped at a redirect to another host.
    pub redirect_not_followed: bool,
}

/// One response head.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    status: u16,
    location: Option<String>,
}

/// GETs `target`, following same-host redirects, all within `timeout`.
pub async fn get(target: &HttpGet, timeout: Duration) -> Result<Response, HttpError> {
    match tokio::time::timeout(timeout, follow(target)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout { url: target.url(), after: timeout }),
    }
}

async fn follow(first: &HttpGet) -> Result<Response, HttpError> {
    let mut current = first.clone();
    for _ in 0..=MAX_REDIRECTS {
        let head = request(&current).await?;
        let next = match (&head.location, head.status) {
            (Some(location), 300..=399) => redirect_target(&current, location),
            _ => None,
        };
        let Some(next) = next else { return Ok(Response { status: head.status, redirect_not_followed: false }) };
        if !next.host.eq_ignore_ascii_case(&first.host) {
            return Ok(Response { status: head.status, redirect_not_followed: true });
        }
        current = next;
    }
    Err(HttpError::Redirects { url: first.url() })
}

/// Where a `Location` header sends a request for `current` (absolute, scheme-relative, absolute-path
/// or relative-path references); `None` if it cannot be understood.
fn redirect_target(current: &HttpGet, location: &str) -> Option<HttpGet> {
    let location = location.trim();
    let lower = location.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("http://") {
        (Scheme::Http, &location[7..])
    } else if lower.starts_with("https://") {
        (Scheme::Https, &location[8..])
    } else if let Some(rest) = location.strip_prefix("//") {
        (current.scheme, rest)
    } else if location.starts_with('/') {
        return Some(HttpGet { path: location.to_string(), ..current.clone() });
    } else if location.is_empty() || location.contains("://") {
        return None;
    } else {
        let dir = current.path.split('?').next().unwrap_or("/");
        let dir = &dir[..=dir.rfind('/').unwrap_or(0)];
        return Some(HttpGet { path: format!("{dir}{location}"), ..current.clone() });
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let default_port = if scheme == Scheme::Https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map_or(Some(default_port), |p| p.parse().ok())?;
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().ok()?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return None;
    }
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    Some(HttpGet { scheme, host, port, path, headers: current.headers.clone() })
}

/// The request bytes of a GET of `target`.
fn request_bytes(target: &HttpGet) -> Result<Vec<u8>, HttpError> {
    let has = |name: &str| target.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut headers: Vec<(String, String)> = Vec::new();
    if !has("host") {
        headers.push(("Host".into(), host_port(&target.host, target.port)));
    }
    if !has("user-agent") {
        headers.push(("User-Agent".into(), USER_AGENT.into()));
    }
    if !has("accept") {
        headers.push(("Accept".into(), "*/*".into()));
    }
    headers.push(("Connection".into(), "close".into()));
    headers.extend(target.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("connection")).cloned());
    let mut out = format!("GET {} HTTP/1.1\r\n", target.path);
    if target.path.contains([' ', '\r', '\n']) {
        return Err(HttpError::Malformed { url: target.url(), what: "path contains whitespace".into() });
    }
    for (name, value) in headers {
        let bad = |s: &str| s.contains(['\r', '\n']);
        if name.is_empty() || bad(&name) || bad(&value) || name.contains([':', ' ']) {
            return Err(HttpError::Header { url: target.url(), name });
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

async fn request(target: &HttpGet) -> Result<Head, HttpError> {
    let url = target.url();
    let request = request_bytes(target)?;
    let addr = host_port(&target.host, target.port);
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await.map_err(|source| HttpError::Connect {
        url: url.clone(),
        addr,
        source,
    })?;
    match target.scheme {
        Scheme::Http => exchange(tcp, &request, &url).await,
        Scheme::Https => {
            let invalid = |e: String| HttpError::Tls {
                url: url.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            };
            let name = ServerName::try_from(target.host.clone()).map_err(|e| invalid(e.to_string()))?;
            let config = tls_config().map_err(|e| invalid(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|source| HttpError::Tls { url: url.clone(), source })?;
            exchange(tls, &request, &url).await
        }
    }
}

/// Sends `request` and reads the response head.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    url: &str,
) -> Result<Head, HttpError> {
    let io = |source| HttpError::Io { url: url.to_string(), source };
    stream.write_all(request).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(HttpError::Malformed {
                url: url.to_string(),
                what: "connection closed before the headers".into(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse_head(&buf).map_err(|what| HttpError::Malformed { url: url.to_string(), what })? {
            return Ok(head);
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::Malformed { url: url.to_string(), what: "response headers too long".into() });
        }
    }
}

/// The head of a response, once `buf` holds all of it.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let status = response.code.ok_or("no status code")?;
    let location = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned());
    Ok(Some(Head { status, location }))
}

/// Accepts any server certificate (probes do not verify), but checks handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client TLS configuration of probes (built per connection: HTTPS probes are rare and cheap).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
