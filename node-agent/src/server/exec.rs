//! `GET|POST /exec/{namespace}/{pod}/{container}?command=..&stdin=&stdout=&stderr=&tty=`: runs a
//! command in a running container over a websocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`).
//!
//! The agent calls CRI `Exec`, which returns a URL on the runtime's streaming server, opens the
//! session there ([`runtime_stream`](super::runtime_stream): SPDY, v4 streams), answers the client's
//! upgrade and relays: websocket channel messages become data on the matching SPDY stream and back,
//! as upstream's API server translates v5 websockets to SPDY towards kubelets. The exit status
//! arrives on the runtime's error stream as a `metav1.Status` and goes out unchanged on channel 3, so
//! `kubectl exec` exits with the command's code.
//!
//! Stdin EOF: a v5 client's "close stdin" (`[255, 0]`) half-closes the SPDY stdin stream, so the
//! command reads EOF and its remaining output and status still arrive (`echo data | kubectl exec -i
//! pod -- cat` ends). The runtime's websocket endpoint speaks only v4, which cannot say that, hence
//! SPDY. A v4 client cannot close stdin either; its stdin ends when it disconnects.
//!
//! Towards the client, websockets are handled by `tokio-tungstenite` (the handshake through hyper's
//! upgrade): it gives masking, fragmentation, control frames and close handshakes as the RFC wants
//! them, which a hand-written codec would have to re-test.

use futures::{SinkExt, StreamExt};
use gantry_cri_proto::runtime::{ContainerState, ExecRequest};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use super::channel::{self, Protocol, ToRuntime};
use super::cri_log::parse_bool;
use super::error::ServerError;
use super::runtime_stream::{self, Event, RuntimeReader, RuntimeWriter};
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

/// Starts the command over CRI and opens its streams on the runtime; errors here still reach the
/// client as a `Status`, before its upgrade is answered.
pub async fn connect_runtime(
    runtime: &Runtime,
    container_id: &str,
    options: &ExecOptions,
) -> Result<(RuntimeReader, RuntimeWriter), ServerError> {
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
    runtime_stream::connect(&url, options).await
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
pub async fn relay(
    on_upgrade: OnUpgrade,
    protocol: Protocol,
    (mut runtime_rx, mut runtime_tx): (RuntimeReader, RuntimeWriter),
    what: String,
) {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            runtime_tx.shutdown().await;
            return warn!(exec = %what, error = %e, "client upgrade failed");
        }
    };
    let client = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let (mut client_tx, mut client_rx) = client.split();
    info!(exec = %what, protocol = protocol.name(), "exec session started");
    loop {
        tokio::select! {
            from_client = client_rx.next() => match from_client {
                Some(Ok(Message::Binary(data))) => {
                    let sent = match channel::from_client(protocol, &data) {
                        ToRuntime::Forward => runtime_tx.send(data[0], &data[1..]).await,
                        ToRuntime::StdinClosed => runtime_tx.close_stdin().await,
                        ToRuntime::Drop => Ok(()),
                    };
                    if let Err(e) = sent {
                        debug!(exec = %what, error = %e, "writing to the runtime");
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    debug!(exec = %what, "client went away");
                    runtime_tx.shutdown().await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            from_runtime = runtime_rx.next() => match from_runtime {
                Ok(Some(Event::Output { channel, data })) => {
                    let message = channel::to_client(channel, &data);
                    if client_tx.send(Message::Binary(message.into())).await.is_err() {
                        runtime_tx.shutdown().await;
                        return;
                    }
                }
                Ok(Some(Event::Ping(id))) => {
                    if runtime_tx.ping(id).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(exec = %what, error = %e, "runtime stream ended with an error");
                    break;
                }
            },
        }
    }
    runtime_tx.shutdown().await;
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
