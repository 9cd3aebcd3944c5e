//! The ownership graph: which cached object (by uid) is of which kind and name, and which objects
//! name a uid as owner. Fed by the informers' change streams; an owner uid may have dependents while
//! not being in the graph itself (deleted, or of a kind that is not cached).
//!
//! Must not depend on the API client or decide anything.

use std::collections::{BTreeSet, HashMap};

use super::kinds::Kind;
use crate::runtime::ObjectKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    pub kind: Kind,
    pub key: ObjectKey,
    /// Uids of the owner references.
    pub owners: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, GraphNode>,
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or updates the object `uid`; returns the owners it had before (if known).
    pub fn upsert(&mut self, uid: &str, node: GraphNode) -> Vec<String> {
        let before = self.remove(uid).map(|n| n.owners).unwrap_or_default();
        for owner in &node.owners {
            self.dependents.entry(owner.clone()).or_default().insert(uid.to_string());
        }
        self.nodes.insert(uid.to_string(), node);
        before
    }

    /// Forgets the object `uid` (its dependents stay recorded under its uid).
    pub fn remove(&mut self, uid: &str) -> Option<GraphNode> {
        let node = self.nodes.remove(uid)?;
        for owner in &node.owners {
            if let Some(deps) = self.dependents.get_mut(owner) {
                deps.remove(uid);
                if deps.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        Some(node)
    }

    pub fn node(&self, uid: &str) -> Option<&GraphNode> {
        self.nodes.get(uid)
    }

    /// Uids of the objects that name `uid` as owner.
    pub fn dependents(&self, uid: &str) -> Vec<String> {
        self.dependents.get(uid).map(|d| d.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, owners: &[&str]) -> GraphNode {
        GraphNode {
            kind: Kind::Pod,
            key: ObjectKey::new("ns", name),
            owners: owners.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn dependents_follow_owner_reference_changes_and_removals() {
        let mut g = Graph::new();
        g.upsert("a", node("a", &["rs1"]));
        g.upsert("b", node("b", &["rs1", "rs2"]));
        assert_eq!(g.dependents("rs1"), ["a", "b"]);
        let before = g.upsert("b", node("b", &["rs2"]));
        assert_eq!(before, ["rs1", "rs2"]);
        assert_eq!(g.dependents("rs1"), ["a"]);
        assert_eq!(g.dependents("rs2"), ["b"]);
        assert!(g.remove("a").is_some());
        assert!(g.dependents("rs1").is_empty());
        assert_eq!(g.len(), 1);
        assert!(g.remove("a").is_none());
    }
}
