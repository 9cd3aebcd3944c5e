//! The peer pipe against a scripted peer: answers matched by id, a broken stream, and the unary
//! fallback towards a peer that does not serve the pipe.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::peer_client::PeerChannels;
use super::pipe::PipeError;
use crate::proto::raftpb::raft_peer_server::{RaftPeer, RaftPeerServer};
use crate::proto::raftpb::{Frame, FrameKind, Payload};

/// A peer that answers forwards with `unary:<request>` and, when it serves the pipe, answers frames
/// with `pipe:<request>`, holding each answer until the next request arrives (so two requests are
/// answered in reverse order), and hanging up on a request that says `hang up`.
struct ScriptedPeer {
    serves_pipe: bool,
}

fn prefixed(prefix: &str, data: &[u8]) -> Vec<u8> {
    [prefix.as_bytes(), data].concat()
}

#[tonic::async_trait]
impl RaftPeer for ScriptedPeer {
    type PipeStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

    async fn append_entries(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn vote(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn install_snapshot(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn forward(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        Ok(Response::new(Payload { data: prefixed("unary:", &req.into_inner().data) }))
    }

    async fn pipe(&self, req: Request<Streaming<Frame>>) -> Result<Response<Self::PipeStream>, Status> {
        if !self.serves_pipe {
            return Err(Status::unimplemented("no pipe here"));
        }
        let mut requests = req.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held: Option<Frame> = None;
            while let Ok(Some(frame)) = requests.message().await {
                if frame.data == b"hang up" {
                    return;
                }
                let answer = Frame { id: frame.id, kind: frame.kind, data: prefixed("pipe:", &frame.data) };
                match held.take() {
                    None => held = Some(answer),
                    Some(first) => {
                        let _ = tx.send(Ok(answer));
                        let _ = tx.send(Ok(first));
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

async fn start_peer(serves_pipe: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftPeerServer::new(ScriptedPeer { serves_pipe }))
            .serve_with_incoming(crate::server::incoming(listener)),
    );
    addr
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn concurrent_requests_get_their_own_answers_on_one_stream() {
    let addr = start_peer(true).await;
    let channels = PeerChannels::default();
    let (a, b) = tokio::join!(
        channels.call_pipe(&addr, FrameKind::Forward, b"a".to_vec(), TIMEOUT),
        channels.call_pipe(&addr, FrameKind::Forward, b"b".to_vec(), TIMEOUT),
    );
    assert_eq!(a.expect("a answered"), b"pipe:a", "answers are matched by id, not by order");
    assert_eq!(b.expect("b answered"), b"pipe:b");
}

#[tokio::test]
async fn a_broken_stream_fails_the_waiting_request_and_the_next_one_reopens_it() {
    let addr = start_peer(true).await;
    let channels = PeerChannels::default();
    let waiting = {
        let channels = channels.clone();
        let addr = addr.clone();
        tokio::spawn(async move { channels.call_pipe(&addr, FrameKind::Forward, b"x".to_vec(), TIMEOUT).await })
    };
    // Let the first request reach the peer (it holds its answer), then make the peer hang up.
    let hang_up = async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let r = channels.call_pipe(&addr, FrameKind::Forward, b"hang up".to_vec(), Duration::from_secs(1)).await;
            if !matches!(r, Err(PipeError::Connect { .. })) {
                return r;
            }
        }
    };
    let hung_up = tokio::time::timeout(TIMEOUT, hang_up).await.expect("hang-up request finished");
    assert!(matches!(hung_up, Err(PipeError::Lost { .. })), "got {hung_up:?}");
    let first = waiting.await.expect("task");
    assert!(matches!(first, Err(PipeError::Lost { .. })), "a request the peer may have seen is Lost, got {first:?}");

    // A fresh stream serves the next requests.
    let (a, b) = tokio::join!(
        channels.call_pipe(&addr, FrameKind::Forward, b"a".to_vec(), TIMEOUT),
        channels.call_pipe(&addr, FrameKind::Forward, b"b".to_vec(), TIMEOUT),
    );
    assert_eq!(a.expect("a answered"), b"pipe:a");
    assert_eq!(b.expect("b answered"), b"pipe:b");
}

#[tokio::test]
async fn a_peer_without_the_pipe_is_reached_with_unary_calls() {
    let addr = start_peer(false).await;
    let channels = PeerChannels::default();
    for _ in 0..2 {
        let answer = channels.call_pipe(&addr, FrameKind::Forward, b"w".to_vec(), TIMEOUT).await;
        assert_eq!(answer.expect("answered"), b"unary:w");
    }
}

#[tokio::test]
async fn an_unreachable_peer_is_reported_as_never_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let channels = PeerChannels::default();
    let answer = channels.call_pipe(&addr, FrameKind::Forward, b"w".to_vec(), TIMEOUT).await;
    assert!(matches!(answer, Err(PipeError::Connect { never_sent: true, .. })), "got {answer:?}");
}
