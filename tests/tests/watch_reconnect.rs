//! Exactly-once watch delivery across replica crashes.
//!
//! A writer puts many keys under a prefix, recording the header revision of
//! every acknowledged put. A watcher streams the prefix from revision 1 and,
//! whenever its stream breaks, resumes on another replica at last seen + 1. The
//! nemesis steers the watcher onto the current leader and then SIGKILLs that
//! leader (and restarts it) five times, so every kill breaks the watch stream.
//! Afterwards the watcher must have seen every acknowledged revision exactly
//! once, in strictly increasing, contiguous order.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use etcd_client::{Client, EventType, WatchOptions};
use gantry_tests::{bounded, connect, error_chain, ClientError, ProcessCluster};

const PREFIX: &str = "watch/";
const KILLS: usize = 5;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A stream silent this long while the writer is busy counts as stalled.
const STALL: Duration = Duration::from_secs(5);
const PROGRESS_OPS: u64 = 30;
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RUN: Duration = Duration::from_secs(240);
const NONE: usize = usize::MAX;

struct Shared {
    endpoints: Vec<String>,
    stop_writer: AtomicBool,
    /// Revision the watcher must reach before stopping; 0 while unknown.
    target: AtomicI64,
    acked_count: AtomicU64,
    /// (revision, key) of every acknowledged put.
    acked: Mutex<Vec<(i64, String)>>,
    /// Replica the nemesis wants the watcher on (`NONE`: any).
    want: AtomicUsize,
    /// Replica the watcher currently streams from (`NONE`: none).
    on: AtomicUsize,
}

#[derive(Debug, Default)]
struct WatchLog {
    /// (revision, key) of every event, in delivery order.
    events: Vec<(i64, String)>,
    /// Streams that failed (error, end, cancel, stall).
    breaks: usize,
    /// Streams closed on purpose to move to the nemesis's target.
    moves: usize,
    errors: Vec<String>,
}

async fn connect_ready(endpoint: &str) -> Result<Client, ClientError> {
    let mut c = connect(endpoint, CONNECT_TIMEOUT).await?;
    let status = bounded("status probe", CONNECT_TIMEOUT, c.status()).await?;
    if status.leader() == 0 {
        return Err(ClientError::Timeout { what: format!("leader at {endpoint}"), after: CONNECT_TIMEOUT });
    }
    Ok(c)
}

