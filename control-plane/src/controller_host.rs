//! Runs the scheduler and controllers (`gantry-controllers`) on the replica that leads Raft, against
//! this replica's own API in-process, and stops them the moment leadership is lost, so at most one
//! replica acts at a time (every write they make is a compare-and-swap through Raft besides, so a
//! stale leader's last writes cannot corrupt anything).
//!
//! Must not decide anything itself; owns only the leadership gate.

use std::future::Future;

use gantry_controllers::{run_controller_manager, ManagerConfig};
use raft_store::Store;

use crate::api::auth::UserInfo;
use crate::api::ApiServer;

/// The identity the controllers act as (upstream's controller manager user).
pub const CONTROLLER_USER: &str = "system:kube-controller-manager";

/// Runs the controllers whenever `store` leads, until `shutdown` resolves.
pub async fn run_while_leader(
    server: ApiServer,
    store: Store,
    config: ManagerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let user = UserInfo {
        name: CONTROLLER_USER.to_string(),
        uid: String::new(),
        groups: vec!["system:authenticated".to_string()],
    };
    let client = kube::Client::new(server.local_service(user), "default");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = store.wait_leadership(true) => {}
        }
        tracing::info!(term = store.term(), "leading: starting the scheduler and controllers");
        tokio::select! {
            _ = &mut shutdown => return,
            _ = store.wait_leadership(false) => {
                tracing::info!("leadership lost: controllers stopped");
            }
            _ = run_controller_manager(client.clone(), config.clone()) => {}
        }
    }
}
