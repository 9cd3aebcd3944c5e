//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets it owns (one
//! per template, named `<deployment>-<template hash>`), by `RollingUpdate` within `maxSurge` and
//! `maxUnavailable` or by `Recreate`; scales them proportionally when `spec.replicas` changes, keeps
//! `revisionHistoryLimit` old ones for `kubectl rollout undo`, and reports the conditions
//! `kubectl rollout status` reads. It never touches pods.

pub mod annotations;
pub mod claim;
pub mod controller;
pub mod hash;
mod pass;
pub mod pending;
pub mod plan;
mod rolling;
pub mod sets;
pub mod status;
pub mod strategy;

#[cfg(test)]
mod tests;

pub use controller::{spawn, DeploymentController};
pub use plan::{plan, DeploymentPlan, ReplicaSetUpdate};
