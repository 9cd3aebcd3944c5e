//! Generated protobuf code: the etcd v3 API subset (`etcdserverpb`, `mvccpb`) and the private Raft peer
//! protocol (`gantry.raft.v1`). Generated code only.

#![allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

pub mod raftpb {
    tonic::include_proto!("gantry.raft.v1");
}
