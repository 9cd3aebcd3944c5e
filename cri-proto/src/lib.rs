//! CRI v1 bindings for Gantry (placeholder — empty for now).
//!
//! Per `DESIGN.md`, this crate will hold the Container Runtime Interface v1 gRPC bindings (`k8s-cri`,
//! `runtime.v1.RuntimeService` and `runtime.v1.ImageService`) generated from the upstream `api.proto`,
//! plus a small helper that opens a gRPC channel over a unix socket (containerd's or CRI-O's). Generated
//! code only: it must not depend on any other Gantry crate. The node agent (`gantry-node-agent`) is its
//! only user.
