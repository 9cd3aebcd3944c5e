//! The prober state machine of one probe of one container (kubelet's probe worker without its I/O):
//! attempts' outcomes in, the published result out once `successThreshold` successes or
//! `failureThreshold` failures in a row are seen. A liveness or startup probe whose failure is
//! published stops (its container will be killed, and the next container gets a fresh prober); a
//! startup probe stops once it passed. Errors (the probe could not run) change nothing, as upstream.
//! Also the Events an attempt records. Pure.

use super::settings::{ProbeKind, ProbeSettings};
use crate::events::EventType;

/// A published probe result. No result yet means the kubelet's initial value: not ready, not
/// started, and alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A success with a note (a redirect to another host that was not followed).
    Warning(String),
    /// A failure with its output (`cat: can't open ...`, `HTTP probe failed with statuscode: 500`).
    Failure(String),
    /// The probe could not run (a bad port name, a runtime error): recorded, but not counted.
    Error(String),
}

impl Outcome {
    /// The verdict this attempt counts as, if it counts.
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            Self::Success | Self::Warning(_) => Some(Verdict::Success),
            Self::Failure(_) => Some(Verdict::Failure),
            Self::Error(_) => None,
        }
    }

    /// The Event the kubelet records for this attempt of a `kind` probe: `(type, reason, message)`.
    pub fn event(&self, kind: ProbeKind) -> Option<(EventType, &'static str, String)> {
        let title = kind.title();
        match self {
            Self::Success => None,
            Self::Warning(w) => Some((EventType::Warning, "ProbeWarning", format!("{title} probe warning: {w}"))),
            Self::Failure(out) => Some((EventType::Warning, "Unhealthy", format!("{title} probe failed: {out}"))),
            Self::Error(e) => Some((
                EventType::Warning,
                "Unhealthy",
                format!("{title} probe errored and resulted in unknown state: {e}"),
            )),
        }
    }
}

/// What follows from recording one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// The new published result, when it changed.
    pub publish: Option<Verdict>,
    /// Whether probing this container ends here.
    pub stop: bool,
}

/// One probe of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    kind: ProbeKind,
    success_threshold: u32,
    failure_threshold: u32,
    published: Option<Verdict>,
    last: Option<Verdict>,
    run: u32,
}

impl ProbeState {
    pub fn new(kind: ProbeKind, settings: &ProbeSettings) -> Self {
        Self {
            kind,
            success_threshold: settings.success_threshold.max(1),
            failure_threshold: settings.failure_threshold.max(1),
            published: None,
            last: None,
            run: 0,
        }
    }

    pub fn published(&self) -> Option<Verdict> {
        self.published
    }

    /// Records one attempt.
    pub fn record(&mut self, outcome: &Outcome) -> Step {
        let Some(verdict) = outcome.verdict() else { return Step::default() };
        if self.last == Some(verdict) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(verdict);
            self.run = 1;
        }
        let threshold = match verdict {
            Verdict::Success => self.success_threshold,
            Verdict::Failure => self.failure_threshold,
        };
        if self.run < threshold {
            return Step::default();
        }
        let publish = (self.published != Some(verdict)).then_some(verdict);
        self.published = Some(verdict);
        let stop = match (self.kind, verdict) {
            (kind, Verdict::Failure) => kind.kills(),
            (ProbeKind::Startup, Verdict::Success) => true,
            _ => false,
        };
        if stop {
            self.run = 0;
        }
        Step { publish, stop }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Outcome = Outcome::Success;

    fn f() -> Outcome {
        Outcome::Failure("no".into())
    }

    fn e() -> Outcome {
        Outcome::Error("port".into())
    }

    fn settings(success: u32, failure: u32) -> ProbeSettings {
        ProbeSettings { success_threshold: success, failure_threshold: failure, ..Default::default() }
    }

    fn step(publish: Option<Verdict>, stop: bool) -> Step {
        Step { publish, stop }
    }

    const NONE: Step = Step { publish: None, stop: false };

