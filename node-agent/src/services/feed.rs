//! Follows the cluster's Services and EndpointSlices (one watch each, into reflector stores) and
//! publishes a fresh [`ServiceCatalog`] after changes, at most once per `debounce`, once both initial
//! lists have arrived. The service proxy and cluster DNS both read it.
//!
//! Owns the two watches; decides nothing about rules or records.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::catalog::ServiceCatalog;

/// Which watch an event came from, and whether it ended an initial list.
enum Seen {
    Service { listed: bool },
    Slice { listed: bool },
    Failed(String),
}

/// Starts the watches; the receiver holds `None` until both lists arrived.
pub fn spawn(
    client: Client,
    debounce: Duration,
    shutdown: watch::Receiver<bool>,
) -> watch::Receiver<Option<Arc<ServiceCatalog>>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(run(client, tx, debounce, shutdown));
    rx
}

async fn run(
    client: Client,
    tx: watch::Sender<Option<Arc<ServiceCatalog>>>,
    debounce: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let (services, service_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let service_events = reflector::reflector(
        service_writer,
        watcher::watcher(Api::<Service>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .map(|e| match e {
        Ok(e) => Seen::Service { listed: matches!(e, Event::InitDone) },
        Err(e) => Seen::Failed(format!("services: {e}")),
    });
    let slice_events = reflector::reflector(
        slice_writer,
        watcher::watcher(Api::<EndpointSlice>::all(client), watcher::Config::default()).default_backoff(),
    )
    .map(|e| match e {
        Ok(e) => Seen::Slice { listed: matches!(e, Event::InitDone) },
        Err(e) => Seen::Failed(format!("endpointslices: {e}")),
    });
    let mut events = futures::stream::select(service_events, slice_events).boxed();
    let (mut services_listed, mut slices_listed) = (false, false);
    let mut due: Option<Instant> = None;
    loop {
        let publish_at = due.filter(|_| services_listed && slices_listed);
        tokio::select! {
            event = events.next() => {
                match event {
                    Some(Seen::Service { listed }) => services_listed |= listed,
                    Some(Seen::Slice { listed }) => slices_listed |= listed,
                    Some(Seen::Failed(e)) => warn!(error = %e, "watch for the service catalog failed; retrying"),
                    None => return,
                }
                due.get_or_insert_with(|| Instant::now() + debounce);
            }
            _ = tokio::time::sleep_until(publish_at.unwrap_or_else(Instant::now)), if publish_at.is_some() => {
                due = None;
                publish(&tx, &services, &slices);
            }
            _ = shutdown.changed() => return,
        }
    }
}

fn publish(tx: &watch::Sender<Option<Arc<ServiceCatalog>>>, services: &Store<Service>, slices: &Store<EndpointSlice>) {
    let (services, slices) = (services.state(), slices.state());
    let catalog = ServiceCatalog::build(services.iter().map(AsRef::as_ref), slices.iter().map(AsRef::as_ref));
    let changed = tx.send_if_modified(|current| {
        if current.as_deref() == Some(&catalog) {
            return false;
        }
        *current = Some(Arc::new(catalog));
        true
    });
    if changed {
        debug!(services = services.len(), slices = slices.len(), "service catalog updated");
    }
}
