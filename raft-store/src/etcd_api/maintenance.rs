//! The etcd `Maintenance` service (status only) and the `Cluster` service.

use tonic::{Request, Response, Status};

use super::errors::to_status;
use super::header::Header;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::store::{MemberInfo, Store};

/// The etcd API version Gantry's store speaks, reported in `Status`.
pub const ETCD_API_VERSION: &str = "3.5.0";

pub struct MaintenanceService {
    store: Store,
    header: Header,
}

impl MaintenanceService {
    pub fn new(store: Store) -> Self {
        Self { header: Header::new(store.clone()), store }
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn status(&self, _req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.store.status();
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.header.at(s.revision)),
            version: ETCD_API_VERSION.to_string(),
            db_size: s.db_size,
            leader: s.leader.unwrap_or(0),
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: Vec::new(),
            db_size_in_use: s.db_size,
            is_learner: s.is_learner,
        }))
    }
}

pub struct ClusterService {
    store: Store,
    header: Header,
}

impl ClusterService {
    pub fn new(store: Store) -> Self {
        Self { header: Header::new(store.clone()), store }
    }

    fn members(&self) -> Result<Vec<pb::Member>, Status> {
        Ok(self.store.members().map_err(to_status)?.into_iter().map(member_to_pb).collect())
    }
}

fn member_to_pb(m: MemberInfo) -> pb::Member {
    pb::Member {
        id: m.id,
        name: format!("node-{}", m.id),
        peer_ur_ls: vec![format!("http://{}", m.peer_addr)],
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, req: Request<pb::MemberAddRequest>) -> Result<Response<pb::MemberAddResponse>, Status> {
        let req = req.into_inner();
        let Some(url) = req.peer_ur_ls.first() else {
            return Err(Status::invalid_argument("etcdserver: member add needs a peer URL"));
        };
        // etcd's MemberAdd request carries no id; replicas are identified by node id, so the new member
        // gets the next free one (reported back, as etcd reports the id it assigned).
        let members = self.store.members().map_err(to_status)?;
        let id = members.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let addr = url.trim_start_matches("http://").trim_start_matches("https://").to_string();
        self.store.add_learner(id, addr.clone()).await.map_err(to_status)?;
        if !req.is_learner {
            self.store.promote(id).await.map_err(to_status)?;
        }
        let member =
            member_to_pb(MemberInfo { id, peer_addr: addr, client_urls: Vec::new(), is_learner: req.is_learner });
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(self.header.now()),
            member: Some(member),
            members: self.members()?,
        }))
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        self.store.remove_member(req.into_inner().id).await.map_err(to_status)?;
        Ok(Response::new(pb::MemberRemoveResponse { header: Some(self.header.now()), members: self.members()? }))
    }

    async fn member_list(
        &self,
        req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        if req.into_inner().linearizable {
            self.store.read_barrier().await.map_err(to_status)?;
        }
        Ok(Response::new(pb::MemberListResponse { header: Some(self.header.now()), members: self.members()? }))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        self.store.promote(req.into_inner().id).await.map_err(to_status)?;
        Ok(Response::new(pb::MemberPromoteResponse { header: Some(self.header.now()), members: self.members()? }))
    }
}
