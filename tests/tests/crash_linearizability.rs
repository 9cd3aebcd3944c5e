//! Linearizability of the replicated store while its leader is SIGKILLed over and over.
//!
//! Eight clients run puts, compare-and-swaps and linearizable gets on five keys,
//! each client talking to one replica at a time and moving to another one when a
//! request fails. Meanwhile the current leader is SIGKILLed and restarted 20
//! times, with progress required between kills. Afterwards the recorded history
//! must be linearizable, every acknowledged write must be in the key's watch
//! history, and no client may see the response revision go backwards.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use etcd_client::{Client, Compare, CompareOp, GetOptions, TxnOp, TxnOpResponse};
use gantry_tests::history::write_history;
use gantry_tests::{
    bounded, check_history, collect_events, connect, CheckResult, ClientError, HistoryRecorder, Input, Invocation,
    Operation, Outcome, Output, ProcessCluster,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 8;
const KEYS: usize = 5;
const KILLS: usize = 20;
const PREFIX: &str = "lin/";
const SENTINEL: &str = "lin/~end";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Acknowledged operations required before each kill and after each kill.
const PROGRESS_OPS: u64 = 20;
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Hard stop for the client loops, whatever the nemesis does.
const MAX_LOAD: Duration = Duration::from_secs(240);

struct Shared {
    endpoints: Vec<String>,
    /// Self-test knob (`GANTRY_CRASH_SERIALIZABLE_GETS=1`): member-local reads
    /// may be stale, so the test is then expected to find violations.
    serializable_gets: bool,
    recorder: HistoryRecorder,
    stop: AtomicBool,
    acked: AtomicU64,
}

#[derive(Default)]
struct ClientReport {
    /// Values of puts and successful CASes the store acknowledged, per key.
    acked: Vec<(String, String)>,
    /// Values of every put/CAS sent, acknowledged or not, per key.
    attempted: Vec<(String, String)>,
    /// Successful CASes: (key, expected, new).
    swaps: Vec<(String, Option<String>, String)>,
    revision_regressions: Vec<String>,
    ops: u64,
    errors: u64,
    error_kinds: HashMap<String, u64>,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Tracks the response-header revisions one client sees.
struct RevisionWatch {
    client: usize,
    last: i64,
}

impl RevisionWatch {
    fn observe(&mut self, header: Option<&etcd_client::ResponseHeader>, what: &str, report: &mut ClientReport) {
        let Some(rev) = header.map(|h| h.revision()) else {
            report.revision_regressions.push(format!("client {}: {what} answered without a header", self.client));
            return;
        };
        if rev < self.last {
            report
                .revision_regressions
                .push(format!("client {}: revision went back from {} to {rev} on {what}", self.client, self.last));
        }
        self.last = self.last.max(rev);
    }
}

/// Connects to `endpoint` and checks (unrecorded) that the replica is up and
/// knows a leader, so recorded requests go to replicas that can serve them.
async fn connect_ready(endpoint: &str) -> Result<Client, ClientError> {
    let mut c = connect(endpoint, CONNECT_TIMEOUT).await?;
    let status = bounded("status probe", CONNECT_TIMEOUT, c.status()).await?;
    if status.leader() == 0 {
        return Err(ClientError::Timeout { what: format!("leader at {endpoint}"), after: CONNECT_TIMEOUT });
    }
    Ok(c)
}

/// True if the request provably never left this process: the client itself
/// failed to open a TCP connection (a status built by the client carries its
/// transport error as source; a status sent by a server has none).
fn never_sent(e: &ClientError) -> bool {
    let refused = |err: &(dyn std::error::Error + 'static)| {
        let mut cur = Some(err);
        while let Some(c) = cur {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return true;
                }
            }
            cur = c.source();
        }
        false
    };
    match e {
        ClientError::Etcd { source: etcd_client::Error::GRpcStatus(status), .. } => {
            std::error::Error::source(status).is_some_and(refused)
        }
        ClientError::Etcd { source: etcd_client::Error::TransportError(t), .. } => refused(t),
        _ => false,
    }
}

/// Records a failed request: dropped if it provably never reached a replica,
/// indeterminate otherwise.
fn settle_failed(rec: &HistoryRecorder, inv: Invocation, e: &ClientError, report: &mut ClientReport) {
    let class = if never_sent(e) {
        rec.abandon(inv);
        "never sent"
    } else {
        rec.indeterminate(inv);
        "indeterminate"
    };
    let mut msg = gantry_tests::error_chain(e);
    msg.truncate(120);
    *report.error_kinds.entry(format!("{class}: {msg}")).or_default() += 1;
}

