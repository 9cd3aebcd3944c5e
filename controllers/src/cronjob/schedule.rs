//! The standard cron schedule as upstream's CronJob controller reads it (robfig/cron's standard
//! parser): five fields (minute, hour, day of month, month, day of week) with `*`, `?`, ranges, lists,
//! steps and month/day names, or a descriptor (`@yearly`, `@monthly`, `@weekly`, `@daily`,
//! `@hourly`, `@every <duration>`). Times are UTC; only UTC time zones are supported.
//!
//! Pure: must not depend on the API client.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("expected exactly 5 fields, found {found}: {schedule}")]
    FieldCount { found: usize, schedule: String },
    #[error("failed to parse {part:?} in {schedule:?}")]
    BadValue { part: String, schedule: String },
    #[error("value {value} out of range [{min}, {max}] in {schedule:?}")]
    OutOfRange { value: u32, min: u32, max: u32, schedule: String },
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("unknown time zone {0}: only UTC is supported")]
    TimeZone(String),
}

/// A parsed schedule: bit sets of the allowed values per field, or a constant interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Whether the day-of-month / day-of-week field was `*` (then both must match, else either).
    dom_star: bool,
    dow_star: bool,
    /// `@every`: a fixed interval in seconds.
    every: Option<i64>,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
/// How far `next` searches before giving up (robfig stops after five years).
const SEARCH_DAYS: i64 = 366 * 5;

/// Checks `spec.timeZone`: unset or a UTC zone.
pub fn check_time_zone(tz: Option<&str>) -> Result<(), ScheduleError> {
    match tz {
        None | Some("UTC" | "Etc/UTC" | "Etc/GMT" | "GMT" | "Etc/Universal" | "Etc/Zulu" | "Zulu" | "Universal") => {
            Ok(())
        }
        Some(other) => Err(ScheduleError::TimeZone(other.to_string())),
    }
}

impl Schedule {
    pub fn parse(schedule: &str) -> Result<Self, ScheduleError> {
        let s = schedule.trim();
        if let Some(descriptor) = s.strip_prefix('@') {
            let five = match descriptor {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                d => {
                    let every = d.strip_prefix("every ").ok_or_else(|| ScheduleError::Descriptor(s.to_string()))?;
                    let secs = parse_duration(every.trim()).ok_or_else(|| ScheduleError::Descriptor(s.to_string()))?;
                    return Ok(Self { every: Some(secs.max(1)), ..Self::parse("* * * * *")? });
                }
            };
            return Self::parse(five);
        }
        let fields: Vec<&str> = s.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ScheduleError::FieldCount { found: fields.len(), schedule: s.to_string() });
        }
        let (minutes, _) = field(fields[0], 0, 59, &[], s)?;
        let (hours, _) = field(fields[1], 0, 23, &[], s)?;
        let (days_of_month, dom_star) = field(fields[2], 1, 31, &[], s)?;
        let (months, _) = field(fields[3], 1, 12, &MONTHS, s)?;
        let (days_of_week, dow_star) = field(fields[4], 0, 6, &DAYS, s)?;
        Ok(Self { minutes, hours, days_of_month, months, days_of_week, dom_star, dow_star, every: None })
    }

    /// The first activation strictly after `t` (whole minutes; `@every` keeps whole seconds), or `None`
    /// if there is none within five years (e.g. `0 0 30 2 *`).
    pub fn next(&self, t: Timestamp) -> Option<Timestamp> {
        if let Some(every) = self.every {
            return Timestamp::from_second(t.as_second().checked_add(every)?).ok();
        }
        let start = t.as_second().div_euclid(60) + 1;
        let first_day = start.div_euclid(1440);
        let first_minute = start.rem_euclid(1440);
        for day in first_day..first_day + SEARCH_DAYS {
            let (_, month, dom) = civil_from_days(day);
            let dow = (day + 4).rem_euclid(7);
            if !bit(self.months, month) || !self.day_matches(dom, dow) {
                continue;
            }
            let from = if day == first_day { first_minute } else { 0 };
            for minute_of_day in from..1440 {
                if bit(self.hours, minute_of_day / 60) && bit(self.minutes, minute_of_day % 60) {
                    return Timestamp::from_second((day * 1440 + minute_of_day) * 60).ok();
                }
            }
        }
        None
    }

    fn day_matches(&self, dom: i64, dow: i64) -> bool {
        let (d, w) = (bit(self.days_of_month, dom), bit(self.days_of_week, dow));
        if self.dom_star || self.dow_star {
            d && w
        } else {
            d || w
        }
    }

    /// The latest activation in `(earliest, now]` and how many activations that interval holds
    /// (capped: past 100 the search jumps ahead, so the count then only says "more than 100").
    pub fn most_recent(&self, earliest: Timestamp, now: Timestamp) -> (Option<Timestamp>, u32) {
        let mut recent = None;
        let mut missed = 0u32;
        let mut cursor = earliest;
        while let Some(t) = self.next(cursor) {
            if t > now {
                break;
            }
            recent = Some(t);
            missed = missed.saturating_add(1);
            cursor = t;
            let jump_to = now - SignedDuration::from_hours(24 * 400);
            if missed == 101 && cursor < jump_to {
                cursor = jump_to;
            }
        }
        (recent, missed)
    }
}

