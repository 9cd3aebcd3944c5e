//! Coalesces concurrent client transactions into batches, so that one Raft log entry (one leader
//! fsync, one replication round, one apply batch) carries many of them.
//!
//! Why: every entry costs a replication round, an apply and, on each follower, an fsync before the
//! follower acknowledges it (openraft 0.9 runs a follower's appends one at a time in its core loop).
//! Proposing each transaction as its own entry caps write throughput at about one transaction per
//! follower fsync, however many clients wait. Here at most `MAX_RUNNING` batches are in flight per
//! replica; whatever queues up meanwhile goes out as the next batch. A lone client never waits for a
//! timer: with a free slot its write leaves at once. (The leader does not wait for its own
//! fsync before it replicates: see `third_party/openraft/GANTRY-PATCH.md`.)
//!
//! Owns only the queue; routing and proposing are the store's (`Store::forward_write`), and so is
//! waiting for the local apply (`Store::settle_write`, in the caller's task).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::handle::Store;
use super::write_ack::WriteAck;
use crate::error::StoreError;
use crate::network::forward::{ForwardRequest, ForwardResponse};
use crate::types::{Command, CommandResponse, CommandResult};

/// Batches in flight per replica. With one, a write arriving while a batch is out waits for it to
/// come back and then for its own; with two, the next batch leaves at once. Measured with store-bench
/// puts once peer messages went over the pipe (2 runs each): two gave 12-17 % more throughput at 16
/// and 64 clients and the same at 1 and 256. (When the leader still waited for its own fsync
/// before replicating, one had been better.)
const MAX_RUNNING: usize = 2;
/// Upper bounds for one batch. A single command larger than `MAX_BATCH_BYTES` still goes, alone.
const MAX_BATCH_COMMANDS: usize = 1024;
const MAX_BATCH_BYTES: usize = 2 << 20;

type Reply = oneshot::Sender<Result<CommandResponse, StoreError>>;

pub(crate) struct Pending {
    cmd: Command,
    size: usize,
    reply: Reply,
}

struct State {
    queue: VecDeque<Pending>,
    running: usize,
}

pub(crate) struct WriteQueue {
    state: Mutex<State>,
}

impl Default for WriteQueue {
    fn default() -> Self {
        Self { state: Mutex::new(State { queue: VecDeque::new(), running: 0 }) }
    }
}

impl WriteQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a command. Returns a batch when the caller should start a runner for it.
    fn push(&self, pending: Pending) -> Option<Vec<Pending>> {
        let mut st = self.lock();
        st.queue.push_back(pending);
        if st.running < MAX_RUNNING {
            st.running += 1;
            Some(take_batch(&mut st.queue))
        } else {
            None
        }
    }

    /// Called by a runner whose batch finished: the next batch, or `None` when the queue is empty
    /// (the runner then stops, atomically with the check, so no queued command is stranded).
    fn next(&self) -> Option<Vec<Pending>> {
        let mut st = self.lock();
        if st.queue.is_empty() {
            st.running -= 1;
            None
        } else {
            Some(take_batch(&mut st.queue))
        }
    }

    /// A runner died without calling `next` until `None` (a panic): free its slot.
    fn abandon(&self) {
        let mut st = self.lock();
        st.running = st.running.saturating_sub(1);
    }
}

fn take_batch(queue: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(front) = queue.front() {
        if !batch.is_empty() && (batch.len() >= MAX_BATCH_COMMANDS || bytes + front.size > MAX_BATCH_BYTES) {
            break;
        }
        bytes += front.size;
        batch.extend(queue.pop_front());
    }
    batch
}

/// Frees the runner slot if the runner unwinds.
struct RunnerGuard<'a>(&'a WriteQueue);

impl Drop for RunnerGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon();
        }
    }
}

