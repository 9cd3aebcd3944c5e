//! When a replica acknowledges a write to its caller. Owns only the choice; the write path
//! (`client_ops`, `write_batcher`) acts on it and the watch hub keeps the fence it implies.

/// When a write is acknowledged to the caller on the replica it came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteAck {
    /// Once this replica has applied it, so any state derived from this replica (an in-process
    /// cache fed by its watches, say) already includes it. In-process callers use this.
    LocalApply,
    /// Once the leader has applied it: committed on a quorum, its result and revision final. A
    /// follower does not wait for its own fsync and apply (a commit index that reaches it one
    /// AppendEntries later). Until it has applied the revision, the replica fences what its
    /// clients can see: serializable reads wait for it and a watch "from now" starts after it
    /// (`WatchHub::acknowledge`). So a client still reads its own writes on this replica, as with
    /// etcd, whose followers answer only after applying. The etcd API uses this.
    Leader,
}