fn bit(set: u64, value: i64) -> bool {
    (0..64).contains(&value) && set & (1u64 << value) != 0
}

/// One field: a comma-separated list of `*`/`?`/`a`/`a-b`, each with an optional `/step`. Returns the
/// bit set and whether the field counts as a star (robfig: `*` or `?` without a step above 1).
fn field(text: &str, min: u32, max: u32, names: &[&str], schedule: &str) -> Result<(u64, bool), ScheduleError> {
    let bad = |part: &str| ScheduleError::BadValue { part: part.to_string(), schedule: schedule.to_string() };
    let value = |s: &str| -> Result<u32, ScheduleError> {
        let lower = s.to_ascii_lowercase();
        let n = match names.iter().position(|n| *n == lower) {
            Some(pos) => u32::try_from(pos).map_err(|_| bad(s))? + min,
            None => s.parse::<u32>().map_err(|_| bad(s))?,
        };
        if n < min || n > max {
            return Err(ScheduleError::OutOfRange { value: n, min, max, schedule: schedule.to_string() });
        }
        Ok(n)
    };
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| bad(part))?)),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            star = star || step.unwrap_or(1) <= 1;
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            // robfig: `a/step` means from a to the maximum.
            (a, if step.is_some() { max } else { a })
        };
        if lo > hi {
            return Err(bad(part));
        }
        let step = usize::try_from(step.unwrap_or(1)).map_err(|_| bad(part))?;
        for v in (lo..=hi).step_by(step) {
            bits |= 1u64 << v;
        }
    }
    Ok((bits, star))
}

/// A Go-style duration of hours, minutes and seconds ("1h30m", "90s", "5m"), in whole seconds.
fn parse_duration(text: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut number = String::new();
    if text.is_empty() {
        return None;
    }
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
    }
    number.is_empty().then_some(total)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn next_activation_follows_the_fields() {
        let cases = [
            ("* * * * *", "2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z"),
            ("* * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
            ("*/5 * * * *", "2026-01-01T00:03:00Z", "2026-01-01T00:05:00Z"),
            ("0 */2 * * *", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"),
            ("5/20 * * * *", "2026-01-01T00:06:00Z", "2026-01-01T00:25:00Z"),
            ("1-3,10 * * * *", "2026-01-01T00:03:00Z", "2026-01-01T00:10:00Z"),
            ("30 2 * * *", "2026-01-01T03:00:00Z", "2026-01-02T02:30:00Z"),
            ("0 0 1 * *", "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"),
            ("0 0 * * mon", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"),
            ("0 0 * * SUN", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"),
            ("0 12 * JUL *", "2026-01-01T00:00:00Z", "2026-07-01T12:00:00Z"),
            ("0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            // Both day fields restricted: either matches (the 13th, or any Friday).
            ("0 0 13 * fri", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            // Day of week restricted, day of month `*`: both must match, so only the Friday.
            ("0 0 * * fri", "2026-01-03T00:00:00Z", "2026-01-09T00:00:00Z"),
            ("@hourly", "2026-01-01T00:59:59Z", "2026-01-01T01:00:00Z"),
            ("@daily", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            ("@weekly", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"),
            ("@monthly", "2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z"),
            ("@yearly", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("@every 90s", "2026-01-01T00:00:00Z", "2026-01-01T00:01:30Z"),
            ("@every 1h30m", "2026-01-01T00:00:00Z", "2026-01-01T01:30:00Z"),
        ];
        for (schedule, after, want) in cases {
            let s = Schedule::parse(schedule).unwrap_or_else(|e| panic!("{schedule}: {e}"));
            assert_eq!(s.next(ts(after)), Some(ts(want)), "{schedule} after {after}");
        }
        assert_eq!(Schedule::parse("0 0 30 2 *").expect("parses").next(ts("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn malformed_schedules_are_rejected() {
        for bad in [
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
            "@sometimes",
            "@every",
            "@every 5x",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn most_recent_counts_missed_activations() {
        let s = Schedule::parse("*/10 * * * *").expect("parses");
        let cases = [
            ("2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", None, 0),
            ("2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", Some("2026-01-01T00:10:00Z"), 1),
            ("2026-01-01T00:00:00Z", "2026-01-01T00:35:00Z", Some("2026-01-01T00:30:00Z"), 3),
        ];
        for (earliest, now, want, missed) in cases {
            let (recent, n) = s.most_recent(ts(earliest), ts(now));
            assert_eq!(recent, want.map(ts), "{earliest}..{now}");
            assert_eq!(n, missed, "{earliest}..{now}");
        }
        let (recent, n) = s.most_recent(ts("2024-01-01T00:00:00Z"), ts("2026-01-01T00:05:00Z"));
        assert_eq!(recent, Some(ts("2026-01-01T00:00:00Z")));
        assert!(n > 100);
    }

    #[test]
    fn only_utc_time_zones_are_accepted() {
        assert!(check_time_zone(None).is_ok());
        assert!(check_time_zone(Some("Etc/UTC")).is_ok());
        assert!(check_time_zone(Some("Europe/Berlin")).is_err());
    }
}
