//! Linearizability checking for single-key register histories.
//!
//! This module owns the register model (`Input`, `Output`, `Operation`) and a
//! Wing–Gong–Lowe search in the style of porcupine: the history of every key is
//! checked separately (a register store is linearizable iff each key's history is,
//! P-compositionality), call and return events sit in a doubly linked list, the
//! search linearizes a pending call whenever the model accepts it, backtracks on a
//! return that cannot be explained, and prunes with a memo cache of
//! `(set of linearized operations, register state)`.
//!
//! Indeterminate operations (the client saw an error or a timeout) may have taken
//! effect at any point after their invocation, or never: they get a return time
//! of +infinity and an unconstrained output. Indeterminate reads observe nothing
//! and are dropped.
//!
//! The work per key is bounded by [`CheckerConfig::max_steps_per_key`]; a search
//! that runs out of budget reports [`CheckResult::Unknown`], never a pass.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

/// A register value.
pub type Value = String;

/// What a client asked the register to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    /// Unconditional write.
    Put(Value),
    /// Linearizable read.
    Get,
    /// Compare-and-swap: write `new` iff the current value equals `expect`
    /// (`None` means "the key is absent").
    Cas {
        /// Expected current value; `None` = key absent.
        expect: Option<Value>,
        /// Value written on success.
        new: Value,
    },
    /// Delete the key.
    Delete,
}

/// What the register answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// Answer to [`Input::Put`].
    Ok,
    /// Answer to [`Input::Get`]: the value read, `None` if absent.
    Value(Option<Value>),
    /// Answer to [`Input::Cas`]: whether the swap happened.
    Swapped(bool),
    /// Answer to [`Input::Delete`]: whether a value existed (and was deleted).
    Deleted(bool),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The client received `output` at time `at`.
    Returned {
        /// Return time, on the same clock as the invocation time.
        at: Duration,
        /// The register's answer.
        output: Output,
    },
    /// The client saw an error or timeout: the operation may or may not have
    /// taken effect, at any time after its invocation.
    Indeterminate,
}

/// One client operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Client (process) that issued the operation.
    pub client: usize,
    /// Key the operation targets.
    pub key: String,
    /// What was asked.
    pub input: Input,
    /// Invocation time.
    pub call: Duration,
    /// Return time and answer, or indeterminate.
    pub outcome: Outcome,
}

/// A malformed operation (a bug in the test, not in the system under test).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The output kind does not fit the input kind.
    #[error("output {output:?} does not answer input {input:?}")]
    OutputMismatch {
        /// The operation's input.
        input: Input,
        /// The mismatching output.
        output: Output,
    },
    /// The operation returned before it was invoked.
    #[error("operation returns at {ret:?}, before its invocation at {call:?}")]
    ReturnBeforeCall {
        /// Invocation time.
        call: Duration,
        /// Return time.
        ret: Duration,
    },
}

impl Operation {
    /// Checks that the output fits the input and that times are ordered.
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Outcome::Returned { at, output } = &self.outcome {
            if *at < self.call {
                return Err(ModelError::ReturnBeforeCall { call: self.call, ret: *at });
            }
            validate_output(&self.input, output)?;
        }
        Ok(())
    }

    fn output(&self) -> Option<&Output> {
        match &self.outcome {
            Outcome::Returned { output, .. } => Some(output),
            Outcome::Indeterminate => None,
        }
    }
}

/// Checks that `output` is a possible kind of answer to `input`.
pub fn validate_output(input: &Input, output: &Output) -> Result<(), ModelError> {
    let fits = matches!(
        (input, output),
        (Input::Put(_), Output::Ok)
            | (Input::Get, Output::Value(_))
            | (Input::Cas { .. }, Output::Swapped(_))
            | (Input::Delete, Output::Deleted(_))
    );
    if fits {
        Ok(())
    } else {
        Err(ModelError::OutputMismatch { input: input.clone(), output: output.clone() })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} ", self.client)?;
        match &self.input {
            Input::Put(v) => write!(f, "put({v:?})")?,
            Input::Get => write!(f, "get()")?,
            Input::Cas { expect, new } => write!(f, "cas({expect:?} -> {new:?})")?,
            Input::Delete => write!(f, "delete()")?,
        }
        match &self.outcome {
            Outcome::Returned { at, output } => {
                let shown = match output {
                    Output::Ok => "ok".to_string(),
                    Output::Value(v) => format!("{v:?}"),
                    Output::Swapped(b) => format!("swapped={b}"),
                    Output::Deleted(b) => format!("deleted={b}"),
                };
                write!(f, " -> {shown} [{:?} .. {:?}]", self.call, at)
            }
            Outcome::Indeterminate => write!(f, " -> indeterminate [{:?} .. inf]", self.call),
        }
    }
}

