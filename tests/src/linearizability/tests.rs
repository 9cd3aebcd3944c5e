//! The checker on hand-made histories (each anomaly found, indeterminate operations handled) and on
//! random histories from a real register.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn op(client: usize, input: Input, call: u64, ret: u64, output: Output) -> Operation {
    Operation { client, key: "k".into(), input, call: ms(call), outcome: Outcome::Returned { at: ms(ret), output } }
}

fn lost(client: usize, input: Input, call: u64) -> Operation {
    Operation { client, key: "k".into(), input, call: ms(call), outcome: Outcome::Indeterminate }
}

fn put(v: &str) -> Input {
    Input::Put(v.into())
}
fn cas(expect: Option<&str>, new: &str) -> Input {
    Input::Cas { expect: expect.map(String::from), new: new.into() }
}
fn read(v: Option<&str>) -> Output {
    Output::Value(v.map(String::from))
}

fn assert_ok(h: &[Operation]) {
    let r = check_history(h);
    assert_eq!(r, CheckResult::Linearizable, "history: {h:#?}");
}

fn assert_violation(h: &[Operation]) {
    let r = check_history(h);
    assert!(matches!(r, CheckResult::NotLinearizable { .. }), "expected a violation, got {r}; history: {h:#?}");
}

#[test]
fn empty_history_is_linearizable() {
    assert_ok(&[]);
}

#[test]
fn concurrent_overlapping_puts_accept_either_order() {
    // Two overlapping puts; reads after both may see either one, but both
    // later reads must agree.
    let base = vec![op(0, put("a"), 0, 10, Output::Ok), op(1, put("b"), 1, 9, Output::Ok)];
    for winner in ["a", "b"] {
        let mut h = base.clone();
        h.push(op(2, Input::Get, 11, 12, read(Some(winner))));
        h.push(op(3, Input::Get, 13, 14, read(Some(winner))));
        assert_ok(&h);
    }
    let mut h = base;
    h.push(op(2, Input::Get, 11, 12, read(Some("a"))));
    h.push(op(3, Input::Get, 13, 14, read(Some("b"))));
    assert_violation(&h);
}

#[test]
fn read_concurrent_with_put_may_see_old_or_new() {
    for seen in [None, Some("a")] {
        assert_ok(&[op(0, put("a"), 0, 10, Output::Ok), op(1, Input::Get, 2, 5, read(seen))]);
    }
}

#[test]
fn cas_chain_is_linearizable() {
    assert_ok(&[
        op(0, cas(None, "a"), 0, 1, Output::Swapped(true)),
        op(1, cas(Some("a"), "b"), 2, 3, Output::Swapped(true)),
        op(2, cas(Some("a"), "c"), 4, 5, Output::Swapped(false)),
        op(0, cas(Some("b"), "d"), 6, 7, Output::Swapped(true)),
        op(1, Input::Get, 8, 9, read(Some("d"))),
        op(2, Input::Delete, 10, 11, Output::Deleted(true)),
        op(0, Input::Delete, 12, 13, Output::Deleted(false)),
        op(1, cas(None, "e"), 14, 15, Output::Swapped(true)),
        op(2, Input::Get, 16, 17, read(Some("e"))),
    ]);
}

#[test]
fn concurrent_cas_from_same_value_one_wins() {
    assert_ok(&[
        op(0, put("a"), 0, 1, Output::Ok),
        op(1, cas(Some("a"), "b"), 2, 10, Output::Swapped(true)),
        op(2, cas(Some("a"), "c"), 3, 9, Output::Swapped(false)),
        op(0, Input::Get, 11, 12, read(Some("b"))),
    ]);
}

#[test]
fn two_successful_cas_from_same_expected_value_rejected() {
    assert_violation(&[
        op(0, put("a"), 0, 1, Output::Ok),
        op(1, cas(Some("a"), "b"), 2, 10, Output::Swapped(true)),
        op(2, cas(Some("a"), "c"), 3, 9, Output::Swapped(true)),
    ]);
}

#[test]
fn stale_read_after_completed_write_rejected() {
    assert_violation(&[
        op(0, put("a"), 0, 1, Output::Ok),
        op(0, put("b"), 2, 3, Output::Ok),
        op(1, Input::Get, 4, 5, read(Some("a"))),
    ]);
    // Reading "absent" after a completed write is just as stale.
    assert_violation(&[op(0, put("a"), 0, 1, Output::Ok), op(1, Input::Get, 2, 3, read(None))]);
}

#[test]
fn read_of_value_never_written_rejected() {
    assert_violation(&[op(0, put("a"), 0, 5, Output::Ok), op(1, Input::Get, 1, 6, read(Some("zzz")))]);
}

