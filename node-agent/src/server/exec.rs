//! `GET|POST /exec/{namespace}/{pod}/{container}?command=..&stdin=&stdout=&stderr=&tty=`: runs a
//! command in a running container over a websocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`).
//!
//! The agent calls CRI `Exec`, which returns a URL on the runtime's streaming server; it connects
//! there as a websocket client speaking `v4.channel.k8s.io` (containerd 1.6 serves it beside SPDY),
//! answers the client's upgrade, and relays messages both ways through
//! [`channel`](super::channel). The exit status arrives from the runtime on channel 3 as a
//! `metav1.Status` and is passed on unchanged, so `kubectl exec` exits with the command's code.
//!
//! Stdin EOF: v4 cannot signal that the client closed stdin (that is why v5 added channel 255), and
//! ending the runtime connection would close stdout and lose the exit status too. So a v5 "close
//! stdin" is logged and not passed on: commands that wait for EOF on stdin (`cat` fed by a pipe)
//! keep waiting until the client disconnects. Interactive sessions (`-it`) end with the shell's
//! `exit` or Ctrl-D through the TTY, which works.
//!
//! Websockets are handled by `tokio-tungstenite` on both sides (the handshake through hyper's
//! upgrade as server, a plain TCP client towards the runtime): it gives masking, fragmentation,
//! control frames and close handshakes as the RFC wants them, which a hand-written codec would
//! have to re-test.

use futures::{SinkExt, StreamExt};
use gantry_cri_proto::runtime::{ContainerState, ExecRequest};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use super::channel::{self, Protocol, ToRuntime};
use super::cri_log::parse_bool;
use super::error::ServerError;
use crate::runtime::{Runtime, CONTAINER_NAME_LABEL, NODE_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL};

/// What the client asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Parses the query (upstream's `PodExecOptions` names; `command` repeats).
    pub fn from_query(query: &[(String, String)]) -> Result<Self, ServerError> {
        let boolean = |name: &str| -> Result<bool, ServerError> {
            match query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
                None | Some("") => Ok(false),
                Some(v) => parse_bool(v).ok_or_else(|| ServerError::BadRequest(format!("invalid {name}={v:?}"))),
            }
        };
        let command: Vec<String> = query.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
        if command.is_empty() {
            return Err(ServerError::BadRequest("you must specify at least 1 command".into()));
        }
        let options = Self {
            command,
            stdin: boolean("stdin")?,
            stdout: boolean("stdout")?,
            stderr: boolean("stderr")?,
            tty: boolean("tty")?,
        };
        if !(options.stdin || options.stdout || options.stderr) {
            return Err(ServerError::BadRequest("you must specify at least 1 of stdin, stdout, stderr".into()));
        }
        Ok(options)
    }
}

/// The client's websocket handshake: its key and the protocol chosen from those it offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub key: String,
    pub protocol: Protocol,
}

/// Checks that `headers` ask for a websocket with a channel protocol this agent serves.
pub fn handshake(headers: &HeaderMap) -> Result<Handshake, ServerError> {
    let has_token = |name: http::header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token(http::header::UPGRADE, "websocket") {
        return Err(ServerError::BadRequest(
            "exec needs a websocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not served".into(),
        ));
    }
    let key = headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ServerError::BadRequest("websocket upgrade without Sec-WebSocket-Key".into()))?
        .to_string();
    let offered = headers.get_all(http::header::SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok());
    let protocol = channel::negotiate(offered).ok_or_else(|| {
        ServerError::BadRequest(
            "no supported websocket protocol offered: want v5.channel.k8s.io or v4.channel.k8s.io".into(),
        )
    })?;
    Ok(Handshake { key, protocol })
}