/// Applies `input` to `state`; returns the new state if the model can produce
/// `output` (`None` = unconstrained) from `state`.
fn step(state: &Option<Value>, input: &Input, output: Option<&Output>) -> Option<Option<Value>> {
    match input {
        Input::Put(v) => match output {
            None | Some(Output::Ok) => Some(Some(v.clone())),
            Some(_) => None,
        },
        Input::Get => match output {
            None => Some(state.clone()),
            Some(Output::Value(read)) if read == state => Some(state.clone()),
            Some(_) => None,
        },
        Input::Cas { expect, new } => {
            let matches = state == expect;
            let next = if matches { Some(new.clone()) } else { state.clone() };
            match output {
                None => Some(next),
                Some(Output::Swapped(b)) if *b == matches => Some(next),
                Some(_) => None,
            }
        }
        Input::Delete => match output {
            None => Some(None),
            Some(Output::Deleted(b)) if *b == state.is_some() => Some(None),
            Some(_) => None,
        },
    }
}

/// Limits for the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerConfig {
    /// Maximum number of search steps for one key before giving up with
    /// [`CheckResult::Unknown`].
    pub max_steps_per_key: u64,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        Self { max_steps_per_key: 20_000_000 }
    }
}

/// Verdict of [`check_history`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's history is linearizable.
    Linearizable,
    /// The history of `key` has no linearization.
    NotLinearizable {
        /// The offending key.
        key: String,
        /// Human-readable account of where the search got stuck.
        explanation: String,
    },
    /// The search ran out of budget on some key (and found no violation
    /// elsewhere): no verdict.
    Unknown {
        /// The key whose search was cut off.
        key: String,
        /// Steps spent on it.
        steps: u64,
    },
    /// An operation is malformed (test bug).
    Invalid {
        /// Key of the malformed operation.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl CheckResult {
    /// True only for [`CheckResult::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Linearizable => write!(f, "linearizable"),
            CheckResult::NotLinearizable { key, explanation } => {
                write!(f, "not linearizable on key {key:?}: {explanation}")
            }
            CheckResult::Unknown { key, steps } => write!(
                f,
                "unknown: search on key {key:?} gave up after {steps} steps (history too large or too concurrent)"
            ),
            CheckResult::Invalid { key, reason } => {
                write!(f, "invalid history on key {key:?}: {reason}")
            }
        }
    }
}

/// Checks a multi-key register history with the default budget.
pub fn check_history(ops: &[Operation]) -> CheckResult {
    check_history_with(ops, &CheckerConfig::default())
}

/// Checks a multi-key register history, each key separately.
///
/// A violation on any key wins over budget exhaustion on another.
pub fn check_history_with(ops: &[Operation], config: &CheckerConfig) -> CheckResult {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        if let Err(e) = op.validate() {
            return CheckResult::Invalid { key: op.key.clone(), reason: format!("{op}: {e}") };
        }
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut unknown = None;
    for (key, key_ops) in by_key {
        match check_key(&key_ops, config) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::NotLinearizable(explanation) => {
                return CheckResult::NotLinearizable { key: key.to_string(), explanation }
            }
            KeyVerdict::Unknown(steps) => {
                unknown.get_or_insert(CheckResult::Unknown { key: key.to_string(), steps });
            }
        }
    }
    unknown.unwrap_or(CheckResult::Linearizable)
}

enum KeyVerdict {
    Linearizable,
    NotLinearizable(String),
    Unknown(u64),
}

const NIL: usize = usize::MAX;

/// One call or return event in the search list.
#[derive(Debug, Clone)]
struct Node {
    /// Index into the key's operation list.
    op: usize,
    /// Call events point to their return event; return events hold `NIL`.
    matching: usize,
    prev: usize,
    next: usize,
}

impl Node {
    fn is_call(&self) -> bool {
        self.matching != NIL
    }
}

/// Fixed-size bitset over the key's operations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The doubly linked event list; index 0 is the head sentinel.
struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    /// Builds the list in time order: calls before returns at equal times (the
    /// permissive choice), indeterminate returns at +infinity.
    fn build(ops: &[&Operation]) -> Self {
        // (time, is_return, op index); `None` time = +infinity.
        let mut events: Vec<(Option<Duration>, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((Some(op.call), false, i));
            let ret = match &op.outcome {
                Outcome::Returned { at, .. } => Some(*at),
                Outcome::Indeterminate => None,
            };
            events.push((ret, true, i));
        }
        events.sort_by(|a, b| {
            let time = match (a.0, b.0) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            time.then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
        });
        let mut nodes = Vec::with_capacity(events.len() + 1);
        nodes.push(Node { op: NIL, matching: NIL, prev: NIL, next: NIL });
        let mut return_node = vec![NIL; ops.len()];
        for (pos, (_, is_return, op)) in events.iter().enumerate() {
            let idx = pos + 1;
            if *is_return {
                return_node[*op] = idx;
            }
            nodes.push(Node {
                op: *op,
                matching: NIL,
                prev: idx - 1,
                next: if pos + 1 < events.len() { idx + 1 } else { NIL },
            });
        }
        nodes[0].next = if events.is_empty() { NIL } else { 1 };
        for (pos, (_, is_return, op)) in events.iter().enumerate() {
            if !*is_return {
                nodes[pos + 1].matching = return_node[*op];
            }
        }
        EventList { nodes }
    }

    fn head_next(&self) -> usize {
        self.nodes[0].next
    }

    /// Removes a call event and its return event from the list.
    fn lift(&mut self, call: usize) {
        let (prev, next) = (self.nodes[call].prev, self.nodes[call].next);
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
        let ret = self.nodes[call].matching;
        let (prev, next) = (self.nodes[ret].prev, self.nodes[ret].next);
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    /// Reinserts a lifted call event and its return event (reverse of `lift`).
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].matching;
        let (prev, next) = (self.nodes[ret].prev, self.nodes[ret].next);
        self.nodes[prev].next = ret;
        if next != NIL {
            self.nodes[next].prev = ret;
        }
        let (prev, next) = (self.nodes[call].prev, self.nodes[call].next);
        self.nodes[prev].next = call;
        if next != NIL {
            self.nodes[next].prev = call;
        }
    }
}