#[test]
fn non_monotonic_reads_rejected() {
    // Once a read has seen the new value, a later read may not see the old.
    assert_violation(&[
        op(0, put("a"), 0, 1, Output::Ok),
        op(0, put("b"), 2, 20, Output::Ok),
        op(1, Input::Get, 3, 4, read(Some("b"))),
        op(2, Input::Get, 5, 6, read(Some("a"))),
    ]);
}

#[test]
fn indeterminate_put_may_take_effect_late() {
    // The put's client timed out; its value shows up much later.
    assert_ok(&[
        lost(0, put("x"), 0),
        op(1, put("a"), 10, 11, Output::Ok),
        op(1, Input::Get, 12, 13, read(Some("a"))),
        op(2, Input::Get, 100, 101, read(Some("x"))),
    ]);
}

#[test]
fn indeterminate_put_may_never_take_effect() {
    assert_ok(&[
        op(1, put("a"), 0, 1, Output::Ok),
        lost(0, put("x"), 2),
        op(1, Input::Get, 10, 11, read(Some("a"))),
        op(2, Input::Get, 100, 101, read(Some("a"))),
    ]);
}

#[test]
fn indeterminate_put_cannot_take_effect_before_invocation() {
    assert_violation(&[op(1, Input::Get, 0, 1, read(Some("x"))), lost(0, put("x"), 2)]);
}

#[test]
fn indeterminate_put_takes_effect_at_most_once() {
    assert_violation(&[
        lost(0, put("x"), 0),
        op(1, Input::Get, 1, 2, read(Some("x"))),
        op(1, put("a"), 3, 4, Output::Ok),
        op(1, Input::Get, 5, 6, read(Some("x"))),
    ]);
}

#[test]
fn indeterminate_cas_and_read_are_handled() {
    assert_ok(&[
        op(0, put("a"), 0, 1, Output::Ok),
        lost(1, cas(Some("a"), "b"), 2),
        lost(2, Input::Get, 3),
        op(0, Input::Get, 5, 6, read(Some("b"))),
        op(0, cas(Some("b"), "c"), 7, 8, Output::Swapped(true)),
    ]);
    // An indeterminate CAS can only take effect if its expectation held.
    assert_violation(&[
        op(0, put("a"), 0, 1, Output::Ok),
        lost(1, cas(Some("zzz"), "b"), 2),
        op(0, Input::Get, 5, 6, read(Some("b"))),
    ]);
}

#[test]
fn keys_are_checked_independently() {
    let mut h = vec![op(0, put("a"), 0, 1, Output::Ok), op(1, Input::Get, 2, 3, read(Some("a")))];
    let mut other = op(2, Input::Get, 2, 3, read(Some("a")));
    other.key = "other".into();
    h.push(other);
    let r = check_history(&h);
    match r {
        CheckResult::NotLinearizable { key, explanation } => {
            assert_eq!(key, "other");
            assert!(explanation.contains("get()"), "{explanation}");
        }
        other => panic!("expected violation on key other, got {other}"),
    }
}

#[test]
fn malformed_operation_is_reported() {
    let r = check_history(&[op(0, put("a"), 0, 1, Output::Swapped(true))]);
    assert!(matches!(r, CheckResult::Invalid { .. }), "{r}");
}

#[test]
fn budget_exhaustion_is_unknown_not_pass() {
    let h: Vec<Operation> = (0..20)
        .map(|i| op(i, put(&format!("v{i}")), 0, 100, Output::Ok))
        .chain(std::iter::once(op(99, Input::Get, 101, 102, read(Some("nope")))))
        .collect();
    let r = check_history_with(&h, &CheckerConfig { max_steps_per_key: 50 });
    assert!(matches!(r, CheckResult::Unknown { .. }), "{r}");
}

#[test]
fn many_concurrent_puts_with_consistent_reads_are_fast() {
    // 16 fully concurrent puts followed by agreeing reads: the memo cache
    // must keep this far below the budget.
    let mut h: Vec<Operation> = (0..16).map(|i| op(i, put(&format!("v{i}")), 0, 100, Output::Ok)).collect();
    h.push(op(20, Input::Get, 101, 102, read(Some("v7"))));
    h.push(op(21, Input::Get, 103, 104, read(Some("v7"))));
    let r = check_history_with(&h, &CheckerConfig { max_steps_per_key: 1_000_000 });
    assert_eq!(r, CheckResult::Linearizable);
}

