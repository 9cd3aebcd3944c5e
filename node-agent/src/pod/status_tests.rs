//! Tests of [`super::pod_status`]: phases, conditions and container states from runtime snapshots.

use k8s_openapi::jiff::SignedDuration;

use super::*;
use crate::pod::plan::tests::{container, pod, probed_pod, sandbox};
use crate::pod::probe::{ProbeKind, Verdict};

fn at(secs: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(secs)
}

fn status(p: &Pod, containers: Vec<ContainerInfo>, waiting: &BTreeMap<String, Waiting>) -> PodStatus {
    status_with(p, containers, waiting, &ProbeResults::default())
}

fn status_with(
    p: &Pod,
    containers: Vec<ContainerInfo>,
    waiting: &BTreeMap<String, Waiting>,
    probes: &ProbeResults,
) -> PodStatus {
    let observed = Observed { sandboxes: vec![sandbox("s1", 0, true)], containers };
    pod_status(p, &observed, &StatusContext { waiting, probes, host_ip: "127.0.0.1", now: at(100) })
}

fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
    s.conditions.iter().flatten().find(|c| c.type_ == t).expect("condition")
}

#[test]
fn a_running_pod_is_ready_with_ips_and_container_details() {
    let p = pod("Always", &[], &["a"]);
    let s = status(&p, vec![container("a", 0, RunState::Running, 0, 0)], &BTreeMap::new());
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(cond(&s, "Ready").status, "True");
    assert_eq!(cond(&s, "ContainersReady").status, "True");
    assert_eq!(cond(&s, "Initialized").status, "True");
    assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.2"));
    assert_eq!(s.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    let c = &s.container_statuses.as_ref().expect("statuses")[0];
    assert!(c.ready);
    assert_eq!(c.started, Some(true));
    assert_eq!(c.container_id.as_deref(), Some("containerd://a-0"));
    assert_eq!(c.image, "localhost/a:1");
    assert_eq!(c.image_id, "sha256:abc");
    let running = c.state.as_ref().and_then(|st| st.running.as_ref()).expect("running");
    assert_eq!(running.started_at, Some(seconds(at(1))));
}

#[test]
fn a_crash_loop_shows_waiting_with_the_last_termination() {
    let p = pod("Always", &[], &["a"]);
    let w = BTreeMap::from([(
        "a".to_string(),
        Waiting { reason: "CrashLoopBackOff".into(), message: "back-off 10s restarting failed container=a".into() },
    )]);
    let s = status(&p, vec![container("a", 0, RunState::Exited, 1, 2), container("a", 1, RunState::Exited, 1, 5)], &w);
    let c = &s.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!(c.restart_count, 1);
    assert!(!c.ready);
    let waiting = c.state.as_ref().and_then(|st| st.waiting.as_ref()).expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    let last = c.last_state.as_ref().and_then(|st| st.terminated.as_ref()).expect("last terminated");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(last.finished_at, Some(seconds(at(5))));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(cond(&s, "Ready").message.as_deref(), Some("containers with unready status: [a]"));
}

#[test]
fn phases_follow_restart_policy_and_exit_codes() {
    let cases = [
        ("Never", vec![0], "Succeeded"),
        ("Never", vec![1], "Failed"),
        ("OnFailure", vec![0], "Succeeded"),
        ("Never", vec![0, 1], "Failed"),
    ];
    for (policy, exits, expected) in cases {
        let names: Vec<String> = (0..exits.len()).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let p = pod(policy, &[], &refs);
        let containers = exits.iter().zip(&refs).map(|(e, n)| container(n, 0, RunState::Exited, *e, 3)).collect();
        let s = status(&p, containers, &BTreeMap::new());
        assert_eq!(s.phase.as_deref(), Some(expected), "{policy} {exits:?}");
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    }
}

#[test]
fn pending_init_keeps_the_pod_pending_and_containers_initializing() {
    let p = pod("Always", &["i"], &["a"]);
    let s = status(&p, vec![container("i", 0, RunState::Running, 0, 0)], &BTreeMap::new());
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(cond(&s, "Initialized").status, "False");
    assert_eq!(cond(&s, "Initialized").message.as_deref(), Some("containers with incomplete status: [i]"));
    let c = &s.container_statuses.as_ref().expect("statuses")[0];
    let waiting = c.state.as_ref().and_then(|st| st.waiting.as_ref()).expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("PodInitializing"));
}

