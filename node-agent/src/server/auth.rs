//! Who may use the agent's server. TLS (see [`tls`](super::tls)) has already verified any client
//! certificate against the cluster CA; this module reads the identity from it and decides:
//!
//! - container logs and exec need the control plane's kubelet client (`CN=kube-apiserver-kubelet-client`)
//!   or a member of `system:masters` (the cluster admin): anything else is 403, no certificate is 401;
//! - `/healthz` and `/metrics` are open, so Prometheus can scrape the node without credentials, as
//!   kubelet's read-only port used to allow. They reveal counts and latencies, never pod data.
//!
//! Pure; must not depend on the HTTP server.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The user name of the API server's client certificate for kubelets.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// The group whose members may do anything (upstream's superuser group).
pub const MASTERS_GROUP: &str = "system:masters";

/// A verified client certificate's subject: `CN` is the user, each `O` a group (upstream's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub user: String,
    pub groups: Vec<String>,
}

impl ClientIdentity {
    /// Reads the subject of a DER certificate; `None` when it does not parse or has no CN.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let user = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
        Some(Self { user, groups })
    }
}

/// What a request asks for, as far as access goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/healthz`, `/metrics`.
    Public,
    /// Container logs and exec.
    Pods,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// No (valid) client certificate: 401.
    Unauthenticated,
    /// Authenticated as someone who may not: 403, naming the user.
    Forbidden {
        user: String,
    },
}

/// Decides whether `identity` may reach `resource`.
pub fn decide(resource: Resource, identity: Option<&ClientIdentity>) -> Access {
    match (resource, identity) {
        (Resource::Public, _) => Access::Allowed,
        (Resource::Pods, None) => Access::Unauthenticated,
        (Resource::Pods, Some(id))
            if id.user == KUBELET_CLIENT_USER || id.groups.iter().any(|g| g == MASTERS_GROUP) =>
        {
            Access::Allowed
        }
        (Resource::Pods, Some(id)) => Access::Forbidden { user: id.user.clone() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str, groups: &[&str]) -> ClientIdentity {
        ClientIdentity { user: user.into(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    #[test]
    fn pods_need_the_kubelet_client_or_a_master() {
        assert_eq!(decide(Resource::Pods, Some(&id(KUBELET_CLIENT_USER, &[]))), Access::Allowed);
        assert_eq!(decide(Resource::Pods, Some(&id("admin", &[MASTERS_GROUP]))), Access::Allowed);
        assert_eq!(
            decide(Resource::Pods, Some(&id("system:node:n1", &["system:nodes"]))),
            Access::Forbidden { user: "system:node:n1".into() }
        );
        assert_eq!(decide(Resource::Pods, None), Access::Unauthenticated);
    }

    #[test]
    fn health_and_metrics_are_open() {
        assert_eq!(decide(Resource::Public, None), Access::Allowed);
        assert_eq!(decide(Resource::Public, Some(&id("anyone", &[]))), Access::Allowed);
    }

    #[test]
    fn identity_is_read_from_the_certificate_subject() {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, KUBELET_CLIENT_USER);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, MASTERS_GROUP);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let identity = ClientIdentity::from_der(cert.der()).expect("identity");
        assert_eq!(identity, id(KUBELET_CLIENT_USER, &[MASTERS_GROUP]));
        assert_eq!(ClientIdentity::from_der(b"not a certificate"), None);
    }
}
