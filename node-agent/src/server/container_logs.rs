//! `GET /containerLogs/{namespace}/{pod}/{container}`: finds the container's CRI log file (the
//! current attempt, or the one before it with `previous`), and streams what the
//! [`cri_log`](super::cri_log) options select from it. With `follow`, the file is polled until the
//! container stops running (then the rest is drained) or the client goes away.
//!
//! The container is found over CRI by the labels the agent puts on everything it creates, so logs
//! of pods the agent adopted after a restart are found too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use gantry_cri_proto::runtime::{Container, ContainerState};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::cri_log::{drain_records, LineAssembler, LineFilter, LogLine, LogOptions, Tail};
use super::error::ServerError;
use crate::pod::spec::{log_dir, PodIdentity};
use crate::runtime::{Runtime, CONTAINER_NAME_LABEL, NODE_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL, POD_UID_LABEL};

/// How often a followed file is checked for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// How many idle polls pass between checks of whether the container still runs.
const POLLS_PER_STATE_CHECK: u32 = 5;
const READ_CHUNK: usize = 64 * 1024;

/// One attempt of the container, as listed by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: String,
    pub pod_uid: String,
    pub attempt: u32,
    pub created_at: i64,
    pub running: bool,
}

impl Attempt {
    fn of(c: &Container) -> Self {
        Self {
            id: c.id.clone(),
            pod_uid: c.labels.get(POD_UID_LABEL).cloned().unwrap_or_default(),
            attempt: c.metadata.as_ref().map_or(0, |m| m.attempt),
            created_at: c.created_at,
            running: c.state == ContainerState::ContainerRunning as i32,
        }
    }
}

/// Picks the attempt to read: the newest pod (by uid, should an old pod of the same name still be
/// torn down), then its newest attempt, or the one before it for `previous`.
pub fn choose(attempts: &[Attempt], pod: &str, container: &str, previous: bool) -> Result<Attempt, ServerError> {
    let newest_uid = attempts.iter().max_by_key(|a| a.created_at).map(|a| a.pod_uid.clone());
    let mut of_pod: Vec<&Attempt> = attempts.iter().filter(|a| Some(&a.pod_uid) == newest_uid.as_ref()).collect();
    of_pod.sort_by_key(|a| std::cmp::Reverse((a.attempt, a.created_at)));
    let index = usize::from(previous);
    match of_pod.get(index) {
        Some(a) => Ok((*a).clone()),
        None if previous && !of_pod.is_empty() => Err(ServerError::BadRequest(format!(
            "previous terminated container \"{container}\" in pod \"{pod}\" not found"
        ))),
        None => Err(ServerError::NotFound(format!("container \"{container}\" in pod \"{pod}\" not found"))),
    }
}

/// Where the logs of one request come from.
#[derive(Debug, Clone)]
pub struct LogSource {
    pub path: PathBuf,
    pub attempt: Attempt,
}

/// Finds the log file of `container` of pod `namespace/pod` on this node.
pub async fn locate(
    runtime: &Runtime,
    node: &str,
    root: &std::path::Path,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<LogSource, ServerError> {
    let pod_labels = HashMap::from([
        (NODE_LABEL.to_string(), node.to_string()),
        (POD_NAMESPACE_LABEL.to_string(), namespace.to_string()),
        (POD_NAME_LABEL.to_string(), pod.to_string()),
    ]);
    let mut labels = pod_labels.clone();
    labels.insert(CONTAINER_NAME_LABEL.to_string(), container.to_string());
    let attempts: Vec<Attempt> = runtime.containers(labels).await?.iter().map(Attempt::of).collect();
    if attempts.is_empty() && runtime.sandboxes(pod_labels).await?.is_empty() {
        return Err(ServerError::NotFound(format!(
            "pod \"{pod}\" in namespace \"{namespace}\" not found on this node"
        )));
    }
    let attempt = choose(&attempts, pod, container, previous)?;
    let id = PodIdentity { name: pod.to_string(), namespace: namespace.to_string(), uid: attempt.pod_uid.clone() };
    let path = log_dir(root, &id).join(container).join(format!("{}.log", attempt.attempt));
    Ok(LogSource { path, attempt })
}

/// Sends the selected log lines of `source` to `tx` until done (or until the receiver is dropped:
/// the client went away).
pub async fn stream(runtime: Runtime, source: LogSource, options: LogOptions, tx: mpsc::Sender<Bytes>) {
    let mut reader = LogReader::new(&options);
    let mut file = match tokio::fs::File::open(&source.path).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return warn!(path = %source.path.display(), error = %e, "opening container log"),
    };
    // What the file holds now: with tailLines only the last lines are sent, once it is all read.
    let mut tail = options.tail_lines.map(|n| Tail::new(Some(n)));
    if let Some(f) = file.as_mut() {
        loop {
            let lines = match read_more(f, &mut reader).await {
                Ok(Some(lines)) => lines,
                Ok(None) => break,
                Err(e) => return warn!(path = %source.path.display(), error = %e, "reading container log"),
            };
            match tail.as_mut() {
                Some(t) => lines.into_iter().for_each(|l| t.push(l, &reader.filter)),
                None => {
                    if !reader.send(&tx, lines).await {
                        return;
                    }
                }
            }
        }
    }
    if let Some(t) = tail {
        if !reader.send(&tx, t.into_lines()).await {
            return;
        }
    }
    if options.follow && source.attempt.running {
        follow(&runtime, &source, &mut file, &mut reader, &tx).await;
    }
    let rest = reader.finish();
    reader.send(&tx, rest).await;
}

