//! What a probe or lifecycle hook runs, resolved from the spec (pure): the command of an `exec`, the
//! URL and headers of an `httpGet` (host = the `host` field or the pod IP, port by number or by the
//! container's port name), the address of a `tcpSocket` or `grpc` check, or a `sleep`. Bad specs give
//! an [`ActionError`] naming what is wrong.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What one probe or hook attempt does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerAction {
    Exec { command: Vec<String> },
    HttpGet(HttpGet),
    TcpSocket { host: String, port: u16 },
    Grpc { host: String, port: u16, service: String },
    Sleep(Duration),
}

/// `http` or `https` (certificates are never verified, as the kubelet does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A resolved `httpGet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub path: String,
    /// `httpHeaders`, in order (a `Host` header overrides the request's host).
    pub headers: Vec<(String, String)>,
}

impl HttpGet {
    /// `scheme://host:port/path`, as messages show it.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme.as_str(), host_port(&self.host, self.port), self.path)
    }
}

/// `host:port`, with IPv6 hosts in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Where network probes and hooks of `pod` connect when they name no host: the node's IP for
/// host-network pods, else the sandbox's IP (empty while unknown).
pub fn pod_address(pod: &Pod, sandbox_ip: Option<&str>, host_ip: &str) -> String {
    if pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false) {
        host_ip.to_string()
    } else {
        sandbox_ip.unwrap_or_default().to_string()
    }
}

/// Why a handler cannot run (reported like a failed attempt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("no handler specified (exec, httpGet, tcpSocket or grpc)")]
    Missing,
    #[error("exec has no command")]
    EmptyCommand,
    #[error("port {0:?} is neither a number nor the name of a port of the container")]
    PortName(String),
    #[error("invalid port number: {0}")]
    PortNumber(i64),
    #[error("scheme {0:?} is not HTTP or HTTPS")]
    Scheme(String),
    #[error("the pod has no IP yet")]
    NoPodIp,
    #[error("tcpSocket lifecycle hooks are not supported")]
    TcpHook,
}

/// The port `port` names: a number, or the name of one of `c`'s ports (or a number written as text).
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, ActionError> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = c.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name.as_str()));
            match named {
                Some(p) => i64::from(p.container_port),
                None => name.parse::<i64>().map_err(|_| ActionError::PortName(name.clone()))?,
            }
        }
    };
    u16::try_from(number).ok().filter(|p| *p > 0).ok_or(ActionError::PortNumber(number))
}

fn host_or_pod_ip(host: Option<&String>, pod_ip: &str) -> Result<String, ActionError> {
    match host.filter(|h| !h.is_empty()) {
        Some(h) => Ok(h.clone()),
        None if pod_ip.is_empty() => Err(ActionError::NoPodIp),
        None => Ok(pod_ip.to_string()),
    }
}

