//! Thread-safe recording of client operations for later checking.
//!
//! This module owns [`HistoryRecorder`]: clients call [`HistoryRecorder::invoke`]
//! right before sending a request and [`HistoryRecorder::complete`] (or
//! [`HistoryRecorder::indeterminate`] on error/timeout) right after the answer,
//! so each recorded interval contains the moment the system acted. Timestamps
//! come from one monotonic clock (`Instant`) relative to the recorder's start.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::linearizability::{validate_output, Input, ModelError, Operation, Outcome, Output};

/// Errors of the history recorder.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Reading or writing a history file failed.
    #[error("cannot access history file {path}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A history file line does not parse.
    #[error("history line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The recorded output does not fit the invocation.
    #[error("cannot record operation of client {client} on key {key:?}")]
    Malformed {
        /// Client of the invocation.
        client: usize,
        /// Key of the invocation.
        key: String,
        /// What is wrong.
        #[source]
        source: ModelError,
    },
}

/// An invoked, not yet completed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "complete the invocation or mark it indeterminate"]
pub struct Invocation {
    client: usize,
    key: String,
    input: Input,
    call: Duration,
}

impl Invocation {
    /// The key the operation targets.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What was asked.
    pub fn input(&self) -> &Input {
        &self.input
    }
}

/// Collects operations from many concurrent clients.
#[derive(Debug)]
pub struct HistoryRecorder {
    start: Instant,
    ops: Mutex<Vec<Operation>>,
}

impl Default for HistoryRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl HistoryRecorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Self { start: Instant::now(), ops: Mutex::new(Vec::new()) }
    }

    /// Time elapsed on the recorder's clock.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Notes the invocation time of an operation about to be sent.
    pub fn invoke(&self, client: usize, key: impl Into<String>, input: Input) -> Invocation {
        Invocation { client, key: key.into(), input, call: self.now() }
    }

    /// Records that the operation returned `output` now.
    pub fn complete(&self, inv: Invocation, output: Output) -> Result<(), HistoryError> {
        let at = self.now();
        validate_output(&inv.input, &output).map_err(|source| HistoryError::Malformed {
            client: inv.client,
            key: inv.key.clone(),
            source,
        })?;
        self.push(inv, Outcome::Returned { at, output });
        Ok(())
    }

    /// Records that the operation's fate is unknown (error or timeout).
    pub fn indeterminate(&self, inv: Invocation) {
        self.push(inv, Outcome::Indeterminate);
    }

    /// Drops an invocation that provably never reached the system (e.g. the
    /// client could not even open a connection): it had no effect.
    pub fn abandon(&self, inv: Invocation) {
        drop(inv);
    }

    fn push(&self, inv: Invocation, outcome: Outcome) {
        let op = Operation { client: inv.client, key: inv.key, input: inv.input, call: inv.call, outcome };
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).push(op);
    }

    /// Number of recorded operations.
    pub fn len(&self) -> usize {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// True if nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of everything recorded so far, in completion order.
    pub fn operations(&self) -> Vec<Operation> {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Writes `ops` to `path`, one tab-separated operation per line (see
/// [`parse_line`]), so a failing history can be kept and re-checked.
pub fn write_history(path: &Path, ops: &[Operation]) -> Result<(), HistoryError> {
    let text: String = ops.iter().map(|op| format_line(op) + "\n").collect();
    std::fs::write(path, text).map_err(|source| HistoryError::Io { path: path.to_path_buf(), source })
}

/// Reads a history written by [`write_history`].
pub fn read_history(path: &Path) -> Result<Vec<Operation>, HistoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| HistoryError::Io { path: path.to_path_buf(), source })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(l).map_err(|reason| HistoryError::Parse { line: i + 1, reason }))
        .collect()
}

fn opt(v: &Option<String>) -> String {
    v.as_ref().map_or("-".to_string(), |v| format!("={v}"))
}

fn parse_opt(s: &str) -> Result<Option<String>, String> {
    match s {
        "-" => Ok(None),
        _ => s.strip_prefix('=').map(|v| Some(v.to_string())).ok_or_else(|| format!("bad optional value {s:?}")),
    }
}

/// `client key op arg1 arg2 call_ns ret_ns|- output`, tab separated.
fn format_line(op: &Operation) -> String {
    let (kind, a, b) = match &op.input {
        Input::Put(v) => ("put", format!("={v}"), "-".to_string()),
        Input::Get => ("get", "-".to_string(), "-".to_string()),
        Input::Cas { expect, new } => ("cas", opt(expect), format!("={new}")),
        Input::Delete => ("delete", "-".to_string(), "-".to_string()),
    };
    let (ret, out) = match &op.outcome {
        Outcome::Indeterminate => ("-".to_string(), "-".to_string()),
        Outcome::Returned { at, output } => (
            at.as_nanos().to_string(),
            match output {
                Output::Ok => "ok".to_string(),
                Output::Value(v) => format!("value{}", opt(v)),
                Output::Swapped(b) => format!("swapped={b}"),
                Output::Deleted(b) => format!("deleted={b}"),
            },
        ),
    };
    format!("{}\t{}\t{kind}\t{a}\t{b}\t{}\t{ret}\t{out}", op.client, op.key, op.call.as_nanos())
}

