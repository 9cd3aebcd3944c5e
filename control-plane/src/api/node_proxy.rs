//! `pods/{name}/log` and `pods/{name}/exec`: proxied to the node agent running the pod, at the node's
//! `status.addresses` (InternalIP first) and `status.daemonEndpoints.kubeletEndpoint.port`, over
//! HTTPS with the kubelet client certificate (see `tls::kubelet_client_config`). Logs stream through
//! as `text/plain`; exec answers the client's websocket upgrade with the agent's and then copies bytes
//! both ways, so the channel protocol is the agent's business.
//!
//! Pure parts (container choice, log query validation, node address) are plain functions; must not
//! depend on the store's internals beyond `ObjectStore::get`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::{debug, Instrument};

use super::query::{parse_bool, Query};
use super::resources;
use super::router::ResourceTarget;
use super::status::ApiError;
use super::storage::ObjectStore;

type Body = BoxBody<Bytes, std::convert::Infallible>;

/// The port agents listen on when the node does not say (upstream kubelet's default).
pub const DEFAULT_AGENT_PORT: u16 = 10250;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest error body read from an agent.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Log query parameters passed on to the agent (upstream's `PodLogOptions`).
const LOG_PARAMS: [&str; 7] =
    ["follow", "previous", "tailLines", "sinceSeconds", "sinceTime", "timestamps", "limitBytes"];

/// The container a log or exec request addresses: `requested`, or the pod's only container.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&init).chain(&names("ephemeralContainers")).any(|n| n == c) => {
            Ok(c.to_string())
        }
        Some(c) => Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut message =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !init.is_empty() {
                message.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// The agent's query for `pods/log`: the log options, validated as upstream validates `PodLogOptions`.
pub fn log_query(query: &Query) -> Result<String, ApiError> {
    let bad = |param: &str, value: &str, why: &str| {
        ApiError::bad_request(format!("invalid value {value:?} for {param}: {why}"))
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    for param in LOG_PARAMS {
        let Some(value) = query.get(param).filter(|v| !v.is_empty()) else { continue };
        match param {
            "follow" | "previous" | "timestamps" => {
                parse_bool(value).ok_or_else(|| bad(param, value, "not a boolean"))?;
            }
            "tailLines" => {
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| bad(param, value, "must be non-negative"))?;
            }
            "sinceSeconds" | "limitBytes" => {
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad(param, value, "must be greater than 0"))?;
            }
            _ => {
                chrono::DateTime::parse_from_rfc3339(value).map_err(|_| bad(param, value, "not an RFC3339 time"))?;
            }
        }
        out.append_pair(param, value);
    }
    if query.get("sinceSeconds").is_some_and(|v| !v.is_empty()) && query.get("sinceTime").is_some_and(|v| !v.is_empty())
    {
        return Err(ApiError::bad_request("at most one of sinceTime or sinceSeconds may be specified"));
    }
    Ok(out.finish())
}

/// The agent's query for `pods/exec`: the client's, without `container` (it is in the agent's path).
pub fn exec_query(raw: Option<&str>) -> String {
    raw.unwrap_or("").split('&').filter(|p| !p.is_empty() && !p.starts_with("container=")).collect::<Vec<_>>().join("&")
}

/// `host:port` of the agent on `node`: its InternalIP (else ExternalIP, else Hostname) and its
/// kubelet endpoint port.
pub fn agent_address(node: &Value) -> Result<(String, u16), ApiError> {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let addresses = node["status"]["addresses"].as_array().cloned().unwrap_or_default();
    let host = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| addresses.iter().find(|a| a["type"] == *t).and_then(|a| a["address"].as_str()))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::with_code(502, "ServiceUnavailable", format!("node {name} reports no address")))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_AGENT_PORT);
    Ok((host.to_string(), port))
}

fn bad_gateway(message: String) -> ApiError {
    ApiError::with_code(502, "ServiceUnavailable", message)
}

/// Proxies to the agents of the pods' nodes.
#[derive(Clone)]
pub struct NodeProxy {
    pub objects: ObjectStore,
    pub tls: Arc<rustls::ClientConfig>,
}

/// Where one request goes: the agent's address and the path on it.
struct AgentTarget {
    host: String,
    port: u16,
    path_and_query: String,
}

