//! The pod-template hash that names a Deployment's ReplicaSets (`<deployment>-<hash>`) and labels
//! their pods (`pod-template-hash`), and template equality that ignores that label.
//!
//! Upstream hashes the Go struct dump with fnv32a; we hash the canonical JSON of the template (field
//! order fixed by the type, maps sorted) with fnv32a, so the hash is deterministic and stable across
//! restarts and replicas, though not byte-equal to upstream's. Pure: no I/O.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The label (and RS selector term) carrying the template hash.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Characters without vowels (no accidental words) and without look-alikes, as upstream's
/// `rand.SafeEncodeString`.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv32a(mut hash: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Maps every character of `s` onto [`ALPHANUMS`], as upstream's `SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    s.chars().map(|c| char::from(ALPHANUMS[(c as usize) % ALPHANUMS.len()])).collect()
}

/// The hash of `template` (without any `pod-template-hash` label it may carry) and the Deployment's
/// `collisionCount`, which changes the hash after a name collision.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let canonical = normalized(template);
    let mut hash = fnv32a(FNV_OFFSET, canonical.to_string().as_bytes());
    if let Some(count) = collision_count {
        hash = fnv32a(hash, &count.to_le_bytes());
    }
    safe_encode(&hash.to_string())
}

/// Whether two templates are equal apart from the `pod-template-hash` label, treating absent and empty
/// maps or lists alike (upstream's `EqualIgnoreHash` with semantic equality).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a) == normalized(b)
}

/// The template as JSON without the hash label, nulls, and empty objects or arrays.
fn normalized(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    prune(&mut v);
    v
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune(child);
            }
            map.retain(|_, child| !is_empty(child));
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}
