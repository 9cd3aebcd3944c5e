//! The HTTPS server: TLS (with optional client certificates), authentication, routing, and turning
//! handler results into HTTP responses. `run(config, store, listener, shutdown)` serves until
//! `shutdown` resolves, so tests start it on port 0 in-process.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use raft_store::Store;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use super::auth::{Authenticator, UserInfo};
use super::discovery::{self, DiscoveryForm};
use super::handlers::{Handlers, JsonReply, ResourceRequest};
use super::list_from_cache::ListOutput;
use super::metrics::{self, ApiMetrics};
use super::node_proxy::NodeProxy;
use super::query::Query;
use super::router::{route, Route};
use super::status::ApiError;
use super::storage::ObjectStore;

type Body = BoxBody<Bytes, Infallible>;

/// What the API server needs besides the store.
#[derive(Clone)]
pub struct ApiConfig {
    pub tls: Arc<rustls::ServerConfig>,
    pub authenticator: Arc<Authenticator>,
    /// Largest request body accepted (the store's request limit).
    pub max_body_bytes: usize,
    /// `host:port` clients should use, for legacy `/api` discovery.
    pub advertise_address: String,
    /// TLS towards node agents (logs and exec), with the kubelet client certificate.
    pub kubelet_tls: Arc<rustls::ClientConfig>,
    /// The ranges Services' cluster IPs and node ports are allocated from.
    pub service_ranges: super::services::ServiceRanges,
}

struct Shared {
    config: ApiConfig,
    handlers: Handlers,
    node_proxy: NodeProxy,
    store: Store,
    /// This replica's registry, served on `/metrics`: the API's and the store's metrics.
    registry: prometheus::Registry,
    metrics: ApiMetrics,
}

/// Serves the Kubernetes API on `listener` until `shutdown` resolves, with a registry of its own.
pub async fn run(
    config: ApiConfig,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with_registry(config, store, prometheus::Registry::new(), listener, shutdown).await
}

/// Like `run`, registering the API's and the store's metrics in `registry` (which may hold other
/// modules' metrics of this replica) and serving all of it on `/metrics`.
pub async fn run_with_registry(
    config: ApiConfig,
    store: Store,
    registry: prometheus::Registry,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    ApiServer::new(config, store, registry)?.serve(listener, shutdown).await
}

/// One replica's API: `serve` answers HTTPS connections, `local_service` answers requests made
/// in-process (the controllers' client) through the same routing, admission and storage.
#[derive(Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl ApiServer {
    /// Registers the API's and the store's metrics in `registry`, which `/metrics` serves.
    pub fn new(config: ApiConfig, store: Store, registry: prometheus::Registry) -> std::io::Result<Self> {
        let metrics = ApiMetrics::register(&registry).map_err(std::io::Error::other)?;
        store.register_metrics(&registry).map_err(|e| std::io::Error::other(metrics::MetricsError::from(e)))?;
        let allocator_metrics = super::services::metrics::AllocatorMetrics::register(&registry)
            .map_err(|e| std::io::Error::other(format!("registering service allocator metrics: {e}")))?;
        let allocator = super::services::ServiceAllocator::new(config.service_ranges, Some(allocator_metrics));
        let objects = ObjectStore::with_services(store.clone(), Arc::new(allocator));
        let handlers = Handlers { objects, max_body_bytes: config.max_body_bytes };
        let node_proxy = NodeProxy { objects: handlers.objects.clone(), tls: config.kubelet_tls.clone() };
        Ok(Self { shared: Arc::new(Shared { config, handlers, node_proxy, store, registry, metrics }) })
    }

    /// This replica's objects in the store (with its watch cache and Service allocator), for the
    /// replica's own background tasks.
    pub fn objects(&self) -> &ObjectStore {
        &self.shared.handlers.objects
    }

    /// A tower service answering requests as `user` without a socket, TLS or authentication.
    pub fn local_service(&self, user: UserInfo) -> LocalService {
        LocalService { shared: self.shared.clone(), user: Arc::new(user) }
    }

    /// Accepts HTTPS connections on `listener` until `shutdown` resolves.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let acceptor = TlsAcceptor::from(self.shared.config.tls.clone());
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                };
                let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let shared = shared.clone();
                    let user = shared
                        .config
                        .authenticator
                        .authenticate(cert.as_deref(), header(&req, http::header::AUTHORIZATION));
                    async move { Ok::<_, Infallible>(handle(&shared, req, user, &peer.to_string()).await) }
                });
                // Upgrades carry `pods/exec` sessions to the node agents.
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}

