//! Resource quantities (`100m`, `1Gi`, `2e3`, `1.5`) parsed into an exact count of nano-units, so
//! requests and limits compare exactly.
//!
//! Pure; must not depend on anything outside this module.

use std::cmp::Ordering;

/// The message upstream gives for a quantity that does not parse.
pub const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A quantity that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {QUANTITY_FORMAT}")]
pub struct QuantityError {
    pub input: String,
}

/// A parsed quantity: `nanos` is the value times 10^9, rounded up, saturating at the i128 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    pub nanos: i128,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    pub fn parse(input: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError { input: input.to_string() };
        let (negative, rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(err());
        }
        // The value is digits × 10^exp10 × 2^exp2.
        let (exp10, exp2) = suffix_exponents(suffix).ok_or_else(err)?;
        let digits = format!("{whole}{fraction}");
        let exp10 = exp10 - fraction.len() as i32;
        let mut value =
            digits.bytes().fold(0i128, |acc, d| acc.saturating_mul(10).saturating_add(i128::from(d - b'0')));
        value = value.saturating_mul(2i128.saturating_pow(exp2));
        // Scale to nanos: multiply by 10^(exp10 + 9), rounding up when dividing.
        let scale = exp10 + 9;
        if scale >= 0 {
            value = value.saturating_mul(10i128.saturating_pow(scale.unsigned_abs()));
        } else {
            let divisor = 10i128.checked_pow(scale.unsigned_abs()).unwrap_or(i128::MAX);
            value = value / divisor + i128::from(value % divisor != 0);
        }
        Ok(Self { nanos: if negative { -value } else { value } })
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

impl PartialOrd<i64> for Quantity {
    fn partial_cmp(&self, other: &i64) -> Option<Ordering> {
        Some(self.nanos.cmp(&(i128::from(*other) * NANO)))
    }
}

impl PartialEq<i64> for Quantity {
    fn eq(&self, other: &i64) -> bool {
        self.nanos == i128::from(*other) * NANO
    }
}

/// Powers of ten and of two a suffix stands for: SI (`m`, `k`, `G`), binary (`Ki`, `Gi`) or a
/// decimal exponent (`e3`, `E-2`).
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    let si = match suffix {
        "" => Some((0, 0)),
        "n" => Some((-9, 0)),
        "u" => Some((-6, 0)),
        "m" => Some((-3, 0)),
        "k" => Some((3, 0)),
        "M" => Some((6, 0)),
        "G" => Some((9, 0)),
        "T" => Some((12, 0)),
        "P" => Some((15, 0)),
        "E" => Some((18, 0)),
        "Ki" => Some((0, 10)),
        "Mi" => Some((0, 20)),
        "Gi" => Some((0, 30)),
        "Ti" => Some((0, 40)),
        "Pi" => Some((0, 50)),
        "Ei" => Some((0, 60)),
        _ => None,
    };
    if si.is_some() {
        return si;
    }
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
        return None;
    }
    exponent.parse::<i32>().ok().map(|e| (e, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_forms() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("1", NANO),
            ("100m", NANO / 10),
            ("1.5", 3 * NANO / 2),
            ("0.5", NANO / 2),
            (".5", NANO / 2),
            ("2e3", 2000 * NANO),
            ("2E3", 2000 * NANO),
            ("1e-3", NANO / 1000),
            ("1k", 1000 * NANO),
            ("1Ki", 1024 * NANO),
            ("1Gi", 1024 * 1024 * 1024 * NANO),
            ("1.5Gi", 3 * 512 * 1024 * 1024 * NANO),
            ("128974848", 128_974_848 * NANO),
            ("129M", 129_000_000 * NANO),
            ("123Mi", 123 * 1024 * 1024 * NANO),
            ("1E", 1_000_000_000_000_000_000 * NANO),
            ("5n", 5),
            ("1.5n", 2),
            ("-1", -NANO),
            ("+2", 2 * NANO),
        ];
        for (input, nanos) in cases {
            assert_eq!(Quantity::parse(input).map(|q| q.nanos), Ok(*nanos), "{input}");
        }
    }

    #[test]
    fn rejects_malformed_quantities() {
        for input in ["", "abc", "1x", "1.2.3", "Gi", "1 Gi", "1gi", "1e", "--1", "."] {
            let err = Quantity::parse(input).expect_err(input);
            assert!(err.to_string().contains("quantities must match"), "{input}");
        }
    }

    #[test]
    fn compares_across_units() {
        let q = |s: &str| Quantity::parse(s).expect(s);
        assert!(q("500m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1000m"), q("1"));
        assert!(q("1") == 1);
        assert!(q("0").is_zero());
        assert!(q("-1m").is_negative());
    }
}