fn check_key(all_ops: &[&Operation], config: &CheckerConfig) -> KeyVerdict {
    // Indeterminate reads constrain nothing.
    let ops: Vec<&Operation> = all_ops
        .iter()
        .copied()
        .filter(|op| !(op.input == Input::Get && op.outcome == Outcome::Indeterminate))
        .collect();
    let mut determinate_left = ops.iter().filter(|op| op.outcome != Outcome::Indeterminate).count();
    let mut list = EventList::build(&ops);
    let mut state: Option<Value> = None;
    let mut linearized = Bits::new(ops.len());
    let mut cache: HashSet<(Bits, Option<Value>)> = HashSet::new();
    let mut calls: Vec<(usize, Option<Value>)> = Vec::new();
    let mut best: (usize, Bits, Option<Value>) = (0, linearized.clone(), None);
    let mut steps: u64 = 0;
    let mut entry = list.head_next();

    // Once every determinate operation is linearized, the remaining
    // indeterminate ones can take effect at the end (their outputs are
    // unconstrained), so the search stops there.
    while determinate_left > 0 {
        steps += 1;
        if steps > config.max_steps_per_key {
            return KeyVerdict::Unknown(steps);
        }
        let node = &list.nodes[entry];
        if node.is_call() {
            let op = ops[node.op];
            let next_entry = node.next;
            if let Some(new_state) = step(&state, &op.input, op.output()) {
                let mut candidate = linearized.clone();
                candidate.set(node.op);
                let key = (candidate, new_state);
                if cache.insert(key.clone()) {
                    let (candidate, new_state) = key;
                    calls.push((entry, std::mem::replace(&mut state, new_state)));
                    linearized = candidate;
                    if op.outcome != Outcome::Indeterminate {
                        determinate_left -= 1;
                    }
                    if calls.len() > best.0 {
                        best = (calls.len(), linearized.clone(), state.clone());
                    }
                    list.lift(entry);
                    entry = list.head_next();
                    continue;
                }
            }
            entry = next_entry;
        } else {
            // A return event whose call is not linearized: backtrack.
            let Some((call, previous)) = calls.pop() else {
                return KeyVerdict::NotLinearizable(explain(&ops, &best.1, &best.2));
            };
            state = previous;
            let op_index = list.nodes[call].op;
            linearized.clear(op_index);
            if ops[op_index].outcome != Outcome::Indeterminate {
                determinate_left += 1;
            }
            list.unlift(call);
            entry = list.nodes[call].next;
        }
    }
    KeyVerdict::Linearizable
}

/// Describes the deepest point the search reached: which operations were
/// linearized, the register state there, and the operations none of which
/// could be applied next.
fn explain(ops: &[&Operation], best: &Bits, state: &Option<Value>) -> String {
    const SHOW: usize = 12;
    let remaining: Vec<&Operation> = (0..ops.len()).filter(|i| !best.get(*i)).map(|i| ops[i]).collect();
    // The first remaining operation to return must be linearized by its return
    // time; the candidates are the remaining operations invoked before that.
    let deadline = remaining
        .iter()
        .filter_map(|op| match op.outcome {
            Outcome::Returned { at, .. } => Some((at, *op)),
            Outcome::Indeterminate => None,
        })
        .min_by_key(|(at, _)| *at);
    let mut text = format!("{} of {} operations linearized, register then holds {:?}", best.count(), ops.len(), state);
    if let Some((at, blocking)) = deadline {
        let candidates: Vec<String> =
            remaining.iter().filter(|op| op.call <= at).take(SHOW).map(|op| op.to_string()).collect();
        text.push_str(&format!(
            "; no order of the pending operations explains [{blocking}]; pending: [{}]",
            candidates.join("; ")
        ));
    }
    let mut done: Vec<&Operation> = (0..ops.len()).filter(|i| best.get(*i)).map(|i| ops[i]).collect();
    done.sort_by_key(|op| op.call);
    let tail: Vec<String> = done.iter().rev().take(SHOW).rev().map(|op| op.to_string()).collect();
    text.push_str(&format!("; latest linearized (by invocation): [{}]", tail.join("; ")));
    text
}

#[cfg(test)]
mod tests;
