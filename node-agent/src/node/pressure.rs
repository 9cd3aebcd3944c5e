//! Node resource pressure, as the kubelet's eviction signals decide it: `memory.available`,
//! `nodefs.available` (the filesystem of the agent's root dir) and `pid.available` against hard
//! thresholds given in the kubelet's `--eviction-hard` syntax. Pure: readings come in as numbers.

use crate::pod::resources::parse_quantity;

/// The kubelet's default hard thresholds, plus a pid threshold (upstream has none by default).
pub const DEFAULT_EVICTION_HARD: &str = "memory.available<100Mi,nodefs.available<10%,pid.available<5%";

/// A threshold: an absolute amount or a percentage of the capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Quantity(f64),
    Percent(f64),
}

impl Threshold {
    /// Whether `available` out of `capacity` is below the threshold.
    fn crossed(self, available: f64, capacity: f64) -> bool {
        match self {
            Threshold::Quantity(q) => available < q,
            Threshold::Percent(p) => capacity > 0.0 && available < capacity * p / 100.0,
        }
    }
}

/// The thresholds of each signal (`None`: not watched).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Thresholds {
    pub memory: Option<Threshold>,
    pub nodefs: Option<Threshold>,
    pub pid: Option<Threshold>,
}

impl Thresholds {
    /// Parses `signal<value,...` (`memory.available<100Mi,nodefs.available<10%`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut t = Thresholds::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (signal, value) = item
                .split_once('<')
                .ok_or_else(|| format!("{item:?} is not SIGNAL<VALUE (e.g. memory.available<100Mi)"))?;
            let threshold = match value.strip_suffix('%') {
                Some(p) => p
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .map(Threshold::Percent)
                    .ok_or_else(|| format!("{value:?} in {item:?} is not a percentage"))?,
                None => parse_quantity(value)
                    .filter(|q| *q >= 0.0)
                    .map(Threshold::Quantity)
                    .ok_or_else(|| format!("{value:?} in {item:?} is not a quantity"))?,
            };
            match signal.trim() {
                "memory.available" => t.memory = Some(threshold),
                "nodefs.available" => t.nodefs = Some(threshold),
                "pid.available" => t.pid = Some(threshold),
                other => {
                    return Err(format!(
                        "unknown eviction signal {other:?} (known: memory.available, nodefs.available, pid.available)"
                    ))
                }
            }
        }
        Ok(t)
    }
}

/// What the node reads off the machine for the signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readings {
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub fs_total_bytes: u64,
    pub fs_available_bytes: u64,
    pub pid_max: u64,
    pub pids_in_use: u64,
}

/// Which pressures hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// The pressures `readings` show under `thresholds`.
pub fn pressure(readings: &Readings, thresholds: &Thresholds) -> Pressure {
    let r = readings;
    let check = |t: Option<Threshold>, available: u64, capacity: u64| {
        t.is_some_and(|t| capacity > 0 && t.crossed(available as f64, capacity as f64))
    };
    Pressure {
        memory: check(thresholds.memory, r.memory_available_bytes, r.memory_total_bytes),
        disk: check(thresholds.nodefs, r.fs_available_bytes, r.fs_total_bytes),
        pid: check(thresholds.pid, r.pid_max.saturating_sub(r.pids_in_use), r.pid_max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;

    fn readings() -> Readings {
        Readings {
            memory_total_bytes: 4096 * MI,
            memory_available_bytes: 2048 * MI,
            fs_total_bytes: 100 * 1024 * MI,
            fs_available_bytes: 50 * 1024 * MI,
            pid_max: 32768,
            pids_in_use: 300,
        }
    }

    #[test]
    fn default_thresholds_parse_and_a_healthy_machine_has_no_pressure() {
        let t = Thresholds::parse(DEFAULT_EVICTION_HARD).expect("defaults");
        assert_eq!(t.memory, Some(Threshold::Quantity(100.0 * MI as f64)));
        assert_eq!(t.nodefs, Some(Threshold::Percent(10.0)));
        assert_eq!(pressure(&readings(), &t), Pressure::default());
    }

    #[test]
    fn each_signal_crosses_its_threshold() {
        let t = Thresholds::parse(DEFAULT_EVICTION_HARD).expect("defaults");
        type Edit = fn(&mut Readings);
        let cases: [(Edit, Pressure); 3] = [
            (|r| r.memory_available_bytes = 99 * MI, Pressure { memory: true, ..Default::default() }),
            (|r| r.fs_available_bytes = 9 * 1024 * MI, Pressure { disk: true, ..Default::default() }),
            (|r| r.pids_in_use = 32000, Pressure { pid: true, ..Default::default() }),
        ];
        for (edit, want) in cases {
            let mut r = readings();
            edit(&mut r);
            assert_eq!(pressure(&r, &t), want, "{r:?}");
        }
        // A signal without a threshold never reports pressure; unknown capacity neither.
        let mut r = readings();
        r.memory_available_bytes = 0;
        assert!(!pressure(&r, &Thresholds::default()).memory);
        assert!(!pressure(&Readings::default(), &t).disk);
    }

    #[test]
    fn bad_specs_are_rejected_with_the_item_named() {
        for bad in ["memory.available", "memory.available<lots", "nodefs.available<150%", "cpu.available<1"] {
            let err = Thresholds::parse(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
        assert_eq!(Thresholds::parse("").expect("empty"), Thresholds::default());
    }
}
