//! The Raft peer gRPC service: hands incoming Raft RPCs to openraft and forwarded client requests to
//! the store. Payloads are bincode; a malformed one is rejected with `InvalidArgument`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::proto::raftpb::raft_peer_server::RaftPeer;
use crate::proto::raftpb::Payload;
use crate::store::Store;

pub struct PeerService {
    store: Store,
}

impl PeerService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn decode<T: DeserializeOwned>(req: Request<Payload>) -> Result<T, Status> {
    bincode::deserialize(&req.into_inner().data).map_err(|e| Status::invalid_argument(format!("bad payload: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<Payload>, Status> {
    let data = bincode::serialize(v).map_err(|e| Status::internal(format!("encoding response: {e}")))?;
    Ok(Response::new(Payload { data }))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
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