#[test]
fn a_pull_failure_shows_err_image_pull_and_transition_times_hold() {
    let p = pod("Always", &[], &["a"]);
    let w = BTreeMap::from([(
        "a".to_string(),
        Waiting { reason: "ErrImagePull".into(), message: "failed to resolve reference".into() },
    )]);
    let first = status(&p, vec![], &w);
    let c = &first.container_statuses.as_ref().expect("statuses")[0];
    let waiting = c.state.as_ref().and_then(|st| st.waiting.as_ref()).expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("ErrImagePull"));
    assert_eq!(first.phase.as_deref(), Some("Pending"));
    let mut p2 = p.clone();
    p2.status = Some(first.clone());
    let observed = Observed { sandboxes: vec![sandbox("s1", 0, true)], containers: vec![] };
    let again = pod_status(
        &p2,
        &observed,
        &StatusContext { waiting: &w, probes: &ProbeResults::default(), host_ip: "127.0.0.1", now: at(500) },
    );
    assert_eq!(again, first, "nothing changed, so the status compares equal");
}

#[test]
fn probe_results_decide_started_and_ready() {
    use ProbeKind::*;
    use Verdict::*;
    type Case = (&'static str, Vec<&'static str>, Vec<(ProbeKind, Verdict)>, bool, bool);
    let cases: Vec<Case> = vec![
        ("no probes", vec![], vec![], true, true),
        ("readiness not passed yet", vec!["readinessProbe"], vec![], true, false),
        ("readiness passed", vec!["readinessProbe"], vec![(Readiness, Success)], true, true),
        ("readiness failed again", vec!["readinessProbe"], vec![(Readiness, Failure)], true, false),
        ("startup pending", vec!["startupProbe", "livenessProbe"], vec![], false, false),
        (
            "startup pending gates a passed readiness",
            vec!["startupProbe", "readinessProbe"],
            vec![(Readiness, Success)],
            false,
            false,
        ),
        ("startup passed", vec!["startupProbe"], vec![(Startup, Success)], true, true),
        ("liveness does not affect readiness", vec!["livenessProbe"], vec![(Liveness, Failure)], true, true),
    ];
    for (name, kinds, verdicts, started, ready) in cases {
        let p = probed_pod("Always", &kinds);
        let mut probes = ProbeResults::default();
        for (kind, v) in verdicts {
            probes.set("a-0", kind, v);
        }
        let s = status_with(&p, vec![container("a", 0, RunState::Running, 0, 0)], &BTreeMap::new(), &probes);
        let c = &s.container_statuses.as_ref().expect("statuses")[0];
        assert_eq!((c.started, c.ready), (Some(started), ready), "{name}");
        assert_eq!(c.restart_count, 0, "{name}");
        assert_eq!(s.phase.as_deref(), Some("Running"), "{name}");
        let expected = if ready { "True" } else { "False" };
        assert_eq!(cond(&s, "Ready").status, expected, "{name}");
        assert_eq!(cond(&s, "ContainersReady").status, expected, "{name}");
        if !ready {
            assert_eq!(cond(&s, "Ready").message.as_deref(), Some("containers with unready status: [a]"), "{name}");
        }
    }
}

#[test]
fn an_exited_container_is_neither_started_nor_ready_whatever_its_results() {
    let p = probed_pod("Never", &["readinessProbe"]);
    let mut probes = ProbeResults::default();
    probes.set("a-0", ProbeKind::Readiness, Verdict::Success);
    let s = status_with(&p, vec![container("a", 0, RunState::Exited, 1, 3)], &BTreeMap::new(), &probes);
    let c = &s.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!((c.started, c.ready), (Some(false), false));
}

#[test]
fn an_oom_killed_container_shows_oom_killed_with_exit_code_137() {
    let p = pod("Never", &[], &["a"]);
    let mut oom = container("a", 0, RunState::Exited, 137, 3);
    oom.reason = "OOMKilled".into();
    let s = status(&p, vec![oom], &BTreeMap::new());
    let c = &s.container_statuses.as_ref().expect("statuses")[0];
    let t = c.state.as_ref().and_then(|st| st.terminated.as_ref()).expect("terminated");
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("OOMKilled"), 137));
    assert_eq!(s.phase.as_deref(), Some("Failed"));
}