/// A real register driven by random operations at random linearization
/// points inside random, possibly overlapping, intervals.
fn generate(rng: &mut StdRng, clients: usize, ops_per_client: usize, overlap: bool) -> Vec<Operation> {
    generate_lossy(rng, clients, ops_per_client, overlap, 0.05, 0.5)
}

/// Like `generate`, with a fraction `lost_rate` of indeterminate operations of
/// which a fraction `applied` took effect.
fn generate_lossy(
    rng: &mut StdRng,
    clients: usize,
    ops_per_client: usize,
    overlap: bool,
    lost_rate: f64,
    applied: f64,
) -> Vec<Operation> {
    struct Planned {
        client: usize,
        call: u64,
        ret: u64,
        point: u64,
        input: Input,
        lost: bool,
    }
    let mut planned = Vec::new();
    let mut seq = 0;
    for client in 0..clients {
        let mut t = rng.random_range(0..5u64);
        for _ in 0..ops_per_client {
            let len = if overlap { rng.random_range(1..40u64) } else { 1 };
            let call = t;
            let ret = t + len;
            let point = rng.random_range(call..=ret);
            seq += 1;
            let input = match rng.random_range(0..10) {
                0..=3 => Input::Get,
                4..=6 => Input::Put(format!("v{seq}")),
                7..=8 => Input::Cas {
                    expect: if rng.random_bool(0.2) {
                        None
                    } else {
                        Some(format!("v{}", rng.random_range(0..seq.max(1))))
                    },
                    new: format!("v{seq}"),
                },
                _ => Input::Delete,
            };
            let lost = overlap && rng.random_bool(lost_rate);
            planned.push(Planned { client, call, ret, point, input, lost });
            t = ret + rng.random_range(1..5u64);
        }
    }
    if !overlap {
        // Sequential: lay all operations end to end.
        let mut t = 0;
        planned.sort_by_key(|p| (p.call, p.client));
        for p in &mut planned {
            p.call = t;
            p.ret = t + 1;
            p.point = t;
            t += 2;
        }
    }
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|i| (planned[*i].point, *i));
    let mut state: Option<Value> = None;
    let mut outputs = vec![None; planned.len()];
    for i in order {
        let p = &planned[i];
        // A lost operation that takes effect or not, at random.
        if p.lost && !rng.random_bool(applied) {
            continue;
        }
        let output = match &p.input {
            Input::Put(v) => {
                state = Some(v.clone());
                Output::Ok
            }
            Input::Get => Output::Value(state.clone()),
            Input::Cas { expect, new } => {
                let ok = &state == expect;
                if ok {
                    state = Some(new.clone());
                }
                Output::Swapped(ok)
            }
            Input::Delete => {
                let existed = state.is_some();
                state = None;
                Output::Deleted(existed)
            }
        };
        outputs[i] = Some(output);
    }
    planned
        .into_iter()
        .zip(outputs)
        .map(|(p, output)| Operation {
            client: p.client,
            key: "k".into(),
            input: p.input,
            call: ms(p.call),
            outcome: match output {
                Some(output) if !p.lost => Outcome::Returned { at: ms(p.ret), output },
                _ => Outcome::Indeterminate,
            },
        })
        .collect()
}

#[test]
fn random_sequential_histories_accepted_and_corrupted_reads_rejected() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    let mut corrupted_checked = 0;
    for _ in 0..200 {
        let h = generate(&mut rng, 3, 30, false);
        assert_eq!(check_history(&h), CheckResult::Linearizable, "{h:#?}");
        // Corrupt one read: in a sequential history every changed read
        // result is detectable.
        let reads: Vec<usize> = (0..h.len()).filter(|i| h[*i].input == Input::Get).collect();
        if reads.is_empty() {
            continue;
        }
        let victim = reads[rng.random_range(0..reads.len())];
        let mut bad = h.clone();
        if let Outcome::Returned { output, .. } = &mut bad[victim].outcome {
            *output = match output {
                Output::Value(Some(_)) if rng.random_bool(0.5) => Output::Value(None),
                Output::Value(Some(v)) => Output::Value(Some(format!("{v}-corrupt"))),
                _ => Output::Value(Some("never-written".into())),
            };
        }
        assert!(
            matches!(check_history(&bad), CheckResult::NotLinearizable { .. }),
            "corrupted read not detected: {bad:#?}"
        );
        corrupted_checked += 1;
    }
    assert!(corrupted_checked > 100);
}

#[test]
fn random_concurrent_histories_from_real_register_accepted() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    for _ in 0..100 {
        let h = generate(&mut rng, 5, 40, true);
        let r = check_history(&h);
        assert_eq!(r, CheckResult::Linearizable, "{r}; {h:#?}");
    }
}