async fn writer(shared: Arc<Shared>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut endpoint = 0;
    let mut client: Option<Client> = None;
    let started = Instant::now();
    let mut seq = 0u64;
    while !shared.stop_writer.load(Ordering::Relaxed) && started.elapsed() < MAX_RUN {
        let Some(c) = client.as_mut() else {
            match connect_ready(&shared.endpoints[endpoint]).await {
                Ok(c) => client = Some(c),
                Err(_) => {
                    endpoint = (endpoint + 1) % shared.endpoints.len();
                    // The replica may be down: back off briefly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        seq += 1;
        let key = format!("{PREFIX}{seq:08}");
        match bounded("put", REQUEST_TIMEOUT, c.put(key.as_str(), "v", None)).await {
            Ok(resp) => {
                let rev = resp.header().map_or(0, |h| h.revision());
                shared.acked.lock().unwrap_or_else(PoisonError::into_inner).push((rev, key));
                shared.acked_count.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                errors.push(error_chain(&e));
                endpoint = (endpoint + 1) % shared.endpoints.len();
                client = None;
            }
        }
    }
    errors
}

enum StreamEnd {
    /// Reached the target revision.
    Done,
    /// Closed on purpose to move to another replica.
    Moved,
    /// Failed: error, end of stream, cancel or stall.
    Broken(String),
}

async fn watch_from(shared: &Shared, idx: usize, log: &mut WatchLog) -> StreamEnd {
    let endpoint = &shared.endpoints[idx];
    let from = log.events.last().map_or(1, |e| e.0 + 1);
    let mut client = match connect_ready(endpoint).await {
        Ok(c) => c,
        Err(e) => return StreamEnd::Broken(format!("connect {endpoint}: {}", error_chain(&e))),
    };
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let mut stream = match bounded("watch", REQUEST_TIMEOUT, client.watch(PREFIX, Some(options))).await {
        Ok(s) => s,
        Err(e) => return StreamEnd::Broken(format!("watch at {endpoint}: {}", error_chain(&e))),
    };
    let mut last_message = Instant::now();
    loop {
        let target = shared.target.load(Ordering::Relaxed);
        if target > 0 && log.events.last().is_some_and(|e| e.0 >= target) {
            return StreamEnd::Done;
        }
        let want = shared.want.load(Ordering::Relaxed);
        if want != NONE && want != idx {
            return StreamEnd::Moved;
        }
        if last_message.elapsed() > STALL {
            return StreamEnd::Broken(format!("stream at {endpoint} silent for {STALL:?}"));
        }
        let msg = match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
            Err(_) => continue,
            Ok(Err(e)) => return StreamEnd::Broken(format!("stream at {endpoint}: {e}")),
            Ok(Ok(None)) => return StreamEnd::Broken(format!("stream at {endpoint} ended")),
            Ok(Ok(Some(m))) => m,
        };
        last_message = Instant::now();
        if msg.created() {
            shared.on.store(idx, Ordering::Relaxed);
        }
        if msg.canceled() {
            return StreamEnd::Broken(format!(
                "watch at {endpoint} cancelled (compact revision {}): {}",
                msg.compact_revision(),
                msg.cancel_reason()
            ));
        }
        for ev in msg.events() {
            if ev.event_type() != EventType::Put {
                continue;
            }
            if let Some(kv) = ev.kv() {
                log.events.push((kv.mod_revision(), String::from_utf8_lossy(kv.key()).into_owned()));
            }
        }
    }
}

async fn watcher(shared: Arc<Shared>) -> WatchLog {
    let mut log = WatchLog::default();
    let mut idx = 0;
    // Replica whose stream just failed: not retried for the nemesis's sake
    // until a stream elsewhere worked.
    let mut avoid = NONE;
    let started = Instant::now();
    while started.elapsed() < MAX_RUN + Duration::from_secs(60) {
        let want = shared.want.load(Ordering::Relaxed);
        if want != NONE && want != avoid {
            idx = want;
        }
        let events_before = log.events.len();
        match watch_from(&shared, idx, &mut log).await {
            StreamEnd::Done => break,
            StreamEnd::Moved => {
                log.moves += 1;
                avoid = NONE;
            }
            StreamEnd::Broken(e) => {
                shared.on.store(NONE, Ordering::Relaxed);
                log.breaks += 1;
                log.errors.push(format!("{:?} replica {idx}: {e}", started.elapsed()));
                if log.events.len() == events_before {
                    // Nothing came through; the replica may be down: back off.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Resume on another replica.
                avoid = idx;
                idx = (idx + 1) % shared.endpoints.len();
            }
        }
    }
    log
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > STEP_TIMEOUT {
            bail!("timed out after {STEP_TIMEOUT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Current store revision via a linearizable read on any replica.
async fn current_revision(endpoints: &[String]) -> anyhow::Result<i64> {
    let start = Instant::now();
    let mut last = String::new();
    for attempt in 0.. {
        if start.elapsed() > STEP_TIMEOUT {
            break;
        }
        let endpoint = &endpoints[attempt % endpoints.len()];
        let result: Result<i64, ClientError> = async {
            let mut c = connect_ready(endpoint).await?;
            let resp = bounded("get", REQUEST_TIMEOUT, c.get(PREFIX, None)).await?;
            Ok(resp.header().map_or(0, |h| h.revision()))
        }
        .await;
        match result {
            Ok(rev) => return Ok(rev),
            Err(e) => last = error_chain(&e),
        }
    }
    bail!("cannot read the current revision: {last}")
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_resumes_exactly_once_across_leader_crashes() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start_default().await.context("cannot start the cluster")?;
    let shared = Arc::new(Shared {
        endpoints: cluster.client_endpoints(),
        stop_writer: AtomicBool::new(false),
        target: AtomicI64::new(0),
        acked_count: AtomicU64::new(0),
        acked: Mutex::new(Vec::new()),
        want: AtomicUsize::new(NONE),
        on: AtomicUsize::new(NONE),
    });
    let watcher_task = tokio::spawn(watcher(Arc::clone(&shared)));
    let writer_task = tokio::spawn(writer(Arc::clone(&shared)));

    let nemesis: anyhow::Result<()> = async {
        for round in 0..KILLS {
            let round_start = Instant::now();
            let leader = cluster.wait_for_leader(STEP_TIMEOUT).await?;
            shared.want.store(leader, Ordering::Relaxed);
            wait_until(&format!("watcher to stream from leader {leader}"), || {
                shared.on.load(Ordering::Relaxed) == leader
            })
            .await?;
            let before = shared.acked_count.load(Ordering::Relaxed);
            wait_until("writer progress before the kill", || {
                shared.acked_count.load(Ordering::Relaxed) >= before + PROGRESS_OPS
            })
            .await?;
            cluster.kill(leader)?;
            shared.want.store(NONE, Ordering::Relaxed);
            let after = shared.acked_count.load(Ordering::Relaxed);
            wait_until(&format!("writer progress after killing {leader}"), || {
                shared.acked_count.load(Ordering::Relaxed) >= after + PROGRESS_OPS
            })
            .await?;
            let recovered_at = round_start.elapsed();
            cluster.restart(leader).await.with_context(|| format!("round {round}: restart of replica {leader}"))?;
            eprintln!(
                "round {round}: leader {leader} killed, writes resumed at {recovered_at:?}, restarted at {:?}",
                round_start.elapsed()
            );
        }
        Ok(())
    }
    .await;

    shared.stop_writer.store(true, Ordering::Relaxed);
    let writer_errors = tokio::time::timeout(Duration::from_secs(30), writer_task)
        .await
        .context("writer did not stop")?
        .context("writer panicked")?;
    nemesis?;
    let target = current_revision(&shared.endpoints).await?;
    shared.target.store(target, Ordering::Relaxed);
    let log = tokio::time::timeout(Duration::from_secs(120), watcher_task)
        .await
        .context("watcher did not catch up")?
        .context("watcher panicked")?;

    let acked = shared.acked.lock().unwrap_or_else(PoisonError::into_inner).clone();
    eprintln!(
        "{} puts acked ({} writer errors), {} events watched, {} broken streams, {} moves, target revision {target}",
        acked.len(),
        writer_errors.len(),
        log.events.len(),
        log.breaks,
        log.moves
    );
    for e in log.errors.iter().take(20) {
        eprintln!("  watch break: {e}");
    }
    ensure!(acked.len() as u64 > PROGRESS_OPS * 2 * KILLS as u64, "too few acknowledged puts: {}", acked.len());
    ensure!(
        log.breaks >= KILLS,
        "the watch stream broke only {} times for {KILLS} kills of its replica: {:?}",
        log.breaks,
        log.errors
    );
    ensure!(
        log.events.last().map(|e| e.0) == Some(target),
        "watcher stopped at revision {:?}, store is at {target}",
        log.events.last()
    );
    for pair in log.events.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        ensure!(b.0 != a.0, "revision {} delivered twice ({} and {})", a.0, a.1, b.1);
        ensure!(b.0 > a.0, "revisions out of order: {} after {}", b.0, a.0);
        ensure!(b.0 == a.0 + 1, "revisions not contiguous: {} follows {} (missed events)", b.0, a.0);
    }
    let seen: BTreeMap<i64, &str> = log.events.iter().map(|(r, k)| (*r, k.as_str())).collect();
    let keys: HashSet<&str> = log.events.iter().map(|(_, k)| k.as_str()).collect();
    ensure!(keys.len() == log.events.len(), "some key's put was delivered more than once");
    for (rev, key) in &acked {
        match seen.get(rev) {
            Some(k) if k == key => {}
            Some(k) => {
                bail!("acknowledged put of {key} at revision {rev}, but the watch shows {k} there")
            }
            None => bail!("acknowledged put of {key} at revision {rev} never reached the watcher"),
        }
    }
    Ok(())
}
