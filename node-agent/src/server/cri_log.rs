//! CRI container log files as the runtime writes them, and what `kubectl logs` options select from
//! them. Pure: parsing records, joining partial records into lines, `tailLines`, `sinceSeconds`/
//! `sinceTime`, `timestamps` and `limitBytes`. The file I/O (reading, following) is in
//! [`container_logs`](super::container_logs).
//!
//! A record is `<RFC3339Nano time> <stdout|stderr> <F|P> <text>`: the runtime splits lines longer than
//! 16 KiB into `P` (partial) records closed by an `F` (full) record, and strips the newline, which
//! the reader puts back after the `F` record.

use std::collections::VecDeque;

use k8s_openapi::jiff::Timestamp;

/// Why a log record or a query parameter is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("malformed cri log record {0:?}")]
    Record(String),
    #[error("invalid value {value:?} for {param}: {why}")]
    Param { param: &'static str, value: String, why: &'static str },
}

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub time: Timestamp,
    pub stream: LogStream,
    /// A `P` record: the line continues in the next record.
    pub partial: bool,
    pub text: Vec<u8>,
}

/// Parses one record (one line of the file, without its newline).
pub fn parse_record(line: &[u8]) -> Result<LogRecord, LogError> {
    let bad = || LogError::Record(String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned());
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = fields.next().ok_or_else(bad)?;
    let stream = fields.next().ok_or_else(bad)?;
    let tag = fields.next().ok_or_else(bad)?;
    // An empty line is written as "<time> stdout F" with or without the trailing space.
    let text = fields.next().unwrap_or_default();
    let time: Timestamp = std::str::from_utf8(time).ok().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let stream = match stream {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return Err(bad()),
    };
    // Tags may carry more fields after a ':' in later CRI versions; only the first matters.
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(bad()),
    };
    Ok(LogRecord { time, stream, partial, text: text.to_vec() })
}

/// One log line as the client sees it: partial records joined, newline restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The time of its first record.
    pub time: Timestamp,
    pub stream: LogStream,
    pub content: Vec<u8>,
}

/// Joins `P` records of one stream until their `F` record. Interleaved streams are kept apart.
#[derive(Debug, Default)]
pub struct LineAssembler {
    stdout: Option<LogLine>,
    stderr: Option<LogLine>,
}

impl LineAssembler {
    /// Adds a record; returns the line it completes, if any.
    pub fn push(&mut self, record: LogRecord) -> Option<LogLine> {
        let slot = match record.stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        };
        let line =
            slot.get_or_insert_with(|| LogLine { time: record.time, stream: record.stream, content: Vec::new() });
        line.content.extend_from_slice(&record.text);
        if record.partial {
            return None;
        }
        let mut line = slot.take()?;
        line.content.push(b'\n');
        Some(line)
    }

    /// Lines still waiting for their `F` record (a container that died mid-line), oldest first,
    /// without a newline, as upstream prints them.
    pub fn flush(&mut self) -> Vec<LogLine> {
        let mut rest: Vec<LogLine> = [self.stdout.take(), self.stderr.take()].into_iter().flatten().collect();
        rest.sort_by_key(|l| l.time);
        rest
    }
}