#[test]
fn histories_with_many_lost_writes_stay_within_budget() {
    // Crash tests produce many indeterminate writes, most of which never
    // took effect; each stays pending to the end of the history.
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    for _ in 0..3 {
        let h = generate_lossy(&mut rng, 8, 150, true, 0.2, 0.2);
        let r = check_history_with(&h, &CheckerConfig { max_steps_per_key: 2_000_000 });
        assert_eq!(r, CheckResult::Linearizable, "{r}");
    }
}

#[test]
fn recorded_etcd_crash_history_is_linearizable_and_corruption_is_caught() {
    // Recorded by tests/crash_linearizability.rs against a 3-member etcd
    // 3.4 with 20 leader kills (2260 operations, 170 indeterminate).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join("etcd-crash-history.txt");
    let ops = crate::history::read_history(&path).expect("readable history");
    assert!(ops.len() > 2000);
    assert_eq!(check_history(&ops), CheckResult::Linearizable);
    let mut rng = StdRng::seed_from_u64(0x5eed_0005);
    let reads: Vec<usize> = (0..ops.len())
        .filter(|i| ops[*i].input == Input::Get && matches!(ops[*i].outcome, Outcome::Returned { .. }))
        .collect();
    // Refuting needs an exhaustive search of everything before the bad
    // read, so pick reads from the first quarter to keep this quick.
    for _ in 0..3 {
        let victim = reads[rng.random_range(0..reads.len() / 4)];
        let mut bad = ops.clone();
        if let Outcome::Returned { output, .. } = &mut bad[victim].outcome {
            *output = Output::Value(Some("never-written".into()));
        }
        match check_history(&bad) {
            CheckResult::NotLinearizable { key, .. } => assert_eq!(key, bad[victim].key),
            other => panic!("corrupted read of op {victim} not caught: {other}"),
        }
    }
}

/// Exhaustive oracle for tiny histories: tries every order of the
/// operations that respects real time.
fn brute_force(ops: &[Operation]) -> bool {
    let ops: Vec<&Operation> =
        ops.iter().filter(|op| !(op.input == Input::Get && op.outcome == Outcome::Indeterminate)).collect();
    fn ret(op: &Operation) -> Option<Duration> {
        match op.outcome {
            Outcome::Returned { at, .. } => Some(at),
            Outcome::Indeterminate => None,
        }
    }
    fn go(ops: &[&Operation], used: &mut Vec<bool>, state: &Option<Value>) -> bool {
        if used.iter().all(|u| *u) {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] {
                continue;
            }
            // `i` may go next only if no unused op returned before it was called.
            let blocked = (0..ops.len()).any(|j| !used[j] && j != i && ret(ops[j]).is_some_and(|r| r < ops[i].call));
            if blocked {
                continue;
            }
            if let Some(next) = step(state, &ops[i].input, ops[i].output()) {
                used[i] = true;
                if go(ops, used, &next) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    go(&ops, &mut vec![false; ops.len()], &None)
}

#[test]
fn random_small_histories_agree_with_brute_force() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..3000 {
        let n = rng.random_range(1..=7);
        let values = ["a", "b", "c"];
        let pick = |rng: &mut StdRng| values[rng.random_range(0..values.len())].to_string();
        let h: Vec<Operation> = (0..n)
            .map(|i| {
                let call = rng.random_range(0..20u64);
                let input = match rng.random_range(0..4) {
                    0 => Input::Get,
                    1 => Input::Put(pick(&mut rng)),
                    2 => Input::Cas { expect: rng.random_bool(0.7).then(|| pick(&mut rng)), new: pick(&mut rng) },
                    _ => Input::Delete,
                };
                let output = match &input {
                    Input::Get => Output::Value(rng.random_bool(0.8).then(|| pick(&mut rng))),
                    Input::Put(_) => Output::Ok,
                    Input::Cas { .. } => Output::Swapped(rng.random_bool(0.5)),
                    Input::Delete => Output::Deleted(rng.random_bool(0.5)),
                };
                Operation {
                    client: i,
                    key: "k".into(),
                    input,
                    call: ms(call),
                    outcome: if rng.random_bool(0.15) {
                        Outcome::Indeterminate
                    } else {
                        Outcome::Returned { at: ms(call + rng.random_range(0..10u64)), output }
                    },
                }
            })
            .collect();
        let expected = brute_force(&h);
        let got = check_history(&h);
        assert_eq!(got.is_linearizable(), expected, "{got}; {h:#?}");
        if expected {
            yes += 1;
        } else {
            no += 1;
        }
    }
    // The generator must exercise both verdicts.
    assert!(yes > 300 && no > 300, "yes={yes} no={no}");
}
