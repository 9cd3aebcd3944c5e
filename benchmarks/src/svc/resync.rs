//! Full resyncs timed in-process, with the agent's own code: the benchmark's Services and
//! EndpointSlices are listed from the API into a service catalog, rendered into the proxy's table and
//! written into the kernel as one `nft -f` transaction, as the agent's sync loop does (the kernel's
//! objects are listed first, the whole table is written). The first sync writes into an empty kernel;
//! the next ones rewrite an existing table (the agent's periodic repair). Then one Service's endpoint
//! changes per sync: the differential transaction the agent sends for an EndpointSlice change.
//!
//! It uses a table of its own (deleted at the end), so the agent's table is not disturbed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_node_agent::proxy::nft::{Netfilter, Nft, NftError};
use gantry_node_agent::proxy::{render, script, table_name, RuleSet};
use gantry_node_agent::services::ServiceCatalog;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Serialize;

use super::objects::{changed_endpoint, service_name, services_path, slices_path};
use crate::api::client::{ClientError, Connector};

/// The in-process table's node name.
const NODE: &str = "svc-bench-inproc";

/// Failures of the resync phase.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error("listing {what}")]
    List {
        what: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("the API's {what} list does not parse: {message}")]
    Parse { what: &'static str, message: String },
    #[error(transparent)]
    Nft(#[from] NftError),
}

/// One sync, split into its steps (milliseconds).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SyncTiming {
    pub render_ms: f64,
    /// Listing the kernel's objects (full syncs only).
    pub list_ms: f64,
    pub script_ms: f64,
    pub apply_ms: f64,
    pub total_ms: f64,
    pub script_bytes: usize,
}

/// What the phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct ResyncFigures {
    pub catalog_ms: f64,
    pub service_ports: usize,
    pub endpoints: usize,
    pub rules: usize,
    pub elements: usize,
    /// Into an empty kernel.
    pub first: SyncTiming,
    /// Rewriting the existing table.
    pub full: Vec<SyncTiming>,
    /// One changed endpoint each.
    pub partial: Vec<SyncTiming>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Lists the namespace's Services and EndpointSlices into a catalog.
pub async fn catalog(connector: &Arc<Connector>, namespace: &str) -> Result<ServiceCatalog, ResyncError> {
    let mut conn = connector.connection(0);
    let services = conn
        .get_json(&services_path(namespace))
        .await
        .map_err(|source| ResyncError::List { what: "Service", source })?;
    let slices = conn
        .get_json(&slices_path(namespace))
        .await
        .map_err(|source| ResyncError::List { what: "EndpointSlice", source })?;
    let services: Vec<Service> = items(&services, "Service")?;
    let slices: Vec<EndpointSlice> = items(&slices, "EndpointSlice")?;
    Ok(ServiceCatalog::build(services.iter(), slices.iter()))
}

fn items<T: serde::de::DeserializeOwned>(list: &serde_json::Value, what: &'static str) -> Result<Vec<T>, ResyncError> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .into_iter()
        .map(|i| serde_json::from_value(i).map_err(|e| ResyncError::Parse { what, message: e.to_string() }))
        .collect()
}

async fn full_sync(nft: &Nft, catalog: &ServiceCatalog, table: &str) -> Result<(SyncTiming, RuleSet), ResyncError> {
    let t0 = Instant::now();
    let desired = render(catalog, table);
    let t1 = Instant::now();
    let existing = nft.objects(table).await?;
    let t2 = Instant::now();
    let text = script::full(&desired, &existing);
    let t3 = Instant::now();
    let bytes = text.len();
    nft.apply(text).await?;
    let t4 = Instant::now();
    let timing = SyncTiming {
        render_ms: ms(t1 - t0),
        list_ms: ms(t2 - t1),
        script_ms: ms(t3 - t2),
        apply_ms: ms(t4 - t3),
        total_ms: ms(t4 - t0),
        script_bytes: bytes,
    };
    Ok((timing, desired))
}

/// Runs the phase on `catalog`: `full_syncs` full syncs (the first into an empty kernel), then as
/// many single-endpoint changes.
pub async fn measure(
    mut catalog: ServiceCatalog,
    full_syncs: usize,
    catalog_ms: f64,
) -> Result<ResyncFigures, ResyncError> {
    let nft = Nft::default();
    let table = table_name(NODE);
    nft.delete_table(&table).await?;
    let result = async {
        let (first, mut applied) = full_sync(&nft, &catalog, &table).await?;
        let mut full = Vec::new();
        for _ in 1..full_syncs.max(1) {
            let (timing, rules) = full_sync(&nft, &catalog, &table).await?;
            full.push(timing);
            applied = rules;
        }
        let mut partial = Vec::new();
        let services = catalog.services.len().max(1);
        for n in 0..full_syncs.max(1) {
            let name = service_name((n * 7919) % services);
            let Some(entry) = catalog.services.values_mut().find(|e| e.name == name && !e.endpoints.is_empty()) else {
                continue;
            };
            entry.endpoints[0].ip = changed_endpoint(1_000_000 + n);
            let t0 = Instant::now();
            let desired = render(&catalog, &table);
            let t1 = Instant::now();
            let Some(text) = script::diff(&applied, &desired) else { continue };
            let t2 = Instant::now();
            let bytes = text.len();
            nft.apply(text).await?;
            let t3 = Instant::now();
            partial.push(SyncTiming {
                render_ms: ms(t1 - t0),
                list_ms: 0.0,
                script_ms: ms(t2 - t1),
                apply_ms: ms(t3 - t2),
                total_ms: ms(t3 - t0),
                script_bytes: bytes,
            });
            applied = desired;
        }
        Ok::<_, ResyncError>(ResyncFigures {
            catalog_ms,
            service_ports: applied.counts.service_ports,
            endpoints: applied.counts.endpoints,
            rules: applied.rule_count(),
            elements: applied.element_count(),
            first,
            full,
            partial,
        })
    }
    .await;
    nft.delete_table(&table).await?;
    result
}
