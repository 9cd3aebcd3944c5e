//! `GET /metrics` on every replica of a 3-replica cluster, scraped with the admin client certificate
//! through stock `kubectl get --raw`: exactly one replica says it leads, commit indexes are positive and
//! converge, every create through a replica counts once in its `apiserver_request_total`, and an open
//! watch shows in `apiserver_longrunning_requests` until its client goes away.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use gantry_tests::kube::{start_api_cluster, Kubectl};

const DEADLINE: Duration = Duration::from_secs(30);

/// One sample line of the text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses `name{a="x",b="y"} value` lines; comments and blank lines are skipped.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("malformed sample line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("malformed value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect("closing brace"))),
            None => (series, BTreeMap::new()),
        };
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("malformed labels {s:?}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {s:?}"),
            }
        };
        labels.insert(key.to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The sum of the samples named `name` whose labels include all of `want`; `None` if there are none.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn scrape(k: &Kubectl, url: &str) -> Vec<Sample> {
    parse(&k.ok(url, &["get", "--raw", "/metrics"]))
}

/// Scrapes `url` until `check` accepts the samples, failing with the last scrape after `DEADLINE`.
async fn scrape_until(k: &Kubectl, url: &str, what: &str, check: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let samples = scrape(k, url);
        if check(&samples) {
            return samples;
        }
        assert!(Instant::now() < deadline, "{url}: {what} did not happen; last scrape: {samples:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn write_configmap(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.json"));
    let manifest =
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"a":"1"}}}}"#);
    std::fs::write(&path, manifest).expect("write manifest");
    path.to_str().expect("utf-8 path").to_string()
}

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CREATE_CONFIGMAP: [(&str, &str); 5] =
    [("verb", "POST"), ("resource", "configmaps"), ("scope", "resource"), ("component", "apiserver"), ("code", "201")];