fn http_get(get: &HTTPGetAction, c: &Container, pod_ip: &str) -> Result<HttpGet, ActionError> {
    let scheme = match get.scheme.as_deref().unwrap_or("HTTP") {
        s if s.eq_ignore_ascii_case("http") => Scheme::Http,
        s if s.eq_ignore_ascii_case("https") => Scheme::Https,
        other => return Err(ActionError::Scheme(other.into())),
    };
    let path = match get.path.as_deref().unwrap_or_default() {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    Ok(HttpGet {
        scheme,
        host: host_or_pod_ip(get.host.as_ref(), pod_ip)?,
        port: resolve_port(&get.port, c)?,
        path,
        headers: get.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect(),
    })
}

fn exec(command: Option<&Vec<String>>) -> Result<HandlerAction, ActionError> {
    let command = command.cloned().unwrap_or_default();
    if command.is_empty() {
        return Err(ActionError::EmptyCommand);
    }
    Ok(HandlerAction::Exec { command })
}

/// The action of probe `probe` on container `c` of a pod with IP `pod_ip` (the node's IP for
/// host-network pods).
pub fn probe_action(probe: &Probe, c: &Container, pod_ip: &str) -> Result<HandlerAction, ActionError> {
    if let Some(e) = &probe.exec {
        exec(e.command.as_ref())
    } else if let Some(get) = &probe.http_get {
        Ok(HandlerAction::HttpGet(http_get(get, c, pod_ip)?))
    } else if let Some(tcp) = &probe.tcp_socket {
        Ok(HandlerAction::TcpSocket {
            host: host_or_pod_ip(tcp.host.as_ref(), pod_ip)?,
            port: resolve_port(&tcp.port, c)?,
        })
    } else if let Some(grpc) = &probe.grpc {
        let port = u16::try_from(grpc.port).ok().filter(|p| *p > 0).ok_or(ActionError::PortNumber(grpc.port.into()))?;
        Ok(HandlerAction::Grpc {
            host: host_or_pod_ip(None, pod_ip)?,
            port,
            service: grpc.service.clone().unwrap_or_default(),
        })
    } else {
        Err(ActionError::Missing)
    }
}

/// The action of lifecycle hook `h` on container `c`.
pub fn hook_action(h: &LifecycleHandler, c: &Container, pod_ip: &str) -> Result<HandlerAction, ActionError> {
    if let Some(e) = &h.exec {
        exec(e.command.as_ref())
    } else if let Some(get) = &h.http_get {
        Ok(HandlerAction::HttpGet(http_get(get, c, pod_ip)?))
    } else if let Some(sleep) = &h.sleep {
        Ok(HandlerAction::Sleep(Duration::from_secs(u64::try_from(sleep.seconds).unwrap_or(0))))
    } else if h.tcp_socket.is_some() {
        Err(ActionError::TcpHook)
    } else {
        Err(ActionError::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        serde_json::from_value(serde_json::json!({
            "name": "web", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090}]
        }))
        .expect("container")
    }

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).expect("probe")
    }

    #[test]
    fn ports_resolve_by_number_or_name() {
        let c = container();
        let cases = [
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("9090".into()), Ok(9090)),
            (IntOrString::String("grpc".into()), Err(ActionError::PortName("grpc".into()))),
            (IntOrString::Int(0), Err(ActionError::PortNumber(0))),
            (IntOrString::Int(70000), Err(ActionError::PortNumber(70000))),
        ];
        for (port, expected) in cases {
            assert_eq!(resolve_port(&port, &c), expected, "{port:?}");
        }
    }

    #[test]
    fn probes_resolve_to_actions() {
        let c = container();
        let get = |scheme, host: &str, port, path: &str, headers: Vec<(&str, &str)>| {
            Ok(HandlerAction::HttpGet(HttpGet {
                scheme,
                host: host.into(),
                port,
                path: path.into(),
                headers: headers.into_iter().map(|(n, v)| (n.into(), v.into())).collect(),
            }))
        };
        let cases = [
            (
                serde_json::json!({"exec": {"command": ["cat", "/tmp/ok"]}}),
                Ok(HandlerAction::Exec { command: vec!["cat".into(), "/tmp/ok".into()] }),
            ),
            (serde_json::json!({"exec": {"command": []}}), Err(ActionError::EmptyCommand)),
            (serde_json::json!({"httpGet": {"port": "http"}}), get(Scheme::Http, "10.0.0.5", 8080, "/", vec![])),
            (
                serde_json::json!({"httpGet": {"port": 443, "scheme": "HTTPS", "host": "example.test",
                    "path": "healthz?full=1", "httpHeaders": [{"name": "X-A", "value": "b"}]}}),
                get(Scheme::Https, "example.test", 443, "/healthz?full=1", vec![("X-A", "b")]),
            ),
            (serde_json::json!({"httpGet": {"port": 80, "scheme": "FTP"}}), Err(ActionError::Scheme("FTP".into()))),
            (
                serde_json::json!({"tcpSocket": {"port": 9090}}),
                Ok(HandlerAction::TcpSocket { host: "10.0.0.5".into(), port: 9090 }),
            ),
            (
                serde_json::json!({"grpc": {"port": 50051, "service": "live"}}),
                Ok(HandlerAction::Grpc { host: "10.0.0.5".into(), port: 50051, service: "live".into() }),
            ),
            (serde_json::json!({"periodSeconds": 3}), Err(ActionError::Missing)),
        ];
        for (spec, expected) in cases {
            assert_eq!(probe_action(&probe(spec.clone()), &c, "10.0.0.5"), expected, "{spec}");
        }
        let no_ip = probe(serde_json::json!({"tcpSocket": {"port": 1}}));
        assert_eq!(probe_action(&no_ip, &c, ""), Err(ActionError::NoPodIp));
    }

    #[test]
    fn hooks_resolve_to_actions() {
        let c = container();
        let hook = |v: serde_json::Value| -> LifecycleHandler { serde_json::from_value(v).expect("hook") };
        assert_eq!(
            hook_action(&hook(serde_json::json!({"sleep": {"seconds": 3}})), &c, "10.0.0.5"),
            Ok(HandlerAction::Sleep(Duration::from_secs(3)))
        );
        assert_eq!(
            hook_action(&hook(serde_json::json!({"tcpSocket": {"port": 1}})), &c, "10.0.0.5"),
            Err(ActionError::TcpHook)
        );
        assert!(matches!(
            hook_action(&hook(serde_json::json!({"exec": {"command": ["true"]}})), &c, ""),
            Ok(HandlerAction::Exec { .. })
        ));
    }

    #[test]
    fn host_network_pods_are_probed_on_the_node_ip() {
        let pod = |host: bool| -> Pod {
            serde_json::from_value(serde_json::json!({"spec": {"hostNetwork": host, "containers": []}})).expect("pod")
        };
        assert_eq!(pod_address(&pod(true), Some("10.1.0.2"), "192.168.1.5"), "192.168.1.5");
        assert_eq!(pod_address(&pod(false), Some("10.1.0.2"), "192.168.1.5"), "10.1.0.2");
        assert_eq!(pod_address(&pod(false), None, "192.168.1.5"), "");
    }

    #[test]
    fn urls_bracket_ipv6_hosts() {
        let g = HttpGet { scheme: Scheme::Http, host: "fd00::1".into(), port: 80, path: "/x".into(), headers: vec![] };
        assert_eq!(g.url(), "http://[fd00::1]:80/x");
        assert_eq!(host_port("10.0.0.1", 1), "10.0.0.1:1");
    }
}
