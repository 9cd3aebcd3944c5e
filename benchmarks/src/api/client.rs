//! HTTPS/1.1 connections to a Kubernetes API server.
//!
//! [`Connector`] holds what every connection needs (TLS config with the cluster CA and client
//! certificate, bearer token, server addresses). [`ApiConnection`] is one keep-alive connection
//! (hyper's HTTP/1.1 client over tokio-rustls) used by exactly one benchmark client at a time, so a
//! row with N clients runs on N connections and no request ever waits for a pool. A connection that
//! fails is dropped and re-dialled on the next request. [`WatchStream`] is a dedicated connection
//! carrying one `?watch=1` response, read line by line.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::kubeconfig::{Credentials, ResolvedKubeconfig, ServerAddress};

/// Content type of request bodies.
const JSON: &str = "application/json";
/// Content type of JSON merge patches.
const MERGE_PATCH: &str = "application/merge-patch+json";
/// Longest response body quoted in an error.
const ERROR_BODY_CHARS: usize = 300;

/// Errors of API requests.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS configuration could not be built from the kubeconfig.
    #[error("invalid tls material in the kubeconfig: {0}")]
    Tls(String),
    /// The TCP connection failed.
    #[error("failed to connect to {addr}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("tls handshake with {addr} failed")]
    Handshake {
        /// `host:port`.
        addr: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// HTTP-level failure (connection closed, malformed response, ...).
    #[error("http error talking to {addr}")]
    Http {
        /// `host:port`.
        addr: String,
        /// Underlying error.
        #[source]
        source: hyper::Error,
    },
    /// The request could not be built.
    #[error("failed to build request {0}")]
    Request(String, #[source] http::Error),
    /// The server answered with a non-2xx status.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// Method.
        method: Method,
        /// Path and query.
        path: String,
        /// Status code.
        status: StatusCode,
        /// Start of the response body.
        body: String,
    },
    /// No answer within the request timeout.
    #[error("{method} {path}: no response within {timeout:?}")]
    Timeout {
        /// Method.
        method: Method,
        /// Path and query.
        path: String,
        /// The timeout.
        timeout: Duration,
    },
}

impl ClientError {
    /// HTTP status of a non-2xx answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Everything needed to open connections to the API server(s).
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
    server_name: ServerName<'static>,
    servers: Vec<ServerAddress>,
    bearer: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TLS connector holds key material: show only where connections go.
        f.debug_struct("Connector").field("servers", &self.servers).field("timeout", &self.timeout).finish()
    }
}

impl Connector {
    /// From a resolved kubeconfig; requests time out after `timeout`.
    pub fn new(config: &ResolvedKubeconfig, timeout: Duration) -> Result<Self, ClientError> {
        let tls_err = |what: &str, e: &dyn std::fmt::Display| ClientError::Tls(format!("{what}: {e}"));
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&config.ca_pem) {
            roots.add(cert.map_err(|e| tls_err("ca certificate", &e))?).map_err(|e| tls_err("ca certificate", &e))?;
        }
        if roots.is_empty() {
            return Err(ClientError::Tls("no certificate in the certificate authority".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("protocol versions", &e))?
            .with_root_certificates(roots);
        let (tls, bearer) = match &config.credentials {
            Credentials::ClientCertificate { cert_pem, key_pem } => {
                let chain = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls_err("client certificate", &e))?;
                let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| tls_err("client key", &e))?;
                (builder.with_client_auth_cert(chain, key).map_err(|e| tls_err("client certificate", &e))?, None)
            }
            Credentials::BearerToken(token) => (builder.with_no_client_auth(), Some(format!("Bearer {token}"))),
            Credentials::None => (builder.with_no_client_auth(), None),
        };
        let server_name =
            ServerName::try_from(config.tls_server_name.clone()).map_err(|e| tls_err("tls server name", &e))?;
        Ok(Self {
            tls: TlsConnector::from(Arc::new(tls)),
            server_name,
            servers: vec![config.server.clone()],
            bearer,
            timeout,
        })
    }

    /// Spreads connections over these servers instead of the kubeconfig's one (the replicas of a
    /// cluster this tool started; they share the CA and credentials).
    pub fn with_servers(mut self, servers: Vec<ServerAddress>) -> Self {
        if !servers.is_empty() {
            self.servers = servers;
        }
        self
    }

    /// Server addresses, in order.
    pub fn servers(&self) -> &[ServerAddress] {
        &self.servers
    }

    /// Per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A (lazily dialled) connection to server `index % servers`.
    pub fn connection(self: &Arc<Self>, index: usize) -> ApiConnection {
        ApiConnection { connector: self.clone(), server: index % self.servers.len(), sender: None }
    }

    async fn dial(&self, server: usize) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let addr = &self.servers[server];
        let tcp = TcpStream::connect((addr.host.as_str(), addr.port))
            .await
            .map_err(|source| ClientError::Connect { addr: addr.authority(), source })?;
        // Small requests and responses: do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| ClientError::Handshake { addr: addr.authority(), source })?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|source| ClientError::Http { addr: addr.authority(), source })?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the peer closes; errors surface on the next request.
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn request(
        &self,
        server: usize,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let addr = &self.servers[server];
        let uri = format!("{}{path}", addr.path_prefix);
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, addr.authority())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "api-bench");
        if !body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(bearer) = &self.bearer {
            builder = builder.header(header::AUTHORIZATION, bearer);
        }
        builder.body(Full::new(body)).map_err(|e| ClientError::Request(path.to_string(), e))
    }
}

