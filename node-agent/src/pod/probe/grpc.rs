//! The `grpc` probe: one `grpc.health.v1.Health/Check` call over plaintext HTTP/2 to the pod, with
//! the kubelet's outcomes and messages (SERVING passes; anything else, a connect failure, a
//! time-out or a server without the health service fails).

use std::time::{Duration, Instant};

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Endpoint;

use super::action::host_port;
use super::http::USER_AGENT;
use super::state::Outcome;
use crate::pod::backoff::go_duration;

const CHECK: &str = "/grpc.health.v1.Health/Check";

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `HealthCheckResponse.ServingStatus.SERVING`.
pub const SERVING: i32 = 1;

/// The name of a serving status, as the kubelet prints it.
pub fn status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// An error and its sources, joined (tonic's transport errors say little at the top level).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Checks service `service` at `host:port` within `timeout`.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = host_port(host, port);
    let shown = go_duration(timeout);
    let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Outcome::Error(format!("invalid address {addr:?}: {}", chain(&e))),
    };
    let endpoint = match endpoint.user_agent(USER_AGENT) {
        Ok(e) => e,
        Err(e) => return Outcome::Error(chain(&e)),
    };
    let started = Instant::now();
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Err(_) => return Outcome::Failure(format!("timeout: failed to connect service {addr:?} within {shown}")),
        Ok(Err(e)) => return Outcome::Failure(format!("error: failed to connect service at {addr:?}: {}", chain(&e))),
        Ok(Ok(channel)) => channel,
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    let request = HealthCheckRequest { service: service.to_string() };
    let rpc = async {
        grpc.ready().await.map_err(|e| tonic::Status::unavailable(chain(&e)))?;
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        grpc.unary(tonic::Request::new(request), PathAndQuery::from_static(CHECK), codec).await
    };
    let remaining = timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(remaining, rpc).await {
        Err(_) => Outcome::Failure(format!("timeout: health rpc did not complete within {shown}")),
        Ok(Err(status)) => Outcome::Failure(match status.code() {
            tonic::Code::Unimplemented => format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            ),
            tonic::Code::DeadlineExceeded => format!("timeout: health rpc did not complete within {shown}"),
            _ => format!("error: health rpc probe failed: {status}"),
        }),
        Ok(Ok(response)) => match response.into_inner().status {
            SERVING => Outcome::Success,
            other => Outcome::Failure(format!("service unhealthy (responded with {:?})", status_name(other))),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    use tonic::body::Body;
    use tonic::codegen::{http, BoxFuture, Service};

    use super::*;

    /// A health service answering every check with `status` (or Unimplemented for other methods).
    #[derive(Clone)]
    struct Health(i32);

    impl tonic::server::NamedService for Health {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    struct Check(i32);

    impl tonic::server::UnaryService<HealthCheckRequest> for Check {
        type Response = HealthCheckResponse;
        type Future = futures::future::Ready<Result<tonic::Response<HealthCheckResponse>, tonic::Status>>;

        fn call(&mut self, _request: tonic::Request<HealthCheckRequest>) -> Self::Future {
            futures::future::ready(Ok(tonic::Response::new(HealthCheckResponse { status: self.0 })))
        }
    }

    impl Service<http::Request<Body>> for Health {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            let status = self.0;
            Box::pin(async move {
                if request.uri().path() != CHECK {
                    return Ok(tonic::Status::unimplemented("no such method").into_http());
                }
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(Check(status), request).await)
            })
        }
    }

    async fn serve(status: i32) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(tonic::transport::Server::builder().add_service(Health(status)).serve_with_incoming(incoming));
        port
    }

    #[tokio::test]
    async fn serving_passes_and_other_statuses_fail() {
        let port = serve(SERVING).await;
        assert_eq!(check("127.0.0.1", port, "", Duration::from_secs(5)).await, Outcome::Success);
        let port = serve(2).await;
        assert_eq!(
            check("127.0.0.1", port, "db", Duration::from_secs(5)).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
    }

    #[tokio::test]
    async fn a_closed_port_fails_to_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        match check("127.0.0.1", port, "", Duration::from_secs(2)).await {
            Outcome::Failure(m) => {
                assert!(m.starts_with(&format!("error: failed to connect service at \"127.0.0.1:{port}\"")), "{m}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