/// In-process access to one replica's API as a fixed user (see `ApiServer::local_service`).
#[derive(Clone)]
pub struct LocalService {
    shared: Arc<Shared>,
    user: Arc<UserInfo>,
}

impl<B> tower::Service<Request<B>> for LocalService
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        let user = UserInfo::clone(&self.user);
        Box::pin(async move { Ok(handle(&shared, req, Some(user), "in-process").await) })
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, body: &Value, content_type: &str, warnings: &[String]) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "'"))) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

/// A 200 with a body that is already JSON.
fn raw_json_response(bytes: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(bytes));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.code, &e.to_status(), "application/json", &[]);
    if let Some(secs) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    resp
}

fn text_response(code: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(full(text.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn header<B>(req: &Request<B>, name: http::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle<B>(shared: &Shared, req: Request<B>, user: Option<UserInfo>, peer: &str) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let routed = route(&path);
    let labels =
        metrics::labels(&method, routed.as_ref().ok(), req.uri().query(), header(&req, http::header::CONTENT_TYPE));
    let span = tracing::debug_span!("request", %method, %path, %peer);
    let resp = async move {
        // Health endpoints answer without credentials, as upstream's default RBAC allows.
        let result = match routed {
            Ok(r @ Route::Health(_)) => Box::pin(dispatch(shared, r, req, user)).await,
            _ if user.is_none() => Err(ApiError::unauthorized()),
            Ok(r) => Box::pin(dispatch(shared, r, req, user)).await,
            Err(_) => Err(ApiError::no_route(&path)),
        };
        match result {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(code = e.code, message = %e.message, "request failed");
                error_response(&e)
            }
        }
    }
    .instrument(span)
    .await;
    match shared.metrics.record(&labels, resp.status().as_u16(), started) {
        // A watch stays open (and is recorded) until its body is dropped; every chunk is one event.
        Some(watch) => resp.map(|body| {
            body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    watch.event_sent(data.len());
                }
                frame
            })
            .boxed()
        }),
        None => resp,
    }
}

fn metrics_response(registry: &prometheus::Registry) -> Result<Response<Body>, ApiError> {
    let text = metrics::render(registry).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = Response::new(full(text));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(prometheus::TEXT_FORMAT));
    Ok(resp)
}

fn health(shared: &Shared, kind: &str) -> Response<Body> {
    if kind == "readyz" && shared.store.status().leader.is_none() {
        return text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "[-]store failed: no leader (no quorum)\nreadyz check failed\n",
        );
    }
    text_response(StatusCode::OK, "ok")
}