/// One keep-alive connection, re-dialled after a failure.
#[derive(Debug)]
pub struct ApiConnection {
    connector: Arc<Connector>,
    server: usize,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl ApiConnection {
    /// Dials now (so that connection setup is not part of the first measured request).
    pub async fn connect(&mut self) -> Result<(), ClientError> {
        if self.sender.is_none() {
            self.sender = Some(self.connector.dial(self.server).await?);
        }
        Ok(())
    }

    /// Sends one request (a JSON body, if any) and reads the whole response; non-2xx answers are
    /// [`ClientError::Status`].
    pub async fn send(&mut self, method: Method, path: &str, body: Bytes) -> Result<Bytes, ClientError> {
        self.send_as(method, path, body, JSON).await
    }

    /// `PATCH path` with a JSON merge patch (RFC 7386), returning the patched object's body.
    pub async fn merge_patch(&mut self, path: &str, patch: Bytes) -> Result<Bytes, ClientError> {
        self.send_as(Method::PATCH, path, patch, MERGE_PATCH).await
    }

    async fn send_as(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Bytes, ClientError> {
        let timeout = self.connector.timeout;
        match tokio::time::timeout(timeout, self.send_inner(method.clone(), path, body, content_type)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection may still carry the late answer: never reuse it.
                self.sender = None;
                Err(ClientError::Timeout { method, path: path.to_string(), timeout })
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Bytes, ClientError> {
        let addr = self.connector.servers[self.server].authority();
        let request = self.connector.request(self.server, method.clone(), path, body, content_type)?;
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(self.connector.dial(self.server).await?),
        };
        let result = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        let (status, body) = result.map_err(|source| {
            self.sender = None;
            ClientError::Http { addr, source }
        })?;
        if !status.is_success() {
            return Err(ClientError::Status { method, path: path.to_string(), status, body: snippet(&body) });
        }
        Ok(body)
    }

    /// `GET path`, then parses the body as JSON.
    pub async fn get_json(&mut self, path: &str) -> Result<serde_json::Value, ClientError> {
        let body = self.send(Method::GET, path, Bytes::new()).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Status {
            method: Method::GET,
            path: path.to_string(),
            status: StatusCode::OK,
            body: format!("response is not json: {e}"),
        })
    }
}

/// One watch response on its own connection, split into JSON lines.
#[derive(Debug)]
pub struct WatchStream {
    body: Incoming,
    buffer: BytesMut,
    // Keeps the connection's request side alive while the body streams.
    _sender: SendRequest<Full<Bytes>>,
}

impl WatchStream {
    /// Opens `GET path` (a `?watch=1` URL) on a new connection to server `index % servers` and waits
    /// for the response headers (so the watch is registered when this returns).
    pub async fn open(connector: &Connector, index: usize, path: &str) -> Result<Self, ClientError> {
        let server = index % connector.servers.len();
        let addr = connector.servers[server].authority();
        let mut sender = connector.dial(server).await?;
        let request = connector.request(server, Method::GET, path, Bytes::new(), JSON)?;
        let response = async {
            sender.ready().await?;
            sender.send_request(request).await
        };
        let response = tokio::time::timeout(connector.timeout, response)
            .await
            .map_err(|_| ClientError::Timeout {
                method: Method::GET,
                path: path.to_string(),
                timeout: connector.timeout,
            })?
            .map_err(|source| ClientError::Http { addr, source })?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = (&mut body).collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            return Err(ClientError::Status {
                method: Method::GET,
                path: path.to_string(),
                status,
                body: snippet(&bytes),
            });
        }
        Ok(Self { body, buffer: BytesMut::new(), _sender: sender })
    }

    /// The next complete line (without the newline); `None` when the stream ended.
    pub async fn next_line(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line = self.buffer.split_to(pos + 1).freeze();
                return Ok(Some(line.slice(..pos)));
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                None => return Ok(None),
            }
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(ERROR_BODY_CHARS).collect();
    if text.chars().count() > ERROR_BODY_CHARS {
        out.push('…');
    }
    out
}
