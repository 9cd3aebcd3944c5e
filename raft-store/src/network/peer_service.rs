//! The Raft peer gRPC service: hands incoming Raft RPCs to openraft and forwarded client requests to
//! the store. Payloads are bincode; a malformed one is rejected with `InvalidArgument`.

use std::pin::Pin;

use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::raftpb::raft_peer_server::RaftPeer;
use crate::proto::raftpb::{Frame, FrameKind, Payload};
use crate::store::Store;

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

pub struct PeerService {
    store: Store,
    /// Ends open pipes when it turns true, besides the store closing.
    stop: Option<watch::Receiver<bool>>,
}

impl PeerService {
    /// A service whose open pipes end when the store begins to close (`Store::begin_close`), so the
    /// server's graceful shutdown, which waits for open streams, can finish.
    pub fn new(store: Store) -> Self {
        Self { store, stop: None }
    }

    /// Also ends open pipes when `stop` turns true: for a server stopped while its store keeps
    /// running (a test's network partition).
    pub fn with_stop(self, stop: watch::Receiver<bool>) -> Self {
        Self { stop: Some(stop), ..self }
    }
}

fn decode<T: DeserializeOwned>(req: Request<Payload>) -> Result<T, Status> {
    bincode::deserialize(&req.into_inner().data).map_err(|e| Status::invalid_argument(format!("bad payload: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<Payload>, Status> {
    let data = bincode::serialize(v).map_err(|e| Status::internal(format!("encoding response: {e}")))?;
    Ok(Response::new(Payload { data }))
}

/// The answer frame to request `id`: `answer` encoded, or an error frame with the reason.
fn answer_frame<T: Serialize>(id: u64, kind: FrameKind, answer: Result<T, String>) -> Frame {
    match answer.and_then(|a| bincode::serialize(&a).map_err(|e| format!("encoding response: {e}"))) {
        Ok(data) => Frame { id, kind: kind as i32, data },
        Err(reason) => Frame { id, kind: FrameKind::Error as i32, data: reason.into_bytes() },
    }
}

fn decode_frame<T: DeserializeOwned>(data: &[u8]) -> Result<T, String> {
    bincode::deserialize(data).map_err(|e| format!("bad payload: {e}"))
}

/// Serves one peer's pipe until the peer closes it or this replica shuts down (the server's
/// graceful drain waits for open streams). AppendEntries are handled in order, one at a time, in
/// this task (a leader sends one at a time per follower anyway, and this spares a task per
/// message); forwarded client requests each get a task, so a slow one does not hold up the rest.
async fn serve_pipe(
    store: Store,
    stop: Option<watch::Receiver<bool>>,
    mut requests: Streaming<Frame>,
    answers: mpsc::UnboundedSender<Result<Frame, Status>>,
) {
    let closed = store.closed();
    tokio::pin!(closed);
    let stopped = async move {
        match stop {
            Some(mut rx) => {
                let _ = rx.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopped);
    loop {
        let next = tokio::select! {
            next = requests.message() => next,
            () = &mut closed => return,
            () = &mut stopped => return,
        };
        let frame = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(status) => {
                tracing::debug!(%status, "peer stream ended");
                return;
            }
        };
        let id = frame.id;
        match FrameKind::try_from(frame.kind) {
            Ok(FrameKind::AppendEntries) => {
                let answer = match decode_frame(&frame.data) {
                    Ok(rpc) => Ok(store.raft().append_entries(rpc).await),
                    Err(e) => Err(e),
                };
                let _ = answers.send(Ok(answer_frame(id, FrameKind::AppendEntries, answer)));
            }
            Ok(FrameKind::Forward) => {
                let store = store.clone();
                let answers = answers.clone();
                tokio::spawn(async move {
                    let answer = match decode_frame(&frame.data) {
                        Ok(fwd) => Ok(store.handle_forward(fwd).await),
                        Err(e) => Err(e),
                    };
                    let _ = answers.send(Ok(answer_frame(id, FrameKind::Forward, answer)));
                });
            }
            _ => {
                let reason = format!("unknown frame kind {}", frame.kind);
                let _ = answers.send(Ok(answer_frame::<()>(id, FrameKind::Error, Err(reason))));
            }
        }
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    type PipeStream = FrameStream;

    async fn pipe(&self, req: Request<Streaming<Frame>>) -> Result<Response<Self::PipeStream>, Status> {
        let (answers, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve_pipe(self.store.clone(), self.stop.clone(), req.into_inner(), answers));
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = decode(req)?;
        encode(&self.store.raft().append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = decode(req)?;
        encode(&self.store.raft().vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = decode(req)?;
        encode(&self.store.raft().install_snapshot(rpc).await)
    }

    async fn forward(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let fwd = decode(req)?;
        encode(&self.store.handle_forward(fwd).await)
    }
}
