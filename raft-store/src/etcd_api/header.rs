//! The `ResponseHeader` every etcd response carries.

use crate::proto::etcdserverpb as pb;
use crate::store::Store;

#[derive(Clone)]
pub struct Header {
    store: Store,
}

impl Header {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// A header reporting `revision`.
    pub fn at(&self, revision: i64) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: self.store.cluster_id(),
            member_id: self.store.node_id(),
            revision,
            raft_term: self.store.term(),
        }
    }

    /// A header reporting this replica's current revision.
    pub fn now(&self) -> pb::ResponseHeader {
        self.at(self.store.revision())
    }
}
