//! Replica-to-replica traffic: the Raft transport, the peer gRPC service and leader forwarding.

pub mod forward;
pub mod peer_client;
pub mod peer_service;
pub mod pipe;

#[cfg(test)]
mod pipe_tests;
