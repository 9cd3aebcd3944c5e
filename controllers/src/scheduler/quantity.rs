//! A small parser for Kubernetes resource quantities (`100m`, `2`, `1Gi`, `512Mi`, `1e3`, `1.5`), giving
//! integer values rounded up like upstream `Quantity.Value()` / `MilliValue()`.
//!
//! Pure: must not depend on the store, HTTP or I/O.

/// Why a quantity string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is not `<sign><digits>[.<digits>]<suffix>` with a known suffix.
    #[error("invalid quantity {0:?}")]
    Invalid(String),
    /// The value does not fit in an `i64` at the requested scale.
    #[error("quantity {0:?} is out of range")]
    OutOfRange(String),
}

/// The value of `s` in whole units (bytes, cores, pods), rounded up.
pub fn parse_value(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 0)
}

/// The value of `s` in thousandths of a unit (millicores), rounded up.
pub fn parse_milli_value(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 3)
}

/// `ceil(value(s) * 10^scale10)`.
fn parse_scaled(s: &str, scale10: i32) -> Result<i64, QuantityError> {
    let invalid = || QuantityError::Invalid(s.to_string());
    let out_of_range = || QuantityError::OutOfRange(s.to_string());
    let text = s.trim();
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(invalid());
    }
    let mut mantissa: i128 = 0;
    for digit in int_part.bytes().chain(frac_part.bytes()) {
        mantissa =
            mantissa.checked_mul(10).and_then(|m| m.checked_add(i128::from(digit - b'0'))).ok_or_else(out_of_range)?;
    }
    let frac_digits = i32::try_from(frac_part.len()).map_err(|_| out_of_range())?;
    let (pow2, suffix_exp10) = parse_suffix(suffix).ok_or_else(invalid)?;
    let mut value = mantissa.checked_mul(1i128 << pow2).ok_or_else(out_of_range)?;
    let exp10 = suffix_exp10 - frac_digits + scale10;
    if exp10 >= 0 {
        for _ in 0..exp10 {
            value = value.checked_mul(10).ok_or_else(out_of_range)?;
        }
    } else {
        // Round the magnitude up for positive values and toward zero for negative ones: `ceil` either way.
        value = match 10i128.checked_pow(exp10.unsigned_abs()) {
            Some(divisor) => value / divisor + i128::from(!negative && value % divisor != 0),
            None => i128::from(!negative && value != 0),
        };
    }
    let signed = if negative { -value } else { value };
    i64::try_from(signed).map_err(|_| out_of_range())
}

/// `(power of two, power of ten)` of a suffix, or `None` if it is not one Kubernetes accepts.
fn parse_suffix(suffix: &str) -> Option<(u32, i32)> {
    let known = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        _ => {
            let exponent = suffix.strip_prefix('e').or_else(|| suffix.strip_prefix('E'))?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 4 {
                return None;
            }
            return exponent.parse::<i32>().ok().map(|e| (0, e));
        }
    };
    Some(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_like_upstream() {
        let cases: &[(&str, i64, i64)] = &[
            ("100m", 1, 100),
            ("2", 2, 2000),
            ("1Gi", 1 << 30, (1 << 30) * 1000),
            ("512Mi", 512 << 20, (512 << 20) * 1000),
            ("1e3", 1000, 1_000_000),
            ("1E3", 1000, 1_000_000),
            ("1.5", 2, 1500),
            ("0.5", 1, 500),
            ("1k", 1000, 1_000_000),
            ("1M", 1_000_000, 1_000_000_000),
            ("250u", 1, 1),
            ("0", 0, 0),
            ("1.5Gi", 3 << 29, (3 << 29) * 1000),
            ("+3", 3, 3000),
            ("-100m", 0, -100),
        ];
        for (text, value, milli) in cases {
            assert_eq!(parse_value(text), Ok(*value), "value of {text}");
            assert_eq!(parse_milli_value(text), Ok(*milli), "milli value of {text}");
        }
    }

    #[test]
    fn rejects_malformed_and_huge_quantities() {
        for text in ["", "abc", "1.2.3", "1Xi", "1e", "e3", ".", "1 Gi"] {
            assert!(matches!(parse_value(text), Err(QuantityError::Invalid(_))), "{text} should be invalid");
        }
        assert!(matches!(parse_milli_value("100E"), Err(QuantityError::OutOfRange(_))));
    }
}