impl NodeProxy {
    /// Finds the pod, its container and its node's agent; `kind` is `containerLogs` or `exec`.
    async fn target(
        &self,
        target: &ResourceTarget,
        query: &Query,
        kind: &str,
        agent_query: String,
    ) -> Result<AgentTarget, ApiError> {
        let ns = target.namespace.as_deref().ok_or_else(|| ApiError::bad_request("pods are namespaced"))?;
        let name = target.name.as_deref().ok_or_else(|| ApiError::bad_request("a pod name is required"))?;
        let pod = self
            .objects
            .get(target.def, Some(ns), name, false)
            .await?
            .ok_or_else(|| ApiError::not_found("", "pods", name))?;
        let container = pick_container(&pod, query.get("container"))?;
        let node_name = pod["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?;
        let nodes = resources::find("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes are not served"))?;
        let node = self
            .objects
            .get(nodes, None, node_name, false)
            .await?
            .ok_or_else(|| ApiError::not_found("", "nodes", node_name))?;
        let (host, port) = agent_address(&node)?;
        let mut path_and_query = format!("/{kind}/{ns}/{name}/{container}");
        if !agent_query.is_empty() {
            path_and_query.push('?');
            path_and_query.push_str(&agent_query);
        }
        Ok(AgentTarget { host, port, path_and_query })
    }

    async fn connect(&self, agent: &AgentTarget) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ApiError> {
        let addr = format!("{}:{}", agent.host, agent.port);
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(bad_gateway(format!("error dialing backend: dial tcp {addr}: {e}"))),
            Err(_) => {
                return Err(bad_gateway(format!(
                    "error dialing backend: dial tcp {addr}: timed out after {CONNECT_TIMEOUT:?}"
                )))
            }
        };
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::try_from(agent.host.clone())
            .map_err(|e| bad_gateway(format!("node address {:?}: {e}", agent.host)))?;
        TlsConnector::from(self.tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| bad_gateway(format!("tls handshake with the node agent at {addr}: {e}")))
    }

    /// `GET pods/{name}/log`.
    pub async fn log(&self, target: &ResourceTarget, query: &Query) -> Result<Response<Body>, ApiError> {
        let agent = self.target(target, query, "containerLogs", log_query(query)?).await?;
        let stream = self.connect(&agent).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| bad_gateway(format!("node agent at {}:{}: {e}", agent.host, agent.port)))?;
        tokio::spawn(conn.in_current_span());
        let req = agent_request(Method::GET, &agent)?;
        let resp = sender.send_request(req).await.map_err(|e| bad_gateway(format!("node agent: {e}")))?;
        if resp.status() != StatusCode::OK {
            return Ok(passthrough_error(resp).await);
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let mut body = resp.into_body();
        tokio::spawn(
            async move {
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => {
                            if let Ok(data) = f.into_data() {
                                if tx.send(data).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => return debug!(error = %e, "log stream from the node agent ended"),
                    }
                }
            }
            .in_current_span(),
        );
        let frames = tokio_stream::wrappers::ReceiverStream::new(rx).map(|b| Ok(Frame::data(b)));
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(frames)));
        resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
        Ok(resp)
    }

    /// `GET|POST pods/{name}/exec`: forwards the client's upgrade to the agent; on `101` answers the
    /// client with the agent's handshake headers and copies bytes both ways.
    pub async fn exec<B>(
        &self,
        target: &ResourceTarget,
        query: &Query,
        mut req: Request<B>,
    ) -> Result<Response<Body>, ApiError>
    where
        B: Send + 'static,
    {
        let agent = self.target(target, query, "exec", exec_query(req.uri().query())).await?;
        let client_upgrade = hyper::upgrade::on(&mut req);
        let stream = self.connect(&agent).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| bad_gateway(format!("node agent at {}:{}: {e}", agent.host, agent.port)))?;
        tokio::spawn(conn.with_upgrades().in_current_span());
        let mut agent_req = agent_request(req.method().clone(), &agent)?;
        for name in [
            http::header::CONNECTION,
            http::header::UPGRADE,
            http::header::SEC_WEBSOCKET_KEY,
            http::header::SEC_WEBSOCKET_VERSION,
            http::header::SEC_WEBSOCKET_PROTOCOL,
        ] {
            for value in req.headers().get_all(&name) {
                agent_req.headers_mut().append(name.clone(), value.clone());
            }
        }
        for value in req.headers().get_all("x-stream-protocol-version") {
            agent_req.headers_mut().append("x-stream-protocol-version", value.clone());
        }
        let mut resp = sender.send_request(agent_req).await.map_err(|e| bad_gateway(format!("node agent: {e}")))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(passthrough_error(resp).await);
        }
        let mut answer = Response::new(Empty::new().boxed());
        *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for (name, value) in resp.headers() {
            if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
                answer.headers_mut().append(name.clone(), value.clone());
            }
        }
        let agent_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(
            async move {
                let (client, agent) = match tokio::try_join!(client_upgrade, agent_upgrade) {
                    Ok(both) => both,
                    Err(e) => return debug!(error = %e, "exec upgrade failed"),
                };
                let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
                    debug!(error = %e, "exec stream ended with an error");
                }
            }
            .in_current_span(),
        );
        Ok(answer)
    }
}

