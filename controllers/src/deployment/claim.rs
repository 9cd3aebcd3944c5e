//! Which ReplicaSets a Deployment controls (upstream `ClaimReplicaSets`): those with its controller
//! reference that its selector still picks, plus orphans it picks (to adopt); controlled ones it no
//! longer picks are released. Pure.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use crate::pods::{controller_of, selects};

#[derive(Debug, Default)]
pub struct Claim {
    /// Controlled ReplicaSets, adopted ones included.
    pub owned: Vec<ReplicaSet>,
    /// Orphans to give a controller reference to.
    pub adopt: Vec<Arc<ReplicaSet>>,
    /// Controlled ReplicaSets the selector no longer picks.
    pub release: Vec<Arc<ReplicaSet>>,
}

/// Claims among `sets` (the ReplicaSets of `d`'s namespace). A Deployment being deleted adopts and
/// releases nothing.
pub fn claim(d: &Deployment, sets: &[Arc<ReplicaSet>]) -> Claim {
    let uid = d.metadata.uid.as_deref().unwrap_or_default();
    let selector = d.spec.as_ref().map(|s| &s.selector);
    let deleting = d.metadata.deletion_timestamp.is_some();
    let mut out = Claim::default();
    for rs in sets {
        let picked = selects(selector, rs.metadata.labels.as_ref());
        match controller_of(&rs.metadata) {
            Some(o) if o.uid == uid => {
                if picked {
                    out.owned.push(rs.as_ref().clone());
                } else if !deleting {
                    out.release.push(rs.clone());
                }
            }
            Some(_) => {}
            None if picked && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                out.adopt.push(rs.clone());
                out.owned.push(rs.as_ref().clone());
            }
            None => {}
        }
    }
    out
}
