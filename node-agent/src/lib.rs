//! Gantry node agent (placeholder — nothing is implemented yet).
//!
//! Per `DESIGN.md`, this crate will own everything that runs on a worker machine, one agent per machine:
//!
//! - node registration (capacity read from the machine) and Lease heartbeats in `kube-node-lease`
//!   every 10 s;
//! - watching its own pods (`fieldSelector=spec.nodeName=<node>`) and a worker per pod that reconciles
//!   desired state against the container runtime over CRI (containerd or CRI-O): sandbox and CNI
//!   networking, image pulls by policy, init containers, containers, restart policy with back-off,
//!   liveness/readiness/startup probes, volumes, graceful termination, and pod status back to the API;
//! - a container logs (later exec/attach/port-forward) server on its own HTTPS port;
//! - the service proxy and cluster DNS.
//!
//! It talks to the control plane only through the public Kubernetes API, so it could serve any conformant
//! API server; it must not depend on `raft-store` or `control-plane`. The CRI bindings come from
//! `gantry-cri-proto`. The binary is `gantry-node-agent`.

/// Message printed by the `gantry-node-agent` binary until the agent exists.
pub const NOT_IMPLEMENTED: &str = "gantry-node-agent: not implemented yet";
