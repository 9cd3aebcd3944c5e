//! Tables for the small groups: `coordination.k8s.io` leases, `discovery.k8s.io` endpointslices and
//! `policy` poddisruptionbudgets, after upstream `printLease`, `printEndpointSlice` and
//! `printPodDisruptionBudget`.
//!
//! Pure; depends only on the sibling column and format helpers.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::columns::{col, Column, Printer, Row, AGE, NAME};
use super::format::{age, at, first_few, int, int_or_string, list, name, strings, text, UNSET};

/// The printer for a resource of one of these groups.
pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    match (group, resource) {
        ("coordination.k8s.io", "leases") => Some(Printer { columns: LEASE, row: lease }),
        ("discovery.k8s.io", "endpointslices") => Some(Printer { columns: ENDPOINTSLICE, row: endpointslice }),
        ("policy", "poddisruptionbudgets") => Some(Printer { columns: PDB, row: pdb }),
        _ => None,
    }
}

const LEASE: &[Column] = &[NAME, col("Holder", "string", "The identity of the holder of the current lease."), AGE];

fn lease(lease: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![json!(name(lease)), json!(text(lease, &["spec", "holderIdentity"])), json!(age(lease, now))])
}

const ENDPOINTSLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", "The type of address carried by this EndpointSlice."),
    col("Ports", "string", "The network ports exposed by each endpoint."),
    col("Endpoints", "string", "The addresses of the endpoints."),
    AGE,
];

fn endpointslice(slice: &Value, now: DateTime<Utc>) -> Row {
    let ports: Vec<String> = list(slice, &["ports"])
        .iter()
        .map(|p| match (at(p, &["port"]), text(p, &["name"])) {
            (Some(_), _) => int(p, &["port"]).to_string(),
            (None, "") => "*".to_owned(),
            (None, port_name) => port_name.to_owned(),
        })
        .collect();
    let addresses: Vec<String> =
        list(slice, &["endpoints"]).iter().flat_map(|e| strings(e, &["addresses"])).map(str::to_owned).collect();
    Row::from(vec![
        json!(name(slice)),
        json!(text(slice, &["addressType"])),
        json!(first_few(&ports, 3, UNSET)),
        json!(first_few(&addresses, 3, UNSET)),
        json!(age(slice, now)),
    ])
}

const PDB: &[Column] = &[
    NAME,
    col("Min Available", "string", "The minimum number of pods that must be available."),
    col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
    col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
    AGE,
];

fn pdb(pdb: &Value, now: DateTime<Utc>) -> Row {
    let bound = |field: &str| at(pdb, &["spec", field]).map_or_else(|| "N/A".to_owned(), int_or_string);
    Row::from(vec![
        json!(name(pdb)),
        json!(bound("minAvailable")),
        json!(bound("maxUnavailable")),
        json!(int(pdb, &["status", "disruptionsAllowed"])),
        json!(age(pdb, now)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    #[test]
    fn lease_slice_and_budget_cells() {
        let l = json!({"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "cp-1_abc"}});
        assert_eq!(lease(&l, now()).cells[1], "cp-1_abc");

        let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}, {"port": 9090}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}]});
        assert_eq!(
            endpointslice(&slice, now()).cells[1..4],
            [json!("IPv4"), json!("80,metrics,* + 1 more..."), json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(endpointslice(&empty, now()).cells[2..4], [json!("<unset>"), json!("<unset>")]);

        let budget =
            json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(pdb(&budget, now()).cells[1..4], [json!("50%"), json!("N/A"), json!(1)]);
        let budget = json!({"metadata": {"name": "web"}, "spec": {"maxUnavailable": 1}});
        assert_eq!(pdb(&budget, now()).cells[1..4], [json!("N/A"), json!("1"), json!(0)]);
    }
}