const WATCH_CONFIGMAPS: [(&str, &str); 3] = [("verb", "WATCH"), ("resource", "configmaps"), ("component", "apiserver")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_serves_store_and_api_metrics() {
    let (cluster, k, work) = start_api_cluster().await;
    let urls: Vec<String> = (0..cluster.size()).map(|i| cluster.api_url(i).expect("api url")).collect();

    // An unknown bearer token is refused here like on any other path.
    let empty = work.path().join("empty.kubeconfig");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").expect("empty kubeconfig");
    let refused = std::process::Command::new("/usr/bin/kubectl")
        .args(["--kubeconfig", empty.to_str().expect("utf-8"), "--insecure-skip-tls-verify", "--server", &urls[0]])
        .args(["--token", "not-a-known-token", "get", "--raw", "/metrics"])
        .output()
        .expect("kubectl");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("You must be logged in to the server"), "{stderr}");

    // Leadership: every replica knows a leader, exactly one is it, and all agree on the term.
    let deadline = Instant::now() + DEADLINE;
    let scrapes = loop {
        let scrapes: Vec<Vec<Sample>> = urls.iter().map(|u| scrape(&k, u)).collect();
        let leaders = scrapes.iter().filter(|s| sum(s, "gantry_store_is_leader", &[]) == Some(1.0)).count();
        let all_know = scrapes.iter().all(|s| sum(s, "gantry_store_has_leader", &[]) == Some(1.0));
        let terms: Vec<Option<f64>> = scrapes.iter().map(|s| sum(s, "gantry_store_term", &[])).collect();
        if leaders == 1 && all_know && terms.windows(2).all(|w| w[0] == w[1]) {
            break scrapes;
        }
        assert!(Instant::now() < deadline, "leaders {leaders}, all know one {all_know}, terms {terms:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (i, s) in scrapes.iter().enumerate() {
        for name in [
            "gantry_store_is_leader",
            "gantry_store_leader_changes_total",
            "gantry_store_last_log_index",
            "gantry_store_applied_index",
            "gantry_store_revision",
            "gantry_store_compact_revision",
            "gantry_store_snapshots_built_total",
            "gantry_store_snapshots_installed_total",
            "gantry_store_proposals_failed_total",
            "gantry_store_wal_fsync_duration_seconds_count",
            "gantry_store_proposal_duration_seconds_count",
        ] {
            assert!(sum(s, name, &[]).is_some(), "replica {i} lacks {name}");
        }
        assert!(sum(s, "gantry_store_leader_changes_total", &[]) >= Some(1.0), "replica {i} saw no leader");
        assert!(sum(s, "gantry_store_db_size_bytes", &[]) > Some(0.0), "replica {i} has an empty database");
        assert!(sum(s, "gantry_store_wal_fsync_duration_seconds_count", &[]) > Some(0.0), "replica {i} never synced");
    }

    // Commit indexes: positive everywhere, and the followers reach what the leader had committed.
    let commit = |s: &[Sample]| sum(s, "gantry_store_commit_index", &[]).unwrap_or(0.0);
    let leader_commit = scrapes.iter().map(|s| commit(s)).fold(0.0, f64::max);
    assert!(leader_commit > 0.0, "no replica committed anything");
    for url in &urls {
        scrape_until(&k, url, "catching up with the leader's commit index", |s| {
            commit(s) >= leader_commit && sum(s, "gantry_store_applied_index", &[]) >= Some(leader_commit)
        })
        .await;
    }

    // N creates through replica 0 count N times there, and nowhere else.
    let created = |s: &[Sample]| sum(s, "apiserver_request_total", &CREATE_CONFIGMAP).unwrap_or(0.0);
    let timed =
        |s: &[Sample]| sum(s, "apiserver_request_duration_seconds_count", &CREATE_CONFIGMAP[..4]).unwrap_or(0.0);
    let before: Vec<(f64, f64)> = urls.iter().map(|u| scrape(&k, u)).map(|s| (created(&s), timed(&s))).collect();
    const N: usize = 4;
    for i in 0..N {
        let file = write_configmap(work.path(), &format!("metrics-cm{i}"));
        assert_eq!(k.ok(&urls[0], &["create", "-f", &file]).trim(), format!("configmap/metrics-cm{i} created"));
    }
    let after: Vec<(f64, f64)> = urls.iter().map(|u| scrape(&k, u)).map(|s| (created(&s), timed(&s))).collect();
    assert_eq!(after[0].0 - before[0].0, N as f64, "POST 201 on replica 0: before {before:?}, after {after:?}");
    assert_eq!(after[0].1 - before[0].1, N as f64, "timed POSTs on replica 0: before {before:?}, after {after:?}");
    for i in 1..urls.len() {
        assert_eq!(after[i], before[i], "replica {i} served none of the creates");
    }
    // The creates were store writes submitted through replica 0, and they moved the commit index on.
    let replica0 = scrape(&k, &urls[0]);
    let proposals = sum(&replica0, "gantry_store_proposal_duration_seconds_count", &[]).unwrap_or(0.0);
    assert!(proposals >= N as f64, "replica 0 timed {proposals} proposals for {N} creates");
    assert!(commit(&replica0) > leader_commit, "commit index did not move past {leader_commit}");

    // An open watch through replica 1 is long-running there until its client goes away.
    let open = |s: &[Sample]| sum(s, "apiserver_longrunning_requests", &WATCH_CONFIGMAPS).unwrap_or(0.0);
    let events = |s: &[Sample]| {
        sum(s, "apiserver_watch_events_total", &[("resource", "configmaps"), ("version", "v1")]).unwrap_or(0.0)
    };
    let baseline = scrape(&k, &urls[1]);
    assert_eq!(open(&baseline), 0.0, "no watch is open yet");
    let watch = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .arg("--cache-dir")
        .arg(&k.cache_dir)
        .args(["--server", &urls[1], "get", "configmaps", "--watch", "--output-watch-events", "-o", "name"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting kubectl get --watch");
    let watch = KillOnDrop(watch);
    scrape_until(&k, &urls[1], "the watch showing as long-running", |s| {
        open(s) == 1.0 && sum(s, "apiserver_registered_watchers", &[("kind", "ConfigMap")]) == Some(1.0)
    })
    .await;
    let file = write_configmap(work.path(), "metrics-watched");
    k.ok(&urls[2], &["create", "-f", &file]);
    scrape_until(&k, &urls[1], "the watch event being sent", |s| events(s) > events(&baseline)).await;
    for url in [&urls[0], &urls[2]] {
        assert_eq!(open(&scrape(&k, url)), 0.0, "{url} serves no watch");
    }
    drop(watch);
    let done = scrape_until(&k, &urls[1], "the watch closing when its client left", |s| open(s) == 0.0).await;
    assert_eq!(
        sum(&done, "apiserver_request_total", &[WATCH_CONFIGMAPS[0], WATCH_CONFIGMAPS[1], ("code", "200")]),
        Some(1.0)
    );
}