async fn client_loop(id: usize, shared: Arc<Shared>, seed: u64) -> ClientReport {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = ClientReport::default();
    let mut revisions = RevisionWatch { client: id, last: 0 };
    let mut endpoint = id % shared.endpoints.len();
    let mut client: Option<Client> = None;
    let mut last_seen: HashMap<String, Option<String>> = HashMap::new();
    let started = Instant::now();
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) && started.elapsed() < MAX_LOAD {
        let Some(c) = client.as_mut() else {
            match connect_ready(&shared.endpoints[endpoint]).await {
                Ok(c) => client = Some(c),
                Err(_) => {
                    endpoint = (endpoint + 1) % shared.endpoints.len();
                    // Back off briefly; the replica may be down.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        let key = format!("{PREFIX}k{}", rng.random_range(0..KEYS));
        seq += 1;
        let value = format!("c{id}-{seq}");
        let rec = &shared.recorder;
        report.ops += 1;
        let ok = match rng.random_range(0..100) {
            0..35 => {
                let inv = rec.invoke(id, key.clone(), Input::Get);
                let options = shared.serializable_gets.then(|| GetOptions::new().with_serializable());
                match bounded("get", REQUEST_TIMEOUT, c.get(key.as_str(), options)).await {
                    Ok(resp) => {
                        let read = resp.kvs().first().map(|kv| text(kv.value()));
                        revisions.observe(resp.header(), "get", &mut report);
                        last_seen.insert(key, read.clone());
                        rec.complete(inv, Output::Value(read)).is_ok()
                    }
                    Err(e) => {
                        settle_failed(rec, inv, &e, &mut report);
                        false
                    }
                }
            }
            35..65 => {
                report.attempted.push((key.clone(), value.clone()));
                let inv = rec.invoke(id, key.clone(), Input::Put(value.clone()));
                match bounded("put", REQUEST_TIMEOUT, c.put(key.as_str(), value.as_str(), None)).await {
                    Ok(resp) => {
                        revisions.observe(resp.header(), "put", &mut report);
                        report.acked.push((key.clone(), value.clone()));
                        last_seen.insert(key, Some(value));
                        rec.complete(inv, Output::Ok).is_ok()
                    }
                    Err(e) => {
                        settle_failed(rec, inv, &e, &mut report);
                        false
                    }
                }
            }
            65..95 => {
                let expect = last_seen.get(&key).cloned().flatten();
                report.attempted.push((key.clone(), value.clone()));
                let compare = match &expect {
                    Some(v) => Compare::value(key.as_str(), CompareOp::Equal, v.as_str()),
                    None => Compare::version(key.as_str(), CompareOp::Equal, 0),
                };
                let txn = etcd_client::Txn::new()
                    .when([compare])
                    .and_then([TxnOp::put(key.as_str(), value.as_str(), None)])
                    .or_else([TxnOp::get(key.as_str(), None)]);
                let inv = rec.invoke(id, key.clone(), Input::Cas { expect: expect.clone(), new: value.clone() });
                match bounded("cas", REQUEST_TIMEOUT, c.txn(txn)).await {
                    Ok(resp) => {
                        revisions.observe(resp.header(), "cas", &mut report);
                        if resp.succeeded() {
                            report.acked.push((key.clone(), value.clone()));
                            report.swaps.push((key.clone(), expect, value.clone()));
                            last_seen.insert(key, Some(value));
                        } else if let Some(TxnOpResponse::Get(get)) = resp.op_responses().first() {
                            // Not part of the checked history: only steers the next CAS.
                            last_seen.insert(key, get.kvs().first().map(|kv| text(kv.value())));
                        }
                        rec.complete(inv, Output::Swapped(resp.succeeded())).is_ok()
                    }
                    Err(e) => {
                        settle_failed(rec, inv, &e, &mut report);
                        false
                    }
                }
            }
            _ => {
                let inv = rec.invoke(id, key.clone(), Input::Delete);
                match bounded("delete", REQUEST_TIMEOUT, c.delete(key.as_str(), None)).await {
                    Ok(resp) => {
                        revisions.observe(resp.header(), "delete", &mut report);
                        last_seen.insert(key, None);
                        rec.complete(inv, Output::Deleted(resp.deleted() > 0)).is_ok()
                    }
                    Err(e) => {
                        settle_failed(rec, inv, &e, &mut report);
                        false
                    }
                }
            }
        };
        if ok {
            shared.acked.fetch_add(1, Ordering::Relaxed);
            // Now and then move to another replica to exercise forwarding.
            if rng.random_bool(0.01) {
                endpoint = rng.random_range(0..shared.endpoints.len());
                client = None;
            }
        } else {
            report.errors += 1;
            endpoint = (endpoint + 1) % shared.endpoints.len();
            client = None;
            // Back off like a real client instead of hammering a cluster that
            // is electing a leader.
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    report
}

async fn wait_progress(shared: &Shared, target: u64, what: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    while shared.acked.load(Ordering::Relaxed) < target {
        if start.elapsed() > PROGRESS_TIMEOUT {
            bail!(
                "no progress {what}: {} acknowledged operations, wanted {target} within {PROGRESS_TIMEOUT:?}",
                shared.acked.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Puts the sentinel key through any replica and returns its revision.
async fn put_sentinel(endpoints: &[String]) -> anyhow::Result<i64> {
    let start = Instant::now();
    let mut last_error = String::new();
    for attempt in 0.. {
        if start.elapsed() > Duration::from_secs(60) {
            break;
        }
        let endpoint = &endpoints[attempt % endpoints.len()];
        let result: Result<i64, ClientError> = async {
            let mut c = connect(endpoint, CONNECT_TIMEOUT).await?;
            let resp = bounded("sentinel put", REQUEST_TIMEOUT, c.put(SENTINEL, "end", None)).await?;
            Ok(resp.header().map_or(0, |h| h.revision()))
        }
        .await;
        match result {
            Ok(rev) if rev > 0 => return Ok(rev),
            Ok(_) => last_error = "put answered without a header revision".into(),
            Err(e) => last_error = gantry_tests::error_chain(&e),
        }
    }
    bail!("cannot write the sentinel key after 60s: {last_error}")
}

#[tokio::test(flavor = "multi_thread")]
async fn linearizable_under_repeated_leader_crashes() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start_default().await.context("cannot start the cluster")?;
    let shared = Arc::new(Shared {
        endpoints: cluster.client_endpoints(),
        serializable_gets: std::env::var_os("GANTRY_CRASH_SERIALIZABLE_GETS").is_some(),
        recorder: HistoryRecorder::new(),
        stop: AtomicBool::new(false),
        acked: AtomicU64::new(0),
    });
    let seed: u64 = std::env::var("GANTRY_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("backend {}, seed {seed}", cluster.backend());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client_loop(id, Arc::clone(&shared), seed.wrapping_add(id as u64))))
        .collect();

    let nemesis: anyhow::Result<()> = async {
        for round in 0..KILLS {
            let before = shared.acked.load(Ordering::Relaxed);
            wait_progress(&shared, before + PROGRESS_OPS, &format!("before kill {round}")).await?;
            let leader =
                cluster.wait_for_leader(LEADER_TIMEOUT).await.with_context(|| format!("round {round}: no leader"))?;
            cluster.kill(leader)?;
            let after_kill = shared.acked.load(Ordering::Relaxed);
            wait_progress(
                &shared,
                after_kill + PROGRESS_OPS,
                &format!("after killing leader {leader} in round {round}"),
            )
            .await?;
            cluster.restart(leader).await.with_context(|| format!("round {round}: restart of replica {leader}"))?;
            eprintln!(
                "round {round}: killed and restarted leader {leader}; {} ops acked",
                shared.acked.load(Ordering::Relaxed)
            );
        }
        Ok(())
    }
    .await;

    shared.stop.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for (id, handle) in clients.into_iter().enumerate() {
        let report = tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .with_context(|| format!("client {id} did not stop"))?
            .with_context(|| format!("client {id} panicked"))?;
        reports.push(report);
    }
    nemesis?;

    let ops = shared.recorder.operations();
    let indeterminate = ops.iter().filter(|o| o.outcome == Outcome::Indeterminate).count();
    eprintln!(
        "{} operations recorded ({} indeterminate, {} client errors)",
        ops.len(),
        indeterminate,
        reports.iter().map(|r| r.errors).sum::<u64>()
    );
    let mut kinds: HashMap<&str, u64> = HashMap::new();
    for (k, n) in reports.iter().flat_map(|r| &r.error_kinds) {
        *kinds.entry(k.as_str()).or_default() += n;
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    for (k, n) in kinds.iter().take(10) {
        eprintln!("  {n:5} x {k}");
    }
    ensure!(
        reports.iter().map(|r| r.ops).sum::<u64>() > 0 && ops.len() > 200,
        "too few operations to mean anything: {}",
        ops.len()
    );

    // Every check runs; all failures are reported together.
    let mut failures: Vec<String> = Vec::new();

    // (2) Per-client revisions never go backwards.
    let regressions: Vec<&String> = reports.iter().flat_map(|r| &r.revision_regressions).collect();
    if !regressions.is_empty() {
        failures.push(format!("response revisions went backwards: {regressions:#?}"));
    }

    // (1) Every acknowledged write is in the key's history, as read by a watch
    // from revision 1 once the cluster is stable.
    cluster.wait_for_leader(LEADER_TIMEOUT).await?;
    let end = put_sentinel(&shared.endpoints).await?;
    let events = collect_events(&shared.endpoints, PREFIX, 1, end, Duration::from_secs(5), Duration::from_secs(60))
        .await
        .context("cannot read the key histories back with a watch")?;
    let mut written: HashMap<&str, Vec<&gantry_tests::WatchedEvent>> = HashMap::new();
    for ev in &events {
        written.entry(ev.key.as_str()).or_default().push(ev);
    }
    let attempted: HashSet<(&str, &str)> =
        reports.iter().flat_map(|r| &r.attempted).map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let watched: HashSet<(&str, &str)> = events
        .iter()
        .filter(|e| !e.is_delete && e.key != SENTINEL)
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let lost: Vec<_> =
        reports.iter().flat_map(|r| &r.acked).filter(|(k, v)| !watched.contains(&(k.as_str(), v.as_str()))).collect();
    if !lost.is_empty() {
        failures.push(format!("{} acknowledged writes missing from the store's history: {lost:?}", lost.len()));
    }
    let phantom: Vec<_> = watched.iter().filter(|kv| !attempted.contains(*kv)).collect();
    if !phantom.is_empty() {
        failures.push(format!("store history holds values no client wrote: {phantom:?}"));
    }
    // A successful CAS must have replaced exactly the value it compared against.
    let mut before_write: HashMap<(&str, &str), Option<&str>> = HashMap::new();
    for (key, evs) in &written {
        let mut current: Option<&str> = None;
        for ev in evs {
            if ev.is_delete {
                current = None;
            } else {
                before_write.insert((key, ev.value.as_str()), current);
                current = Some(ev.value.as_str());
            }
        }
    }
    for (key, expect, new) in reports.iter().flat_map(|r| &r.swaps) {
        let prior = before_write.get(&(key.as_str(), new.as_str())).copied().flatten();
        if prior != expect.as_deref() {
            failures.push(format!(
                "cas on {key} to {new:?} expected {expect:?} but the store's history has it replacing {prior:?}"
            ));
        }
    }

    // (3) The history is linearizable, key by key. The watch from revision 1
    // is the complete record of writes, so an indeterminate write whose value
    // never appears there did not take effect and is dropped (it could only
    // have been linearized "never"). That relies on the watch being complete:
    // every value a client observed must be in it.
    let mut observed: Vec<(&str, &str, &str)> = Vec::new();
    for op in &ops {
        match (&op.input, &op.outcome) {
            (Input::Get, Outcome::Returned { output: Output::Value(Some(v)), .. }) => {
                observed.push((op.key.as_str(), v.as_str(), "read"));
            }
            (Input::Cas { expect: Some(v), .. }, Outcome::Returned { output: Output::Swapped(true), .. }) => {
                observed.push((op.key.as_str(), v.as_str(), "compared"))
            }
            _ => {}
        }
    }
    let unrecorded: Vec<_> = observed.iter().filter(|(k, v, _)| !watched.contains(&(*k, *v))).collect();
    if !unrecorded.is_empty() {
        failures.push(format!("values observed by clients are missing from the watch history: {unrecorded:?}"));
    }
    let took_effect = |op: &Operation| match &op.input {
        Input::Put(v) | Input::Cas { new: v, .. } => watched.contains(&(op.key.as_str(), v.as_str())),
        Input::Get | Input::Delete => true,
    };
    let checked: Vec<Operation> =
        ops.iter().filter(|op| op.outcome != Outcome::Indeterminate || took_effect(op)).cloned().collect();
    eprintln!("{} indeterminate writes never took effect and are left out of the check", ops.len() - checked.len());
    let started = Instant::now();
    let verdict = check_history(&checked);
    eprintln!("linearizability check took {:?}: {verdict}", started.elapsed());
    match &verdict {
        CheckResult::Linearizable => {}
        CheckResult::Unknown { .. } => failures.push(format!(
            "linearizability checker gave up ({verdict}); the history is too large or concurrent to decide — shorten the load"
        )),
        other => failures.push(other.to_string()),
    }
    if !failures.is_empty() || std::env::var_os("GANTRY_KEEP_HISTORY").is_some() {
        let path = std::env::temp_dir().join(format!("gantry-crash-history-{seed}.txt"));
        match write_history(&path, &ops) {
            Ok(()) => eprintln!("history kept in {}", path.display()),
            Err(e) => eprintln!("cannot keep the history: {e}"),
        }
    }
    ensure!(failures.is_empty(), "{} check(s) failed (seed {seed}):\n{}", failures.len(), failures.join("\n"));
    Ok(())
}
