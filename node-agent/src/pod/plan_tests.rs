//! Table-style tests of [`super::plan`]: pods and runtime snapshots in, actions and waiting reasons out.

use k8s_openapi::jiff::SignedDuration;

use super::*;
use crate::pod::observed::SandboxInfo;
use crate::pod::probe::Verdict;

pub(crate) fn pod(restart: &str, init: &[&str], names: &[&str]) -> Pod {
    let c = |n: &&str| serde_json::json!({"name": n, "image": format!("localhost/{n}:1")});
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {
            "restartPolicy": restart,
            "initContainers": init.iter().map(c).collect::<Vec<_>>(),
            "containers": names.iter().map(c).collect::<Vec<_>>(),
        }
    }))
    .expect("pod")
}

pub(crate) fn sandbox(id: &str, attempt: u32, ready: bool) -> SandboxInfo {
    SandboxInfo { id: id.into(), attempt, ready, created_at: i64::from(attempt), ip: Some("10.1.0.2".into()) }
}

pub(crate) fn container(name: &str, attempt: u32, state: RunState, exit: i32, finished_s: i64) -> ContainerInfo {
    ContainerInfo {
        id: format!("{name}-{attempt}"),
        name: name.into(),
        attempt,
        sandbox_id: "s1".into(),
        state,
        created_at: i64::from(attempt),
        started_at: 1_000_000_000,
        finished_at: finished_s * 1_000_000_000,
        exit_code: exit,
        reason: String::new(),
        message: String::new(),
        image_ref: "sha256:abc".into(),
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(secs)
}

fn observed(sandboxes: Vec<SandboxInfo>, containers: Vec<ContainerInfo>) -> Observed {
    Observed { sandboxes, containers }
}

fn start(name: &str, init: bool, attempt: u32, restart_of: Option<i64>) -> Action {
    Action::StartContainer { name: name.into(), init, attempt, restart_of: restart_of.map(at) }
}

#[test]
fn a_new_pod_gets_a_sandbox_then_its_containers() {
    let p = pod("Always", &[], &["a", "b"]);
    let none = BackOff::default();
    let first = plan(&p, &Observed::default(), &none, &PullFailures::new(), &ProbeResults::default(), at(0));
    assert_eq!(first.actions, vec![Action::CreateSandbox { attempt: 0 }]);
    let second = plan(
        &p,
        &observed(vec![sandbox("s1", 0, true)], vec![]),
        &none,
        &PullFailures::new(),
        &ProbeResults::default(),
        at(0),
    );
    assert_eq!(second.actions, vec![start("a", false, 0, None), start("b", false, 0, None)]);
}

#[test]
fn init_containers_run_one_at_a_time_in_order() {
    let p = pod("Always", &["i1", "i2"], &["a"]);
    let b = BackOff::default();
    let pulls = PullFailures::new();
    let s = vec![sandbox("s1", 0, true)];
    let cases: Vec<(Vec<ContainerInfo>, Vec<Action>)> = vec![
        (vec![], vec![start("i1", true, 0, None)]),
        (vec![container("i1", 0, RunState::Running, 0, 0)], vec![]),
        (vec![container("i1", 0, RunState::Exited, 0, 2)], vec![start("i2", true, 0, None)]),
        (
            vec![container("i1", 0, RunState::Exited, 0, 2), container("i2", 0, RunState::Exited, 0, 3)],
            vec![start("a", false, 0, None)],
        ),
        // A failed init container restarts (policy Always) before anything after it.
        (vec![container("i1", 0, RunState::Exited, 1, 2)], vec![start("i1", true, 1, Some(2))]),
    ];
    for (containers, expected) in cases {
        let got = plan(&p, &observed(s.clone(), containers.clone()), &b, &pulls, &ProbeResults::default(), at(5));
        assert_eq!(got.actions, expected, "containers {containers:?}");
    }
}

#[test]
fn restart_policy_decides_which_exits_restart() {
    let b = BackOff::default();
    let pulls = PullFailures::new();
    let s = vec![sandbox("s1", 0, true)];
    let cases = [
        ("Always", 0, vec![start("a", false, 1, Some(2))]),
        ("Always", 1, vec![start("a", false, 1, Some(2))]),
        ("OnFailure", 1, vec![start("a", false, 1, Some(2))]),
        ("OnFailure", 0, vec![Action::StopSandbox { id: "s1".into() }]),
        ("Never", 1, vec![Action::StopSandbox { id: "s1".into() }]),
    ];
    for (policy, exit, expected) in cases {
        let p = pod(policy, &[], &["a"]);
        let got = plan(
            &p,
            &observed(s.clone(), vec![container("a", 0, RunState::Exited, exit, 2)]),
            &b,
            &pulls,
            &ProbeResults::default(),
            at(3),
        );
        assert_eq!(got.actions, expected, "{policy} exit {exit}");
    }
}

#[test]
fn a_second_crash_waits_in_crash_loop_back_off() {
    let p = pod("Always", &[], &["a"]);
    let mut b = BackOff::default();
    b.next("a", at(2));
    let obs = observed(
        vec![sandbox("s1", 0, true)],
        vec![container("a", 0, RunState::Exited, 1, 2), container("a", 1, RunState::Exited, 1, 5)],
    );
    let waiting = plan(&p, &obs, &b, &PullFailures::new(), &ProbeResults::default(), at(8));
    assert!(waiting.actions.is_empty(), "{:?}", waiting.actions);
    let w = &waiting.waiting["a"];
    assert_eq!(w.reason, "CrashLoopBackOff");
    assert_eq!(w.message, "back-off 10s restarting failed container=a pod=web_default(u1)");
    assert_eq!(waiting.wake_after, Some(Duration::from_secs(7)));
    let later = plan(&p, &obs, &b, &PullFailures::new(), &ProbeResults::default(), at(15));
    assert_eq!(later.actions, vec![start("a", false, 2, Some(5))]);
}

#[test]
fn a_failed_pull_backs_off_with_image_pull_back_off() {
    let p = pod("Always", &[], &["a"]);
    let mut b = BackOff::default();
    b.next(&pull_key("a"), at(1));
    let pulls = PullFailures::from([("a".to_string(), (at(1), "not found".to_string()))]);
    let obs = observed(vec![sandbox("s1", 0, true)], vec![]);
    let got = plan(&p, &obs, &b, &pulls, &ProbeResults::default(), at(4));
    assert!(got.actions.is_empty());
    assert_eq!(got.waiting["a"].reason, "ImagePullBackOff");
    assert_eq!(got.waiting["a"].message, "Back-off pulling image \"localhost/a:1\": ErrImagePull: not found");
    assert_eq!(plan(&p, &obs, &b, &pulls, &ProbeResults::default(), at(12)).actions, vec![start("a", false, 0, None)]);
}

#[test]
fn a_dead_sandbox_is_replaced_with_the_next_attempt() {
    let p = pod("Always", &[], &["a"]);
    let obs = observed(vec![sandbox("s1", 0, false)], vec![container("a", 0, RunState::Exited, 137, 2)]);
    let got = plan(&p, &obs, &BackOff::default(), &PullFailures::new(), &ProbeResults::default(), at(3));
    assert_eq!(got.actions, vec![Action::RemoveSandbox { id: "s1".into() }, Action::CreateSandbox { attempt: 1 }]);
}

#[test]
fn running_containers_are_adopted_untouched_and_old_attempts_pruned() {
    let p = pod("Always", &[], &["a"]);
    let obs = observed(
        vec![sandbox("s1", 0, true)],
        vec![
            container("a", 0, RunState::Exited, 1, 2),
            container("a", 1, RunState::Exited, 1, 4),
            container("a", 2, RunState::Running, 0, 0),
        ],
    );
    let got = plan(&p, &obs, &BackOff::default(), &PullFailures::new(), &ProbeResults::default(), at(5));
    assert_eq!(got.actions, vec![Action::RemoveContainer { id: "a-0".into() }]);
    assert!(got.waiting.is_empty());
}

#[test]
fn a_container_left_created_is_started() {
    let p = pod("Always", &[], &["a"]);
    let obs = observed(vec![sandbox("s1", 0, true)], vec![container("a", 0, RunState::Created, 0, 0)]);
    let got = plan(&p, &obs, &BackOff::default(), &PullFailures::new(), &ProbeResults::default(), at(5));
    assert_eq!(got.actions, vec![Action::StartCreated { id: "a-0".into() }]);
}

/// A pod whose container `a` has the given probes (`livenessProbe`, `startupProbe`, `readinessProbe`).
pub(crate) fn probed_pod(restart: &str, probes: &[&str]) -> Pod {
    let mut p = pod(restart, &[], &["a"]);
    let mut c = serde_json::to_value(&p.spec.as_ref().expect("spec").containers[0]).expect("container");
    for kind in probes {
        c[*kind] = serde_json::json!({"exec": {"command": ["cat", "/tmp/ok"]}});
    }
    p.spec.as_mut().expect("spec").containers[0] = serde_json::from_value(c).expect("container");
    p
}

#[test]
fn failed_liveness_or_startup_probes_kill_the_running_container() {
    use ProbeKind::*;
    use Verdict::*;
    let kill = |reason| vec![Action::KillContainer { id: "a-0".into(), name: "a".into(), reason }];
    type Case = (&'static str, Vec<&'static str>, Vec<(&'static str, ProbeKind, Verdict)>, Vec<Action>);
    let cases: Vec<Case> = vec![
        ("no results: nothing to do", vec!["livenessProbe"], vec![], vec![]),
        ("liveness passing", vec!["livenessProbe"], vec![("a-0", Liveness, Success)], vec![]),
        ("liveness failed", vec!["livenessProbe"], vec![("a-0", Liveness, Failure)], kill(StopReason::LivenessProbe)),
        ("startup failed", vec!["startupProbe"], vec![("a-0", Startup, Failure)], kill(StopReason::StartupProbe)),
        ("readiness failing never kills", vec!["readinessProbe"], vec![("a-0", Readiness, Failure)], vec![]),
        (
            "a failure of an earlier container does not count",
            vec!["livenessProbe"],
            vec![("a-9", Liveness, Failure)],
            vec![],
        ),
    ];
    let obs = observed(vec![sandbox("s1", 0, true)], vec![container("a", 0, RunState::Running, 0, 0)]);
    for (name, kinds, verdicts, expected) in cases {
        let p = probed_pod("Always", &kinds);
        let mut results = ProbeResults::default();
        for (id, kind, v) in verdicts {
            results.set(id, kind, v);
        }
        let got = plan(&p, &obs, &BackOff::default(), &PullFailures::new(), &results, at(5));
        assert_eq!(got.actions, expected, "{name}");
    }
}

#[test]
fn a_container_killed_by_its_liveness_probe_restarts_per_policy() {
    // After the kill, the old container is exited (SIGTERM'd: 143) and its results no longer matter.
    let mut results = ProbeResults::default();
    results.set("a-0", ProbeKind::Liveness, Verdict::Failure);
    let obs = observed(vec![sandbox("s1", 0, true)], vec![container("a", 0, RunState::Exited, 143, 4)]);
    let cases = [
        ("Always", vec![start("a", false, 1, Some(4))]),
        ("OnFailure", vec![start("a", false, 1, Some(4))]),
        ("Never", vec![Action::StopSandbox { id: "s1".into() }]),
    ];
    for (policy, expected) in cases {
        let p = probed_pod(policy, &["livenessProbe"]);
        let got = plan(&p, &obs, &BackOff::default(), &PullFailures::new(), &results, at(5));
        assert_eq!(got.actions, expected, "{policy}");
    }
}