/// The running container `container` of pod `namespace/pod` on this node: its runtime id.
pub async fn running_container(
    runtime: &Runtime,
    node: &str,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<String, ServerError> {
    let pod_labels = HashMap::from([
        (NODE_LABEL.to_string(), node.to_string()),
        (POD_NAMESPACE_LABEL.to_string(), namespace.to_string()),
        (POD_NAME_LABEL.to_string(), pod.to_string()),
    ]);
    let mut labels = pod_labels.clone();
    labels.insert(CONTAINER_NAME_LABEL.to_string(), container.to_string());
    let containers = runtime.containers(labels).await?;
    if let Some(c) =
        containers.iter().filter(|c| c.state == ContainerState::ContainerRunning as i32).max_by_key(|c| c.created_at)
    {
        return Ok(c.id.clone());
    }
    if !containers.is_empty() {
        return Err(ServerError::BadRequest(format!("container \"{container}\" in pod \"{pod}\" is not running")));
    }
    if runtime.sandboxes(pod_labels).await?.is_empty() {
        return Err(ServerError::NotFound(format!(
            "pod \"{pod}\" in namespace \"{namespace}\" not found on this node"
        )));
    }
    Err(ServerError::NotFound(format!("container \"{container}\" in pod \"{pod}\" not found")))
}

type RuntimeSocket = WebSocketStream<TcpStream>;

/// Starts the command over CRI and connects to the runtime's stream; errors here still reach the
/// client as a `Status`, before its upgrade is answered.
pub async fn connect_runtime(
    runtime: &Runtime,
    container_id: &str,
    options: &ExecOptions,
) -> Result<RuntimeSocket, ServerError> {
    let url = runtime
        .exec(ExecRequest {
            container_id: container_id.to_string(),
            cmd: options.command.clone(),
            tty: options.tty,
            stdin: options.stdin,
            stdout: options.stdout,
            // With a TTY stdout and stderr are one stream; the runtime rejects both.
            stderr: options.stderr && !options.tty,
        })
        .await?;
    let ws_url = url
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .ok_or_else(|| ServerError::Internal(format!("runtime streaming url {url:?} is not plain http")))?;
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| ServerError::Internal(format!("runtime streaming url {url:?}: {e}")))?;
    request.headers_mut().insert(http::header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(Protocol::V4.name()));
    let authority = request.uri().authority().map(|a| a.to_string()).unwrap_or_default();
    let tcp = TcpStream::connect(&authority)
        .await
        .map_err(|e| ServerError::Internal(format!("connecting to the runtime's streaming server {authority}: {e}")))?;
    let (socket, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .map_err(|e| ServerError::Internal(format!("websocket to the runtime's streaming server {authority}: {e}")))?;
    Ok(socket)
}

/// The `101 Switching Protocols` answer to the client's handshake.
pub fn switching_protocols<B: Default>(handshake: &Handshake) -> Response<B> {
    let mut resp = Response::new(B::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(handshake.key.as_bytes())) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(handshake.protocol.name()));
    resp
}

/// Waits for the client's upgrade to complete and relays until either side ends.
pub async fn relay(on_upgrade: OnUpgrade, protocol: Protocol, runtime_socket: RuntimeSocket, what: String) {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => return warn!(exec = %what, error = %e, "client upgrade failed"),
    };
    let client = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let (mut client_tx, mut client_rx) = client.split();
    let (mut runtime_tx, mut runtime_rx) = runtime_socket.split();
    info!(exec = %what, protocol = protocol.name(), "exec session started");
    loop {
        tokio::select! {
            from_client = client_rx.next() => match from_client {
                Some(Ok(Message::Binary(data))) => match channel::from_client(protocol, &data) {
                    ToRuntime::Forward => {
                        if runtime_tx.send(Message::Binary(data)).await.is_err() {
                            break;
                        }
                    }
                    // See the module docs: v4 has no stdin close, and closing the connection would
                    // lose the command's output and status.
                    ToRuntime::StdinClosed => debug!(exec = %what, "client closed stdin; v4 cannot pass that on"),
                    ToRuntime::Drop => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    debug!(exec = %what, "client went away");
                    let _ = runtime_tx.close().await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            from_runtime = runtime_rx.next() => match from_runtime {
                Some(Ok(Message::Binary(data))) => {
                    if channel::to_client(&data) && client_tx.send(Message::Binary(data)).await.is_err() {
                        let _ = runtime_tx.close().await;
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    debug!(exec = %what, error = %e, "runtime stream ended with an error");
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    // The runtime is done (its status went out on channel 3). A close without code 1000 makes
    // client-go report "close 1005 (no status)" instead of reading the status as complete.
    let normal = CloseFrame { code: CloseCode::Normal, reason: "".into() };
    let _ = client_tx.send(Message::Close(Some(normal))).await;
    let _ = client_tx.close().await;
    info!(exec = %what, "exec session ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn exec_options_parse_repeated_commands_and_flags() {
        let o = ExecOptions::from_query(&query(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo hi; exit 3"),
            ("stdout", "true"),
            ("stderr", "1"),
        ]))
        .expect("options");
        assert_eq!(o.command, ["sh", "-c", "echo hi; exit 3"]);
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        assert!(ExecOptions::from_query(&query(&[("stdout", "true")])).is_err(), "no command");
        assert!(ExecOptions::from_query(&query(&[("command", "ls")])).is_err(), "no stream");
        assert!(ExecOptions::from_query(&query(&[("command", "ls"), ("stdout", "maybe")])).is_err());
    }

    #[test]
    fn the_handshake_needs_a_websocket_upgrade_and_a_channel_protocol() {
        let mut headers = HeaderMap::new();
        assert!(handshake(&headers).is_err(), "spdy or plain requests are refused");
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(http::header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(handshake(&headers).is_err(), "no protocol offered");
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("v5.channel.k8s.io"));
        let h = handshake(&headers).expect("handshake");
        assert_eq!(h.protocol, Protocol::V5);
        let resp: Response<()> = switching_protocols(&h);
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455's example key and answer.
        assert_eq!(resp.headers()[http::header::SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(resp.headers()[http::header::SEC_WEBSOCKET_PROTOCOL], "v5.channel.k8s.io");
    }
}