async fn dispatch<B>(
    shared: &Shared,
    route: Route,
    req: Request<B>,
    _user: Option<UserInfo>,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let accept = header(&req, http::header::ACCEPT).unwrap_or("application/json").to_string();
    let json = |v: Value| Ok(json_response(200, &v, "application/json", &[]));
    match route {
        Route::Version => json(discovery::version()),
        Route::Metrics => metrics_response(&shared.registry),
        Route::OpenApiV3Index => json(discovery::openapi_index()),
        Route::OpenApiV3GroupVersion { group, version } => discovery::openapi_group_version(&group, &version)
            .map(|d| json_response(200, &d, "application/json", &[]))
            .ok_or_else(|| ApiError::no_route(req.uri().path())),
        Route::OpenApiV2 => Err(ApiError::no_route(req.uri().path())),
        Route::CoreGroup | Route::Groups => {
            let core = matches!(route, Route::CoreGroup);
            let form = DiscoveryForm::from_accept(&accept);
            let body = match (form, core) {
                (DiscoveryForm::Legacy, true) => discovery::core_versions(&shared.config.advertise_address),
                (DiscoveryForm::Legacy, false) => discovery::group_list(),
                (f, c) => discovery::aggregated(c, f),
            };
            Ok(json_response(200, &body, form.content_type(), &[]))
        }
        Route::Group(g) => discovery::group(&g)
            .map(|v| json_response(200, &v, "application/json", &[]))
            .ok_or_else(|| ApiError::no_route(req.uri().path())),
        Route::ResourceList { group, version } => discovery::resource_list(&group, &version)
            .map(|v| json_response(200, &v, "application/json", &[]))
            .ok_or_else(|| ApiError::no_route(req.uri().path())),
        Route::Resource(target) => {
            let query = Query::parse(req.uri().query())?;
            // Served by the pod's node agent: the log streams and the exec upgrade pass through.
            if target.def.group.is_empty() && target.def.resource == "pods" && target.name.is_some() {
                match (req.method(), target.subresource.as_deref()) {
                    (&Method::GET, Some("log")) => return shared.node_proxy.log(&target, &query).await,
                    (&Method::GET | &Method::POST, Some("exec")) => {
                        return shared.node_proxy.exec(&target, &query, req).await
                    }
                    _ => {}
                }
            }
            let content_type = header(&req, http::header::CONTENT_TYPE).map(str::to_string);
            let user_agent = header(&req, http::header::USER_AGENT).map(str::to_string);
            let method = req.method().clone();
            let limit = shared.config.max_body_bytes;
            let body = match Limited::new(req.into_body(), limit + 1).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                        return Err(ApiError::too_large(format!("request body exceeds the {limit}-byte limit")));
                    }
                    return Err(ApiError::bad_request(format!("reading the request body: {e}")));
                }
            };
            let r = ResourceRequest {
                target: &target,
                query: &query,
                accept: &accept,
                content_type: content_type.as_deref(),
                user_agent: user_agent.as_deref(),
                body: &body,
            };
            let h = &shared.handlers;
            let is_collection = target.name.is_none();
            let reply: JsonReply = match (&method, is_collection, target.subresource.as_deref()) {
                (&Method::GET, true, _) if query.bool("watch")? => {
                    let rx = super::watch::start(h, &r).await?;
                    return Ok(stream_response(
                        rx,
                        if super::handlers::wants_table(&accept) {
                            "application/json;as=Table;v=v1;g=meta.k8s.io"
                        } else {
                            "application/json"
                        },
                    ));
                }
                (&Method::GET, true, _) => match h.list_from_cache(&r).await? {
                    Some(ListOutput::Raw(bytes)) => return Ok(raw_json_response(bytes)),
                    Some(ListOutput::Reply(reply)) => reply,
                    None => h.list(&r).await?,
                },
                (&Method::GET, false, None | Some("status")) => h.get(&r).await?,
                (&Method::GET, false, Some("scale")) => h.get_scale(&r).await?,
                (&Method::POST, true, None) if target.def.group.is_empty() && target.def.resource == "bindings" => {
                    h.create_binding(&r).await?
                }
                (&Method::POST, true, None) => h.create(&r).await?,
                (&Method::POST, false, Some("binding")) => h.create_binding(&r).await?,
                (&Method::POST, false, Some("eviction")) => h.create_eviction(&r).await?,
                (&Method::PUT, false, None | Some("status")) => h.update(&r).await?,
                (&Method::PUT, false, Some("scale")) => h.update_scale(&r).await?,
                (&Method::PATCH, false, None | Some("status")) => h.patch(&r).await?,
                (&Method::PATCH, false, Some("scale")) => h.patch_scale(&r).await?,
                (&Method::DELETE, false, None) => h.delete(&r).await?,
                (&Method::DELETE, true, None) => h.delete_collection(&r).await?,
                (m, _, sub) => {
                    return Err(ApiError::method_not_allowed(format!(
                        "{m} is not supported on {}{}",
                        target.def.qualified(),
                        sub.map(|s| format!("/{s}")).unwrap_or_default()
                    )))
                }
            };
            let ct = if super::handlers::wants_table(&accept) && reply.body["kind"] == "Table" {
                "application/json;as=Table;v=v1;g=meta.k8s.io"
            } else {
                "application/json"
            };
            Ok(json_response(reply.code, &reply.body, ct, &reply.warnings))
        }
        Route::Health(kind) => Ok(health(shared, kind)),
    }
}

/// Makes a `Send` stream usable as a (`Sync`) boxed body: it is only ever polled through `&mut`,
/// so the mutex is never locked.
struct SyncStream<S>(std::sync::Mutex<S>);

impl<S: futures::Stream + Unpin> futures::Stream for SyncStream<S> {
    type Item = S::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let inner = self.get_mut().0.get_mut().unwrap_or_else(|p| p.into_inner());
        std::pin::Pin::new(inner).poll_next(cx)
    }
}

fn stream_response(chunks: super::watch::WatchStream, content_type: &'static str) -> Response<Body> {
    let stream = SyncStream(std::sync::Mutex::new(chunks)).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    resp
}
