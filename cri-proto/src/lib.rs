//! CRI v1 bindings for Gantry: the `runtime.v1` types and clients of the `k8s-cri` crate, and a gRPC
//! channel over the runtime's unix socket (containerd's or CRI-O's). The node agent is the only user.
//!
//! Must not depend on any other Gantry crate.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The CRI v1 messages and services.
pub use k8s_cri::v1 as runtime;

/// `runtime.v1.RuntimeService` over a channel.
pub type RuntimeClient = runtime::runtime_service_client::RuntimeServiceClient<Channel>;
/// `runtime.v1.ImageService` over a channel.
pub type ImageClient = runtime::image_service_client::ImageServiceClient<Channel>;

/// Why the runtime could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("runtime endpoint {endpoint:?} is not a unix socket (expected unix:///path or /path)")]
    UnsupportedEndpoint { endpoint: String },
    #[error("connecting to the runtime at {path}: {source}")]
    Connect { path: String, source: tonic::transport::Error },
}

/// The socket path of a `--runtime-endpoint` value: `unix:///run/containerd/containerd.sock` or a
/// plain absolute path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, CriError> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(CriError::UnsupportedEndpoint { endpoint: endpoint.to_string() })
    }
}

/// Both CRI clients, sharing one channel.
#[derive(Clone)]
pub struct CriClients {
    pub runtime: RuntimeClient,
    pub image: ImageClient,
}

/// Opens a channel to the runtime's socket (failing after `timeout` if nothing answers).
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<CriClients, CriError> {
    let path = socket_path(endpoint)?;
    let shown = path.display().to_string();
    // The URI is required by tonic but unused: every connection goes to the socket.
    let channel = Endpoint::from_static("http://cri.invalid")
        .connect_timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|source| CriError::Connect { path: shown, source })?;
    Ok(CriClients { runtime: RuntimeClient::new(channel.clone()), image: ImageClient::new(channel) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_unix_sockets() {
        assert_eq!(socket_path("unix:///run/c.sock").expect("unix"), PathBuf::from("/run/c.sock"));
        assert_eq!(socket_path("/run/c.sock").expect("path"), PathBuf::from("/run/c.sock"));
        assert!(matches!(socket_path("tcp://127.0.0.1:1"), Err(CriError::UnsupportedEndpoint { .. })));
        assert!(matches!(socket_path("relative.sock"), Err(CriError::UnsupportedEndpoint { .. })));
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_connect_error_naming_the_path() {
        let dir = std::env::temp_dir().join(format!("gantry-cri-missing-{}", std::process::id()));
        let endpoint = format!("unix://{}/none.sock", dir.display());
        match connect(&endpoint, Duration::from_millis(200)).await {
            Err(CriError::Connect { path, .. }) => assert!(path.ends_with("none.sock"), "{path}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("connected to a socket that does not exist"),
        }
    }
}
