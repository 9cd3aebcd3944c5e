//! Restart and image-pull back-off, with upstream kubelet semantics: 10 s doubling to 5 min, measured
//! from the event (a container's finish, a failed pull); an entry whose last event is more than twice
//! the maximum old (a container that ran 10 minutes) starts over. Pure: callers pass the clock.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    delay: Duration,
    last: Timestamp,
}

/// Back-off state per key (a container name, or `pull/<name>`).
#[derive(Debug, Clone, Default)]
pub struct BackOff {
    entries: HashMap<String, Entry>,
}

impl BackOff {
    /// If `key` is backing off from an event at `event`, how long remains at `now`.
    pub fn remaining(&self, key: &str, event: Timestamp, now: Timestamp) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        if expired(event, entry.last) {
            return None;
        }
        let elapsed = Duration::try_from(now.duration_since(event)).unwrap_or(Duration::ZERO);
        entry.delay.checked_sub(elapsed).filter(|d| !d.is_zero())
    }

    /// The current delay of `key` (for messages).
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// Records an event (a restart or a failed pull): the delay starts at 10 s or doubles.
    pub fn next(&mut self, key: &str, event: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(e) if !expired(event, e.last) => (e.delay * 2).min(MAX),
            _ => INITIAL,
        };
        self.entries.insert(key.to_string(), Entry { delay, last: event });
    }

    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

fn expired(event: Timestamp, last: Timestamp) -> bool {
    event.duration_since(last) > SignedDuration::try_from(MAX * 2).unwrap_or(SignedDuration::MAX)
}

/// Go's `time.Duration` rendering for whole seconds (`10s`, `1m20s`, `5m0s`), as kubelet messages show.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(secs)
    }

    #[test]
    fn the_first_event_is_free_then_delays_double_to_five_minutes() {
        let mut b = BackOff::default();
        assert_eq!(b.remaining("c", at(0), at(0)), None, "no entry: restart at once");
        b.next("c", at(0));
        // The container exits again at 1 s: it waits 10 s from that exit.
        assert_eq!(b.remaining("c", at(1), at(3)), Some(Duration::from_secs(8)));
        assert_eq!(b.remaining("c", at(1), at(11)), None);
        let mut expected = vec![];
        let mut t = 1;
        for _ in 0..7 {
            b.next("c", at(t));
            expected.push(b.delay("c").expect("delay").as_secs());
            t += 30;
        }
        assert_eq!(expected, vec![20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_long_quiet_period_resets_the_delay() {
        let mut b = BackOff::default();
        b.next("c", at(0));
        b.next("c", at(20));
        assert_eq!(b.delay("c"), Some(Duration::from_secs(20)));
        b.next("c", at(20 + 601));
        assert_eq!(b.delay("c"), Some(INITIAL));
        assert_eq!(b.remaining("c", at(2000), at(2001)), None, "an old entry does not hold back a new event");
    }

    #[test]
    fn durations_render_like_go() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