/// Polls the file for new records while the container runs and the client listens.
async fn follow(
    runtime: &Runtime,
    source: &LogSource,
    file: &mut Option<tokio::fs::File>,
    reader: &mut LogReader,
    tx: &mpsc::Sender<Bytes>,
) {
    let mut idle_polls = 0u32;
    let mut running = true;
    loop {
        if file.is_none() {
            *file = tokio::fs::File::open(&source.path).await.ok();
        }
        let got = match file.as_mut() {
            Some(f) => match read_more(f, reader).await {
                Ok(got) => got,
                Err(e) => return warn!(path = %source.path.display(), error = %e, "following container log"),
            },
            None => None,
        };
        match got {
            Some(lines) => {
                idle_polls = 0;
                if !reader.send(tx, lines).await {
                    return;
                }
            }
            // The container had stopped before this read found nothing more: all of it was sent.
            None if !running => return,
            None => {
                idle_polls += 1;
                if idle_polls.is_multiple_of(POLLS_PER_STATE_CHECK) {
                    running = match runtime.container_status(&source.attempt.id).await {
                        Ok(Some(s)) => s.state == ContainerState::ContainerRunning as i32,
                        Ok(None) => false,
                        Err(e) => {
                            debug!(error = %e, "container status while following logs");
                            false
                        }
                    };
                    if !running {
                        continue;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = tx.closed() => return,
                }
            }
        }
    }
}

/// Reads what the file has beyond the current position; `None` at its end.
async fn read_more(file: &mut tokio::fs::File, reader: &mut LogReader) -> std::io::Result<Option<Vec<LogLine>>> {
    let mut chunk = vec![0u8; READ_CHUNK];
    let n = file.read(&mut chunk).await?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(reader.feed(&chunk[..n])))
}

/// Bytes of the file turned into filtered, rendered lines.
struct LogReader {
    buf: Vec<u8>,
    assembler: LineAssembler,
    filter: LineFilter,
}

impl LogReader {
    fn new(options: &LogOptions) -> Self {
        Self { buf: Vec::new(), assembler: LineAssembler::default(), filter: LineFilter::new(options) }
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<LogLine> {
        self.buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        for record in drain_records(&mut self.buf) {
            match record {
                Ok(r) => lines.extend(self.assembler.push(r)),
                Err(e) => debug!(error = %e, "skipping a log record"),
            }
        }
        lines
    }

    /// The unterminated rest: a last record without its newline, and partial lines.
    fn finish(&mut self) -> Vec<LogLine> {
        if !self.buf.is_empty() {
            self.buf.push(b'\n');
            let mut lines = self.feed(&[]);
            lines.extend(self.assembler.flush());
            return lines;
        }
        self.assembler.flush()
    }

    /// Renders and sends `lines`; false when the client is gone or the byte limit is reached.
    async fn send(&mut self, tx: &mpsc::Sender<Bytes>, lines: Vec<LogLine>) -> bool {
        let mut out = Vec::new();
        for line in &lines {
            out.extend(self.filter.render(line));
        }
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return false;
        }
        !self.filter.exhausted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(uid: &str, n: u32, created_at: i64) -> Attempt {
        Attempt { id: format!("{uid}-{n}"), pod_uid: uid.into(), attempt: n, created_at, running: false }
    }

    #[test]
    fn the_newest_attempt_of_the_newest_pod_is_read() {
        let all = [attempt("old", 5, 10), attempt("u", 0, 20), attempt("u", 1, 30)];
        assert_eq!(choose(&all, "p", "c", false).expect("current").id, "u-1");
        assert_eq!(choose(&all, "p", "c", true).expect("previous").id, "u-0");
    }

    #[test]
    fn missing_containers_and_previous_attempts_are_errors_like_upstream() {
        let err = choose(&[attempt("u", 0, 1)], "web", "app", true).expect_err("no previous");
        assert_eq!(err.code(), 400);
        assert_eq!(err.to_string(), "previous terminated container \"app\" in pod \"web\" not found");
        let err = choose(&[], "web", "app", false).expect_err("nothing");
        assert_eq!(err.code(), 404);
    }

    #[tokio::test]
    async fn the_reader_turns_chunks_into_filtered_lines() {
        let options = LogOptions { timestamps: false, ..Default::default() };
        let mut reader = LogReader::new(&options);
        assert!(!reader.feed(b"2024-05-01T10:00:00Z stdout F one\n2024-05-01T10:00:01Z stdout P tw").is_empty());
        assert!(reader.feed(b"o-\n").is_empty(), "a partial record waits for its F record");
        let lines = reader.feed(b"2024-05-01T10:00:02Z stdout F part\n2024-05-01T10:00:03Z stdout F unterminated");
        assert_eq!(lines[0].content, b"two-part\n");
        let rest = reader.finish();
        assert_eq!(rest[0].content, b"unterminated\n");
        let (tx, mut rx) = mpsc::channel(4);
        assert!(reader.send(&tx, rest).await);
        assert_eq!(rx.recv().await.expect("sent"), Bytes::from_static(b"unterminated\n"));
    }
}