impl Store {
    /// Replicates a batchable command together with whatever other commands are waiting.
    pub(crate) async fn write_batched(&self, cmd: Command, ack: WriteAck) -> Result<CommandResponse, StoreError> {
        let size = bincode::serialized_size(&cmd).map(|s| s as usize).unwrap_or(0);
        let (reply, rx) = oneshot::channel();
        if let Some(batch) = self.inner.writes.push(Pending { cmd, size, reply }) {
            let store = self.clone();
            tokio::spawn(async move { store.run_write_batches(batch).await });
        }
        // The runner hands back the leader's answer and moves on to the next batch; waiting until
        // this replica has applied the write is the caller's, so it does not hold a runner slot.
        let resp = rx.await.unwrap_or(Err(StoreError::ShuttingDown))?;
        self.settle_write(resp, ack).await
    }

    async fn run_write_batches(self, first: Vec<Pending>) {
        let queue = &self.inner.writes;
        let _guard = RunnerGuard(queue);
        let mut batch = first;
        loop {
            self.write_batch(batch).await;
            match queue.next() {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    async fn write_batch(&self, mut batch: Vec<Pending>) {
        if batch.len() == 1 {
            if let Some(p) = batch.pop() {
                let _ = p.reply.send(self.forward_write(p.cmd).await);
            }
            return;
        }
        let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        let count = cmds.len();
        let responses = match self.on_leader(ForwardRequest::Write(Command::Batch(cmds))).await {
            Ok(ForwardResponse::Write(CommandResponse { result: CommandResult::Batch(r), .. })) if r.len() == count => {
                r
            }
            Ok(other) => {
                let e = StoreError::Raft(format!("unexpected response to a batch of {count} writes: {other:?}"));
                return fail_all(replies, &e);
            }
            Err(e) => return fail_all(replies, &e),
        };
        for (resp, reply) in responses.into_iter().zip(replies) {
            let _ = reply.send(Ok(resp));
        }
    }
}

fn fail_all(replies: Vec<Reply>, e: &StoreError) {
    for reply in replies {
        let _ = reply.send(Err(e.duplicate()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::model::TxnRequest;

    fn pending(size: usize) -> (Pending, oneshot::Receiver<Result<CommandResponse, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        (Pending { cmd: Command::Txn(TxnRequest::default()), size, reply }, rx)
    }

    #[test]
    fn runners_are_capped_and_batches_take_the_queue() {
        let q = WriteQueue::default();
        let mut keep = Vec::new();
        for _ in 0..MAX_RUNNING {
            let (p, rx) = pending(10);
            keep.push(rx);
            assert_eq!(q.push(p).map(|b| b.len()), Some(1), "with a free slot a write starts a runner at once");
        }
        for _ in 0..5 {
            let (p, rx) = pending(10);
            keep.push(rx);
            assert!(q.push(p).is_none(), "no runner beyond the cap");
        }
        assert_eq!(q.next().map(|b| b.len()), Some(5), "a finished runner takes all queued writes");
        for _ in 0..MAX_RUNNING {
            assert!(q.next().is_none(), "queue empty: the runner stops");
        }
        let (p, rx) = pending(10);
        keep.push(rx);
        assert!(q.push(p).is_some(), "slots were freed");
    }

    #[test]
    fn batches_respect_size_limits_but_never_strand_a_big_command() {
        let mut queue = VecDeque::new();
        let mut keep = Vec::new();
        for size in [MAX_BATCH_BYTES / 2, MAX_BATCH_BYTES / 2, 1, MAX_BATCH_BYTES * 3] {
            let (p, rx) = pending(size);
            keep.push(rx);
            queue.push_back(p);
        }
        assert_eq!(take_batch(&mut queue).len(), 2);
        assert_eq!(take_batch(&mut queue).len(), 1);
        assert_eq!(take_batch(&mut queue).len(), 1, "an oversized command still goes, alone");
        assert!(queue.is_empty());
        for _ in 0..MAX_BATCH_COMMANDS + 3 {
            let (p, rx) = pending(1);
            keep.push(rx);
            queue.push_back(p);
        }
        assert_eq!(take_batch(&mut queue).len(), MAX_BATCH_COMMANDS);
        assert_eq!(take_batch(&mut queue).len(), 3);
    }
}