/// Parses one line written by [`write_history`].
pub fn parse_line(line: &str) -> Result<Operation, String> {
    let f: Vec<&str> = line.split('\t').collect();
    let [client, key, kind, a, b, call, ret, out] = f[..] else {
        return Err(format!("expected 8 tab-separated fields, got {}", f.len()));
    };
    let nanos = |s: &str| s.parse::<u64>().map(Duration::from_nanos).map_err(|e| format!("bad time {s:?}: {e}"));
    let value = |s: &str| parse_opt(s)?.ok_or_else(|| format!("missing value in {line:?}"));
    let input = match kind {
        "put" => Input::Put(value(a)?),
        "get" => Input::Get,
        "cas" => Input::Cas { expect: parse_opt(a)?, new: value(b)? },
        "delete" => Input::Delete,
        other => return Err(format!("unknown operation {other:?}")),
    };
    let outcome = if ret == "-" {
        Outcome::Indeterminate
    } else {
        let output = match out {
            "ok" => Output::Ok,
            "swapped=true" => Output::Swapped(true),
            "swapped=false" => Output::Swapped(false),
            "deleted=true" => Output::Deleted(true),
            "deleted=false" => Output::Deleted(false),
            _ => Output::Value(parse_opt(out.strip_prefix("value").ok_or_else(|| format!("unknown output {out:?}"))?)?),
        };
        Outcome::Returned { at: nanos(ret)?, output }
    };
    Ok(Operation {
        client: client.parse().map_err(|e| format!("bad client {client:?}: {e}"))?,
        key: key.to_string(),
        input,
        call: nanos(call)?,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{check_history, CheckResult};
    use std::sync::Arc;

    #[test]
    fn records_intervals_in_order() {
        let rec = HistoryRecorder::new();
        let inv = rec.invoke(0, "k", Input::Put("a".into()));
        rec.complete(inv, Output::Ok).expect("valid output");
        let inv = rec.invoke(1, "k", Input::Get);
        rec.complete(inv, Output::Value(Some("a".into()))).expect("valid output");
        let inv = rec.invoke(2, "k", Input::Delete);
        rec.indeterminate(inv);
        let ops = rec.operations();
        assert_eq!(ops.len(), 3);
        let Outcome::Returned { at, .. } = &ops[0].outcome else {
            panic!("first op should have returned");
        };
        assert!(ops[0].call <= *at && *at <= ops[1].call);
        assert_eq!(ops[2].outcome, Outcome::Indeterminate);
        assert_eq!(check_history(&ops), CheckResult::Linearizable);
    }

    #[test]
    fn rejects_mismatched_output() {
        let rec = HistoryRecorder::new();
        let inv = rec.invoke(0, "k", Input::Get);
        let err = rec.complete(inv, Output::Ok).expect_err("mismatch");
        assert!(err.to_string().contains("client 0"), "{err}");
        assert!(rec.is_empty());
    }

    #[test]
    fn history_files_round_trip() {
        let rec = HistoryRecorder::new();
        let inputs = [
            (Input::Put("a b".into()), Some(Output::Ok)),
            (Input::Get, Some(Output::Value(None))),
            (Input::Get, Some(Output::Value(Some("=x".into())))),
            (Input::Cas { expect: None, new: "n".into() }, Some(Output::Swapped(true))),
            (Input::Cas { expect: Some("n".into()), new: "m".into() }, None),
            (Input::Delete, Some(Output::Deleted(false))),
        ];
        for (i, (input, output)) in inputs.into_iter().enumerate() {
            let inv = rec.invoke(i, "key/1", input);
            match output {
                Some(o) => rec.complete(inv, o).expect("valid output"),
                None => rec.indeterminate(inv),
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.txt");
        write_history(&path, &rec.operations()).expect("write");
        assert_eq!(read_history(&path).expect("read"), rec.operations());
        assert!(parse_line("1\tk\tbogus\t-\t-\t1\t-\t-").is_err());
    }

    #[test]
    fn concurrent_recording_keeps_everything() {
        let rec = Arc::new(HistoryRecorder::new());
        let handles: Vec<_> = (0..4)
            .map(|c| {
                let rec = Arc::clone(&rec);
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let inv = rec.invoke(c, format!("k{c}"), Input::Put(format!("{c}-{i}")));
                        rec.complete(inv, Output::Ok).expect("valid output");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("recording thread panicked");
        }
        assert_eq!(rec.len(), 1000);
        assert_eq!(check_history(&rec.operations()), CheckResult::Linearizable);
    }
}
