//! Tests of [`super`]: the sync decisions, then the loop against a recording fake of `nft`.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use super::*;
use crate::proxy::script::KernelObjects;
use crate::services::{Endpoint, Protocol, ServiceEntry, ServicePort, ServiceType};

const TABLE: &str = "gantry-proxy-n1";

/// A catalog with Service `web` (10.96.0.20:80) on endpoints 10.1.0.`e`:8080.
fn catalog(endpoints: &[u8]) -> ServiceCatalog {
    let entry = ServiceEntry {
        namespace: "default".into(),
        name: "web".into(),
        service_type: ServiceType::ClusterIp,
        cluster_ips: vec![Ipv4Addr::new(10, 96, 0, 20)],
        headless: false,
        external_name: None,
        ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None }],
        affinity_timeout: None,
        publish_not_ready: false,
        endpoints: endpoints
            .iter()
            .map(|e| Endpoint {
                ip: Ipv4Addr::new(10, 1, 0, *e),
                ready: true,
                serving: true,
                terminating: false,
                hostname: None,
                node_name: None,
                pod: None,
                ports: [(("http".to_string(), Protocol::Tcp), 8080)].into_iter().collect(),
            })
            .collect(),
    };
    let mut c = ServiceCatalog::default();
    c.services.insert(("default".into(), "web".into()), entry);
    c
}

#[test]
fn first_sync_is_full_then_differences_then_full_again_each_period() {
    let t0 = Instant::now();
    let mut state = SyncState::default();
    let one = render(&catalog(&[1]), TABLE);
    let two = render(&catalog(&[1, 2]), TABLE);
    assert_eq!(state.step(&one, t0), Step::Full);
    assert_eq!(state.wake_at(), None, "nothing to wake for before the first sync");
    assert!(!state.succeeded(one.clone(), true, t0));
    assert_eq!(state.wake_at(), Some(t0 + FULL_SYNC_PERIOD));
    assert_eq!(state.step(&one, t0 + Duration::from_secs(1)), Step::UpToDate);
    let Step::Partial(script) = state.step(&two, t0 + Duration::from_secs(1)) else { panic!("partial expected") };
    assert!(script.contains("10.1.0.2") && !script.contains("flush table"), "{script}");
    state.succeeded(two.clone(), false, t0 + Duration::from_secs(1));
    assert_eq!(state.wake_at(), Some(t0 + FULL_SYNC_PERIOD), "a partial sync does not postpone the full one");
    assert_eq!(state.step(&two, t0 + FULL_SYNC_PERIOD), Step::Full, "repair");
}

#[test]
fn failures_force_a_full_sync_after_a_growing_back_off() {
    let t0 = Instant::now();
    let mut state = SyncState::default();
    let one = render(&catalog(&[1]), TABLE);
    state.succeeded(one.clone(), true, t0);
    assert_eq!(state.failed(t0), (RETRY_MIN, true));
    assert_eq!(state.wake_at(), Some(t0 + RETRY_MIN));
    assert_eq!(state.step(&one, t0), Step::Full, "the kernel's table is unknown after a failure");
    assert_eq!(state.failed(t0), (RETRY_MIN * 2, false));
    for _ in 0..10 {
        state.failed(t0);
    }
    assert_eq!(state.failed(t0).0, RETRY_MAX);
    assert!(state.succeeded(one, true, t0 + RETRY_MAX), "recovered");
    assert_eq!(state.wake_at(), Some(t0 + RETRY_MAX + FULL_SYNC_PERIOD));
}

/// Records the scripts it is given; fails while `failing` is set.
#[derive(Clone, Default)]
struct FakeNetfilter {
    scripts: Arc<Mutex<Vec<String>>>,
    failing: Arc<Mutex<bool>>,
}

impl FakeNetfilter {
    fn scripts(&self) -> Vec<String> {
        self.scripts.lock().expect("lock").clone()
    }
}

impl Netfilter for FakeNetfilter {
    async fn apply(&self, script: String) -> Result<(), NftError> {
        if *self.failing.lock().expect("lock") {
            return Err(NftError::Missing("no such file".into()));
        }
        self.scripts.lock().expect("lock").push(script);
        Ok(())
    }

    async fn objects(&self, _table: &str) -> Result<KernelObjects, NftError> {
        Ok(KernelObjects::default())
    }
}

/// Lets the loop run until `fake` holds `n` scripts (time is paused: sleeping advances it).
async fn scripts_after(fake: &FakeNetfilter, n: usize, step: Duration) -> Vec<String> {
    for _ in 0..1000 {
        let scripts = fake.scripts();
        if scripts.len() >= n {
            return scripts;
        }
        tokio::time::sleep(step).await;
    }
    panic!("{n} scripts expected, got {:#?}", fake.scripts());
}

#[tokio::test(start_paused = true)]
async fn the_loop_applies_each_new_catalog_and_repairs_periodically() {
    let fake = FakeNetfilter::default();
    let registry = prometheus::Registry::new();
    let proxy = Proxy {
        netfilter: fake.clone(),
        table: TABLE.into(),
        metrics: ProxyMetrics::register(&registry).expect("metrics"),
        events: None,
    };
    let (catalogs, catalogs_rx) = watch::channel(None);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(proxy.run(catalogs_rx, stop_rx));
    let ms = Duration::from_millis(1);

    tokio::time::sleep(ms * 10).await;
    assert!(fake.scripts().is_empty(), "nothing is written before the catalog has arrived");
    catalogs.send_replace(Some(Arc::new(catalog(&[1]))));
    let scripts = scripts_after(&fake, 1, ms).await;
    assert!(scripts[0].starts_with("add table ip gantry-proxy-n1\nflush table"), "{}", scripts[0]);

    catalogs.send_replace(Some(Arc::new(catalog(&[1, 2]))));
    let scripts = scripts_after(&fake, 2, ms).await;
    assert!(scripts[1].starts_with("flush chain ip gantry-proxy-n1 svc-default/web/tcp/http\n"), "{}", scripts[1]);

    // The same content again writes nothing.
    catalogs.send_replace(Some(Arc::new(catalog(&[1, 2]))));
    tokio::time::sleep(ms * 10).await;
    assert_eq!(fake.scripts().len(), 2);

    // A failing nft is retried (as a full sync) without a new catalog.
    *fake.failing.lock().expect("lock") = true;
    catalogs.send_replace(Some(Arc::new(catalog(&[2]))));
    tokio::time::sleep(ms * 10).await;
    *fake.failing.lock().expect("lock") = false;
    let scripts = scripts_after(&fake, 3, ms * 100).await;
    assert!(scripts[2].contains("flush table") && scripts[2].contains("10.1.0.2:8080"), "{}", scripts[2]);

    // Nothing changes for a full period: the table is written whole again.
    let scripts = scripts_after(&fake, 4, Duration::from_secs(1)).await;
    assert!(scripts[3].contains("flush table"), "{}", scripts[3]);
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).expect("encode");
    assert!(text.contains("gantry_node_agent_proxy_sync_duration_seconds_count{sync=\"full\"} 3"), "{text}");
    assert!(text.contains("gantry_node_agent_proxy_sync_errors_total 1"), "{text}");

    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("task");
}