/// The `kubectl logs` options the agent applies (`follow` and `previous` choose the file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<u64>,
    pub since: Option<Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// Parses the query string of `/containerLogs` (upstream's `PodLogOptions` names); `now` turns
    /// `sinceSeconds` into a time.
    pub fn from_query(query: &[(String, String)], now: Timestamp) -> Result<Self, LogError> {
        let get = |name: &str| query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let boolean = |param: &'static str| match get(param) {
            None | Some("") => Ok(false),
            Some(v) => parse_bool(v).ok_or(LogError::Param { param, value: v.into(), why: "not a boolean" }),
        };
        let number = |param: &'static str, min: i64| -> Result<Option<u64>, LogError> {
            match get(param) {
                None | Some("") => Ok(None),
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if n >= min => Ok(Some(n as u64)),
                    Ok(_) if min == 0 => Err(LogError::Param { param, value: v.into(), why: "must be non-negative" }),
                    Ok(_) => Err(LogError::Param { param, value: v.into(), why: "must be greater than 0" }),
                    Err(_) => Err(LogError::Param { param, value: v.into(), why: "not an integer" }),
                },
            }
        };
        let since_seconds = number("sinceSeconds", 1)?;
        let since_time = match get("sinceTime") {
            None | Some("") => None,
            Some(v) => Some(v.parse::<Timestamp>().map_err(|_| LogError::Param {
                param: "sinceTime",
                value: v.into(),
                why: "not an RFC3339 time",
            })?),
        };
        let since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(LogError::Param {
                    param: "sinceTime",
                    value: get("sinceTime").unwrap_or_default().into(),
                    why: "at most one of sinceTime or sinceSeconds may be specified",
                })
            }
            (Some(s), None) => {
                Some(now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(s as i64)).unwrap_or(Timestamp::MIN))
            }
            (None, t) => t,
        };
        Ok(Self {
            follow: boolean("follow")?,
            previous: boolean("previous")?,
            tail_lines: number("tailLines", 0)?,
            since,
            timestamps: boolean("timestamps")?,
            limit_bytes: number("limitBytes", 1)?,
        })
    }
}

/// Go's `strconv.ParseBool`, which clients rely on.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `2006-01-02T15:04:05.000000000Z`: upstream's timestamp prefix (fixed nine fraction digits, UTC).
pub fn format_timestamp(t: Timestamp) -> String {
    let whole = Timestamp::from_second(t.as_second()).unwrap_or(t);
    format!("{}.{:09}Z", whole.strftime("%Y-%m-%dT%H:%M:%S"), t.subsec_nanosecond().max(0))
}

/// Applies `since`, `timestamps` and `limitBytes` to lines as they come (`tailLines` needs the whole
/// file first: see [`Tail`]).
#[derive(Debug)]
pub struct LineFilter {
    since: Option<Timestamp>,
    timestamps: bool,
    bytes_left: Option<u64>,
}

impl LineFilter {
    pub fn new(options: &LogOptions) -> Self {
        Self { since: options.since, timestamps: options.timestamps, bytes_left: options.limit_bytes }
    }

    /// Whether `line` passes the time filter.
    pub fn wanted(&self, line: &LogLine) -> bool {
        self.since.is_none_or(|since| line.time >= since)
    }

    /// The bytes to send for `line` (empty when filtered out), cut at the byte limit.
    pub fn render(&mut self, line: &LogLine) -> Vec<u8> {
        if !self.wanted(line) || self.exhausted() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(line.content.len() + 32);
        if self.timestamps {
            out.extend_from_slice(format_timestamp(line.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&line.content);
        if let Some(left) = self.bytes_left.as_mut() {
            out.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= out.len() as u64;
        }
        out
    }

    /// The byte limit has been reached: nothing more will be sent.
    pub fn exhausted(&self) -> bool {
        self.bytes_left == Some(0)
    }
}

/// Keeps the last `n` lines that pass the time filter (all of them when `n` is `None`): `tailLines`
/// needs the whole file before anything is sent, and holds at most `n` lines meanwhile.
#[derive(Debug)]
pub struct Tail {
    keep: usize,
    lines: VecDeque<LogLine>,
}

impl Tail {
    pub fn new(n: Option<u64>) -> Self {
        Self { keep: n.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)), lines: VecDeque::new() }
    }

    pub fn push(&mut self, line: LogLine, filter: &LineFilter) {
        if self.keep == 0 || !filter.wanted(&line) {
            return;
        }
        if self.lines.len() == self.keep {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn into_lines(self) -> Vec<LogLine> {
        self.lines.into()
    }
}

/// Splits `buf` into complete records (lines ending in `\n`), leaving an unfinished last line in it.
/// Malformed records are returned as errors so the caller can log and skip them.
pub fn drain_records(buf: &mut Vec<u8>) -> Vec<Result<LogRecord, LogError>> {
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else { return Vec::new() };
    let complete: Vec<u8> = buf.drain(..=end).collect();
    complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(parse_record).collect()
}

#[cfg(test)]
#[path = "cri_log_tests.rs"]
mod tests;
