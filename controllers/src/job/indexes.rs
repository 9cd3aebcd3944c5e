//! The completion indexes of Indexed Jobs: the `batch.kubernetes.io/job-completion-index` of a pod and
//! the compressed interval list of `status.completedIndexes` ("1,3-5,7").
//!
//! Pure: must not depend on the API client.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

/// Annotation (and label) carrying a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// A pod's completion index, if it has a valid one below `completions`.
pub fn pod_index(pod: &Pod, completions: i32) -> Option<i32> {
    let raw = pod.metadata.annotations.as_ref().and_then(|a| a.get(COMPLETION_INDEX))?;
    raw.parse::<i32>().ok().filter(|i| *i >= 0 && *i < completions)
}

/// Parses `status.completedIndexes`, ignoring malformed parts and indexes not below `completions`.
pub fn parse(list: Option<&str>, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in list.unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<i32>(), hi.trim().parse::<i32>()) {
            out.extend((lo.max(0)..=hi.min(completions - 1)).filter(|i| *i < completions));
        }
    }
    out
}

/// Formats indexes as upstream does: ascending, each run of consecutive indexes as `a-b`.
pub fn format(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in set {
        run = match run {
            Some((lo, hi)) if i == hi + 1 => Some((lo, i)),
            Some(r) => {
                parts.push(fmt_run(r));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        parts.push(fmt_run(r));
    }
    parts.join(",")
}

fn fmt_run((lo, hi): (i32, i32)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_round_trip() {
        let cases = [
            ("", 5, ""),
            ("1", 5, "1"),
            ("0-2,4", 5, "0-2,4"),
            ("1,2,3", 5, "1-3"),
            ("3-9", 5, "3-4"),
            ("x,1", 5, "1"),
        ];
        for (input, completions, want) in cases {
            assert_eq!(format(&parse(Some(input), completions)), want, "{input}");
        }
    }
}