    /// Feeds `outcomes` to a fresh state and returns every step.
    fn run(kind: ProbeKind, s: ProbeSettings, outcomes: &[Outcome]) -> Vec<Step> {
        let mut state = ProbeState::new(kind, &s);
        outcomes.iter().map(|o| state.record(o)).collect()
    }

    #[test]
    fn thresholds_decide_when_a_result_is_published() {
        use ProbeKind::*;
        use Verdict::*;
        type Case = (&'static str, ProbeKind, ProbeSettings, Vec<Outcome>, Vec<Step>);
        let cases: Vec<Case> = vec![
            ("readiness passes at once", Readiness, settings(1, 3), vec![S, S], vec![step(Some(Success), false), NONE]),
            (
                "readiness needs two successes",
                Readiness,
                settings(2, 3),
                vec![S, S, S],
                vec![NONE, step(Some(Success), false), NONE],
            ),
            (
                "readiness fails after three failures in a row and recovers",
                Readiness,
                settings(1, 3),
                vec![S, f(), f(), S, f(), f(), f(), S],
                vec![
                    step(Some(Success), false),
                    NONE,
                    NONE,
                    NONE,
                    NONE,
                    NONE,
                    step(Some(Failure), false),
                    step(Some(Success), false),
                ],
            ),
            (
                "liveness failure past the threshold stops the prober",
                Liveness,
                settings(1, 2),
                vec![S, f(), f()],
                vec![step(Some(Success), false), NONE, step(Some(Failure), true)],
            ),
            (
                "errors neither count nor break a run",
                Liveness,
                settings(1, 2),
                vec![f(), e(), f()],
                vec![NONE, NONE, step(Some(Failure), true)],
            ),
            (
                "startup stops once it passed",
                Startup,
                settings(1, 30),
                vec![f(), f(), S],
                vec![NONE, NONE, step(Some(Success), true)],
            ),
            (
                "startup failing past the threshold stops (the container is killed)",
                Startup,
                settings(1, 2),
                vec![f(), f()],
                vec![NONE, step(Some(Failure), true)],
            ),
            (
                "a warning counts as a success",
                Readiness,
                settings(1, 1),
                vec![f(), Outcome::Warning("redirect".into())],
                vec![step(Some(Failure), false), step(Some(Success), false)],
            ),
        ];
        for (name, kind, s, outcomes, expected) in cases {
            assert_eq!(run(kind, s, &outcomes), expected, "{name}");
        }
    }

    #[test]
    fn the_published_result_holds_between_thresholds() {
        let mut state = ProbeState::new(ProbeKind::Readiness, &settings(1, 2));
        assert_eq!(state.published(), None, "no result before the first attempt");
        state.record(&S);
        state.record(&f());
        assert_eq!(state.published(), Some(Verdict::Success), "one failure is below the threshold");
        state.record(&f());
        assert_eq!(state.published(), Some(Verdict::Failure));
    }

    #[test]
    fn attempts_record_kubelet_events() {
        let cases = [
            (ProbeKind::Liveness, S, None),
            (
                ProbeKind::Liveness,
                Outcome::Failure("cat: can't open '/tmp/x'".into()),
                Some((EventType::Warning, "Unhealthy", "Liveness probe failed: cat: can't open '/tmp/x'")),
            ),
            (
                ProbeKind::Readiness,
                Outcome::Error("bad port".into()),
                Some((
                    EventType::Warning,
                    "Unhealthy",
                    "Readiness probe errored and resulted in unknown state: bad port",
                )),
            ),
            (
                ProbeKind::Startup,
                Outcome::Warning("Probe terminated redirects".into()),
                Some((EventType::Warning, "ProbeWarning", "Startup probe warning: Probe terminated redirects")),
            ),
        ];
        for (kind, outcome, expected) in cases {
            let got = outcome.event(kind);
            let got = got.as_ref().map(|(t, r, m)| (*t, *r, m.as_str()));
            assert_eq!(got, expected, "{kind:?} {outcome:?}");
        }
    }
}
