//! The sending end of the peer `Pipe` stream: one long-lived gRPC stream to one peer address that
//! carries requests as frames and matches the answers to them by id.
//!
//! Why: a unary call per Raft message costs an HTTP/2 stream set-up on both sides, a hop through the
//! channel's buffer task and a task spawned on the receiver for each message. Measured on the write
//! path, the leader's AppendEntries took about 200 us from the replication task to the follower's
//! handler, most of a write's latency at low concurrency. On an open stream a frame goes straight
//! into the connection.
//!
//! Owns the stream and the table of requests waiting for answers; knows nothing of what the frames
//! hold (callers encode and decode them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use crate::proto::raftpb::raft_peer_client::RaftPeerClient;
use crate::proto::raftpb::{Frame, FrameKind};

/// Why a request sent over a pipe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// The stream could not be opened: the peer never saw the request.
    #[error("cannot open a stream to {addr}: {reason}")]
    Connect { addr: String, reason: String, never_sent: bool },
    /// The stream broke after the request was handed to it: the peer may have handled it.
    #[error("stream to {addr} broke: {reason}")]
    Lost { addr: String, reason: String },
    #[error("no answer from {addr} in time")]
    Timeout { addr: String },
    /// The peer does not serve `Pipe` (a replica of an older version): use the unary calls.
    #[error("{addr} does not serve the peer stream")]
    Unsupported { addr: String },
    /// The peer answered that it could not handle the request.
    #[error("{addr} refused the request: {reason}")]
    Refused { addr: String, reason: String },
}

type Answer = oneshot::Sender<Result<Vec<u8>, String>>;

/// Requests sent on one open stream and not yet answered.
#[derive(Default)]
struct Waiting {
    next_id: u64,
    answers: HashMap<u64, Answer>,
    /// Set once the stream has ended; nothing may wait on it after that.
    closed: Option<String>,
}

/// One open stream.
pub struct OpenPipe {
    addr: String,
    frames: mpsc::UnboundedSender<Frame>,
    waiting: Arc<Mutex<Waiting>>,
}

fn lock(w: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long to use unary calls towards a peer that does not serve the pipe before asking again
/// (it may have been upgraded meanwhile).
const UNSUPPORTED_RECHECK: Duration = Duration::from_secs(30);

enum PipeState {
    Closed,
    Open(Arc<OpenPipe>),
    Unsupported { until: tokio::time::Instant },
}

/// The pipe to one peer address, opened on first use and again after it breaks.
pub struct PeerPipe {
    addr: String,
    state: tokio::sync::Mutex<PipeState>,
}

impl PeerPipe {
    pub fn new(addr: &str) -> Self {
        Self { addr: addr.to_string(), state: tokio::sync::Mutex::new(PipeState::Closed) }
    }

    /// The open stream, opening one if there is none or the last one broke. `Unsupported` when the
    /// peer does not serve the pipe.
    pub async fn open(
        &self,
        client: impl FnOnce() -> Result<RaftPeerClient<Channel>, PipeError>,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<OpenPipe>, PipeError> {
        let mut state = self.state.lock().await;
        match &*state {
            PipeState::Open(pipe) if lock(&pipe.waiting).closed.is_none() => return Ok(pipe.clone()),
            PipeState::Unsupported { until } if tokio::time::Instant::now() < *until => {
                return Err(PipeError::Unsupported { addr: self.addr.clone() });
            }
            _ => *state = PipeState::Closed,
        }
        let (frames, outgoing) = mpsc::unbounded_channel();
        let mut grpc = client()?;
        let opening = grpc.pipe(UnboundedReceiverStream::new(outgoing));
        let response = match tokio::time::timeout_at(deadline, opening).await {
            Ok(Ok(response)) => response,
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                *state = PipeState::Unsupported { until: tokio::time::Instant::now() + UNSUPPORTED_RECHECK };
                return Err(PipeError::Unsupported { addr: self.addr.clone() });
            }
            Ok(Err(status)) => {
                return Err(PipeError::Connect {
                    addr: self.addr.clone(),
                    reason: status.message().to_string(),
                    never_sent: super::peer_client::never_sent(&status),
                })
            }
            Err(_) => {
                return Err(PipeError::Connect {
                    addr: self.addr.clone(),
                    reason: "timed out opening the stream".into(),
                    never_sent: true,
                })
            }
        };
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        tokio::spawn(read_answers(response.into_inner(), waiting.clone()));
        let pipe = Arc::new(OpenPipe { addr: self.addr.clone(), frames, waiting });
        *state = PipeState::Open(pipe.clone());
        Ok(pipe)
    }
}

impl OpenPipe {
    /// Sends one request and waits until `deadline` for its answer's payload.
    pub async fn request(
        &self,
        kind: FrameKind,
        data: Vec<u8>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, PipeError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut w = lock(&self.waiting);
            if let Some(reason) = &w.closed {
                // Broke before this request was handed over: it was never sent.
                return Err(PipeError::Connect { addr: self.addr.clone(), reason: reason.clone(), never_sent: true });
            }
            w.next_id += 1;
            let id = w.next_id;
            w.answers.insert(id, tx);
            id
        };
        if self.frames.send(Frame { id, kind: kind as i32, data }).is_err() {
            lock(&self.waiting).answers.remove(&id);
            return Err(PipeError::Connect {
                addr: self.addr.clone(),
                reason: "stream closed".into(),
                never_sent: true,
            });
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(data))) => Ok(data),
            Ok(Ok(Err(reason))) => Err(PipeError::Refused { addr: self.addr.clone(), reason }),
            Ok(Err(_)) => {
                let reason = lock(&self.waiting).closed.clone().unwrap_or_else(|| "stream ended".into());
                Err(PipeError::Lost { addr: self.addr.clone(), reason })
            }
            Err(_) => {
                lock(&self.waiting).answers.remove(&id);
                Err(PipeError::Timeout { addr: self.addr.clone() })
            }
        }
    }
}

/// Hands each answer to its waiting request until the stream ends, then fails whatever still waits.
async fn read_answers(mut answers: tonic::Streaming<Frame>, waiting: Arc<Mutex<Waiting>>) {
    let reason = loop {
        match answers.message().await {
            Ok(Some(frame)) => {
                let Some(tx) = lock(&waiting).answers.remove(&frame.id) else {
                    continue; // Its caller gave up (timed out).
                };
                let answer = if frame.kind == FrameKind::Error as i32 {
                    Err(String::from_utf8_lossy(&frame.data).into_owned())
                } else {
                    Ok(frame.data)
                };
                let _ = tx.send(answer);
            }
            Ok(None) => break "the peer ended the stream".to_string(),
            Err(status) => break status.message().to_string(),
        }
    };
    let mut w = lock(&waiting);
    w.closed = Some(reason);
    // Dropping the senders wakes every waiting request with `Lost`.
    w.answers.clear();
}
