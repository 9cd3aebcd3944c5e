//! The agent's HTTPS server: accepts TLS connections, authenticates the client certificate, routes
//! the kubelet paths the API server proxies to (`/containerLogs/...`, `/exec/...`) and the open ones
//! (`/healthz`, `/metrics`), and turns errors into `Status` answers. `run(state, tls, listener,
//! shutdown)` serves until `shutdown` resolves, so tests can start it on port 0 in-process.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn, Instrument};

use super::auth::{decide, Access, ClientIdentity, Resource};
use super::container_logs;
use super::cri_log::LogOptions;
use super::error::ServerError;
use super::exec;
use crate::metrics::AgentMetrics;
use crate::runtime::{node_selector, Runtime};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What the server reads: the runtime, where pod logs live, and the agent's metrics.
pub struct ServerState {
    pub node: String,
    pub root: PathBuf,
    pub runtime: Runtime,
    pub metrics: Arc<AgentMetrics>,
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn run(
    state: Arc<ServerState>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => return debug!(%peer, error = %e, "tls handshake failed"),
            };
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| ClientIdentity::from_der(c.as_ref()));
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                let identity = identity.clone();
                async move { Ok::<_, Infallible>(handle(&state, req, identity.as_ref()).await) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).with_upgrades();
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn text(code: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn error_response(e: &ServerError) -> Response<Body> {
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(code, "application/json", body)
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect()
}

/// A path of the agent, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Healthz,
    Metrics,
    ContainerLogs { namespace: String, pod: String, container: String },
    Exec { namespace: String, pod: String, container: String },
}

fn route(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let target = |ns: &str, pod: &str, c: &str| (ns.to_string(), pod.to_string(), c.to_string());
    match parts.as_slice() {
        ["healthz"] => Some(Route::Healthz),
        ["metrics"] => Some(Route::Metrics),
        ["containerLogs", ns, pod, c] if ![ns, pod, c].iter().any(|p| p.is_empty()) => {
            let (namespace, pod, container) = target(ns, pod, c);
            Some(Route::ContainerLogs { namespace, pod, container })
        }
        ["exec", ns, pod, c] if ![ns, pod, c].iter().any(|p| p.is_empty()) => {
            let (namespace, pod, container) = target(ns, pod, c);
            Some(Route::Exec { namespace, pod, container })
        }
        _ => None,
    }
}

async fn handle(state: &ServerState, req: Request<Incoming>, identity: Option<&ClientIdentity>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::debug_span!("agent_request", %method, %path, user = identity.map(|i| i.user.as_str()));
    async move {
        let result = match route(&path) {
            None => Err(ServerError::NotFound(format!("the server could not find the requested resource ({path})"))),
            Some(r) => {
                let resource = match r {
                    Route::Healthz | Route::Metrics => Resource::Public,
                    Route::ContainerLogs { .. } | Route::Exec { .. } => Resource::Pods,
                };
                match decide(resource, identity) {
                    Access::Allowed => dispatch(state, r, req).await,
                    Access::Unauthenticated => Err(ServerError::Unauthorized),
                    Access::Forbidden { user } => Err(ServerError::Forbidden { user, what: path.clone() }),
                }
            }
        };
        result.unwrap_or_else(|e| {
            debug!(code = e.code(), error = %e, "request failed");
            error_response(&e)
        })
    }
    .instrument(span)
    .await
}

async fn dispatch(state: &ServerState, route: Route, req: Request<Incoming>) -> Result<Response<Body>, ServerError> {
    let method = req.method().clone();
    match route {
        Route::Healthz => Ok(text(StatusCode::OK, "text/plain; charset=utf-8", "ok")),
        Route::Metrics => metrics(state).await,
        Route::ContainerLogs { namespace, pod, container } => {
            if method != Method::GET {
                return Err(ServerError::MethodNotAllowed(format!("{method} is not supported on containerLogs")));
            }
            let options = LogOptions::from_query(&query_pairs(&req), k8s_openapi::jiff::Timestamp::now())
                .map_err(|e| ServerError::BadRequest(e.to_string()))?;
            let source = container_logs::locate(
                &state.runtime,
                &state.node,
                &state.root,
                &namespace,
                &pod,
                &container,
                options.previous,
            )
            .await?;
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            tokio::spawn(
                container_logs::stream(state.runtime.clone(), source, options, tx)
                    .instrument(tracing::debug_span!("logs", pod = %format!("{namespace}/{pod}"), %container)),
            );
            let chunks = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(chunks)));
            resp.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            Ok(resp)
        }
        Route::Exec { namespace, pod, container } => {
            if method != Method::GET && method != Method::POST {
                return Err(ServerError::MethodNotAllowed(format!("{method} is not supported on exec")));
            }
            // What is wrong with the request itself is answered first: a client that falls back to
            // SPDY after a refused websocket then sees the same error, not "SPDY is not served".
            let options = exec::ExecOptions::from_query(&query_pairs(&req))?;
            let id = exec::running_container(&state.runtime, &state.node, &namespace, &pod, &container).await?;
            let handshake = exec::handshake(req.headers())?;
            let socket = exec::connect_runtime(&state.runtime, &id, &options).await?;
            let what = format!("{namespace}/{pod}/{container} {:?}", options.command);
            tokio::spawn(exec::relay(hyper::upgrade::on(req), handshake.protocol, socket, what));
            Ok(exec::switching_protocols(&handshake))
        }
    }
}

/// Renders the registry after reading the running pod and container counts from the runtime.
async fn metrics(state: &ServerState) -> Result<Response<Body>, ServerError> {
    use gantry_cri_proto::runtime::{ContainerState, PodSandboxState};
    let selector = node_selector(&state.node);
    let pods = state.runtime.sandboxes(selector.clone()).await?;
    let containers = state.runtime.containers(selector).await?;
    let ready = pods.iter().filter(|s| s.state == PodSandboxState::SandboxReady as i32).count();
    let count = |state: ContainerState| containers.iter().filter(|c| c.state == state as i32).count() as i64;
    state.metrics.set_running(
        ready as i64,
        &[
            ("running", count(ContainerState::ContainerRunning)),
            ("exited", count(ContainerState::ContainerExited)),
            ("created", count(ContainerState::ContainerCreated)),
            ("unknown", count(ContainerState::ContainerUnknown)),
        ],
    );
    let body = state.metrics.render().map_err(|e| ServerError::Internal(e.to_string()))?;
    Ok(text(StatusCode::OK, "text/plain; version=0.0.4", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_route() {
        assert_eq!(route("/healthz"), Some(Route::Healthz));
        assert_eq!(route("/metrics"), Some(Route::Metrics));
        assert_eq!(
            route("/containerLogs/default/web/app"),
            Some(Route::ContainerLogs { namespace: "default".into(), pod: "web".into(), container: "app".into() })
        );
        assert_eq!(
            route("/exec/ns/p/c"),
            Some(Route::Exec { namespace: "ns".into(), pod: "p".into(), container: "c".into() })
        );
        assert_eq!(route("/containerLogs/default/web"), None);
        assert_eq!(route("/exec/ns//c"), None);
        assert_eq!(route("/pods"), None);
    }
}
