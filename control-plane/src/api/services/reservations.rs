//! How reservations are stored: one key per held value, `/registry/ranges/serviceips/<ip>` and
//! `/registry/ranges/servicenodeports/<port>`, whose value names the Service holding it
//! (namespace, name and uid). The allocator writes a reservation with compare `create_revision == 0`
//! in the same transaction as its Service, and deletes it in the transaction that stops the Service
//! holding it, only if the value still names that Service.
//!
//! Pure; must not depend on the HTTP layer.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::allocation::{Pool, Resource};
use crate::api::objects::meta_str;

/// Prefix of cluster IP reservations.
pub const CLUSTER_IP_PREFIX: &str = "/registry/ranges/serviceips/";
/// Prefix of node port reservations.
pub const NODE_PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// The key prefix of a pool's reservations.
pub fn prefix(pool: Pool) -> &'static str {
    match pool {
        Pool::ClusterIp => CLUSTER_IP_PREFIX,
        Pool::NodePort => NODE_PORT_PREFIX,
    }
}

/// The store key reserving `resource`.
pub fn key(resource: Resource) -> String {
    match resource {
        Resource::ClusterIp(ip) => format!("{CLUSTER_IP_PREFIX}{ip}"),
        Resource::NodePort(port) => format!("{NODE_PORT_PREFIX}{port}"),
    }
}

/// The value a reservation key reserves, if it is one.
pub fn parse_key(key: &[u8]) -> Option<Resource> {
    let key = std::str::from_utf8(key).ok()?;
    if let Some(ip) = key.strip_prefix(CLUSTER_IP_PREFIX) {
        return ip.parse::<Ipv4Addr>().ok().map(Resource::ClusterIp);
    }
    key.strip_prefix(NODE_PORT_PREFIX)?.parse::<u16>().ok().map(Resource::NodePort)
}

/// The Service a reservation belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Owner {
    pub fn of(svc: &Value) -> Self {
        Self {
            namespace: meta_str(svc, "namespace").to_string(),
            name: meta_str(svc, "name").to_string(),
            uid: meta_str(svc, "uid").to_string(),
        }
    }

    /// The stored value: always the same bytes for the same owner, so a release can compare it.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip() {
        let ip = Resource::ClusterIp(Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(key(ip), "/registry/ranges/serviceips/10.96.0.10");
        assert_eq!(parse_key(key(ip).as_bytes()), Some(ip));
        let port = Resource::NodePort(30080);
        assert_eq!(key(port), "/registry/ranges/servicenodeports/30080");
        assert_eq!(parse_key(key(port).as_bytes()), Some(port));
        assert_eq!(parse_key(b"/registry/ranges/serviceips/garbage"), None);
        assert_eq!(parse_key(b"/registry/core/services/default/x"), None);
        assert!(key(ip).starts_with(prefix(Pool::ClusterIp)) && key(port).starts_with(prefix(Pool::NodePort)));
    }

    #[test]
    fn owners_encode_stably() {
        let svc = json!({"metadata": {"uid": "u-1", "name": "web", "namespace": "ns"}});
        let owner = Owner::of(&svc);
        assert_eq!(owner.encode(), br#"{"namespace":"ns","name":"web","uid":"u-1"}"#.to_vec());
        assert_eq!(Owner::decode(&owner.encode()), Some(owner.clone()));
        assert_eq!(owner.to_string(), "ns/web");
        assert_eq!(Owner::decode(b"not json"), None);
    }
}