fn agent_request(method: Method, agent: &AgentTarget) -> Result<Request<Empty<Bytes>>, ApiError> {
    Request::builder()
        .method(method)
        .uri(&agent.path_and_query)
        .header(http::header::HOST, format!("{}:{}", agent.host, agent.port))
        .body(Empty::new())
        .map_err(|e| ApiError::internal(format!("building the node agent request: {e}")))
}

/// The agent's error answer (a `Status`), passed on with its code.
async fn passthrough_error(resp: Response<hyper::body::Incoming>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let bytes = match Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => Bytes::from(format!("reading the node agent's answer: {e}")),
    };
    let mut out = Response::new(Full::new(bytes).boxed());
    *out.status_mut() = parts.status;
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).cloned();
    out.headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type.unwrap_or(HeaderValue::from_static("text/plain")));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(containers: &[&str], init: &[&str]) -> Value {
        let list = |names: &[&str]| names.iter().map(|n| json!({"name": n, "image": "x"})).collect::<Vec<_>>();
        json!({"metadata": {"name": "web"}, "spec": {"containers": list(containers), "initContainers": list(init)}})
    }

    #[test]
    fn the_only_container_is_the_default_and_others_must_be_named() {
        assert_eq!(pick_container(&pod(&["app"], &[]), None).expect("default"), "app");
        assert_eq!(pick_container(&pod(&["a", "b"], &["init"]), Some("init")).expect("init container"), "init");
        let err = pick_container(&pod(&["a", "b"], &[]), None).expect_err("ambiguous");
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "a container name must be specified for pod web, choose one of: [a b]")
        );
        let err = pick_container(&pod(&["a", "b"], &["i"]), None).expect_err("ambiguous");
        assert!(err.message.ends_with("or one of the init containers: [i]"), "{}", err.message);
        let err = pick_container(&pod(&["a"], &[]), Some("zzz")).expect_err("unknown");
        assert_eq!(err.message, "container zzz is not valid for pod web");
    }

    #[test]
    fn log_options_are_validated_and_passed_on() {
        let q = |raw: &str| Query::parse(Some(raw)).expect("query");
        assert_eq!(
            log_query(&q("container=app&follow=true&tailLines=2&timestamps=true&pretty=true")).expect("valid"),
            "follow=true&tailLines=2&timestamps=true"
        );
        assert_eq!(
            log_query(&q("sinceTime=2024-05-01T10%3A00%3A00Z")).expect("valid"),
            "sinceTime=2024-05-01T10%3A00%3A00Z"
        );
        for bad in [
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=x",
            "follow=maybe",
            "sinceTime=noon",
            "sinceSeconds=5&sinceTime=2024-05-01T10:00:00Z",
        ] {
            let err = log_query(&q(bad)).expect_err(bad);
            assert_eq!(err.code, 400, "{bad}");
        }
    }

    #[test]
    fn exec_queries_lose_only_the_container() {
        assert_eq!(
            exec_query(Some("command=sh&command=-c&command=echo%20hi&container=app&stdout=true")),
            "command=sh&command=-c&command=echo%20hi&stdout=true"
        );
        assert_eq!(exec_query(None), "");
    }

    #[test]
    fn the_agent_is_found_at_the_internal_ip_and_kubelet_port() {
        let node = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}}}});
        assert_eq!(agent_address(&node).expect("address"), ("10.0.0.5".to_string(), 12345));
        let bare =
            json!({"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(agent_address(&bare).expect("address"), ("n1".to_string(), DEFAULT_AGENT_PORT));
        let err = agent_address(&json!({"metadata": {"name": "n1"}})).expect_err("no address");
        assert_eq!(err.code, 502);
    }
}
