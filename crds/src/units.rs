//! Duration strings (`15m`, `1h30m`, `14d`) and size strings (`16Ki`, `1Gi`) as they appear in
//! specs. The CEL rules on the API types accept exactly what these parsers accept, so a value
//! admitted by the API server always parses here.

use std::time::Duration;

use crate::{Error, Result};

/// The regular expression the API server applies to duration fields.
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";
/// The regular expression the API server applies to size fields.
pub const SIZE_PATTERN: &str = "^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$";

/// The size suffixes and what they multiply by, as [`parse_size`] reads them.
const SIZE_SUFFIXES: [(&str, u64); 9] = [
    ("", 1),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
];

/// A regular expression (RE2, as CEL's `matches` takes) for the decimal numbers 0 to `n`
/// without leading zeros.
fn at_most(n: u64) -> String {
    let digits: Vec<u8> = n.to_string().bytes().map(|b| b - b'0').collect();
    let mut alternatives = vec!["0".to_string()];
    if digits.len() >= 2 {
        // Every number with fewer digits than n.
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", digits.len() - 2));
    }
    for (i, &digit) in digits.iter().enumerate() {
        // n's first i digits, then a smaller digit (no leading zero), then anything.
        let lowest = u8::from(i == 0);
        if digit > lowest {
            let prefix: String = digits[..i].iter().map(|d| char::from(b'0' + d)).collect();
            let class = if digit - 1 == lowest {
                lowest.to_string()
            } else {
                format!("[{lowest}-{}]", digit - 1)
            };
            alternatives.push(format!("{prefix}{class}[0-9]{{{}}}", digits.len() - i - 1));
        }
    }
    alternatives.push(n.to_string());
    alternatives.join("|")
}

/// A regular expression for the size strings ([`SIZE_PATTERN`]) whose value is at most
/// `limit` bytes: the admission rule of a bounded size field, computed rather than written by
/// hand so that it agrees with [`parse_size`].
pub fn size_at_most_pattern(limit: u64) -> String {
    let alternatives: Vec<String> = SIZE_SUFFIXES
        .iter()
        .map(|(suffix, multiplier)| format!("0*({}){suffix}", at_most(limit / multiplier)))
        .collect();
    format!("^({})$", alternatives.join("|"))
}

/// Parses a duration such as `90s`, `15m`, `1h30m` or `14d`.
pub fn parse_duration(value: &str) -> Result<Duration> {
    let invalid = |reason| Error::InvalidDuration {
        value: value.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut total: u64 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid("expected a number before each unit"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("a number is too large"))?;
        rest = &rest[digits..];
        let (unit_millis, unit_len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.bytes().next() {
                Some(b's') => (1_000, 1),
                Some(b'm') => (60_000, 1),
                Some(b'h') => (3_600_000, 1),
                Some(b'd') => (86_400_000, 1),
                Some(_) => return Err(invalid("units are ms, s, m, h and d")),
                None => return Err(invalid("a number has no unit")),
            }
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit_millis)
            .and_then(|millis| total.checked_add(millis))
            .ok_or_else(|| invalid("it is too long"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Parses a size in bytes such as `512`, `16Ki`, `5Mi`, `1Gi` or `2G`.
pub fn parse_size(value: &str) -> Result<u64> {
    let invalid = |reason| Error::InvalidSize {
        value: value.to_string(),
        reason,
    };
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(invalid("expected a number"));
    }
    let number: u64 = value[..digits]
        .parse()
        .map_err(|_| invalid("the number is too large"))?;
    let Some((_, multiplier)) = SIZE_SUFFIXES
        .iter()
        .find(|(suffix, _)| *suffix == &value[digits..])
    else {
        return Err(invalid("suffixes are Ki, Mi, Gi, Ti, k, M, G and T"));
    };
    number
        .checked_mul(*multiplier)
        .ok_or_else(|| invalid("it is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_combine_units() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("14d").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn malformed_durations_name_the_value() {
        for bad in ["", "15", "m", "1w", "1.5h", "-1m", "99999999999999999999s"] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn numbers_up_to_a_bound_are_matched_digit_by_digit() {
        assert_eq!(at_most(0), "0|0");
        assert_eq!(at_most(7), "0|[1-6][0-9]{0}|7");
        assert_eq!(
            at_most(256),
            "0|[1-9][0-9]{0,1}|1[0-9]{2}|2[0-4][0-9]{1}|25[0-5][0-9]{0}|256"
        );
    }

    #[test]
    fn sizes_use_binary_and_decimal_suffixes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("16Ki").unwrap(), 16 * 1024);
        assert_eq!(parse_size("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_size("2G").unwrap(), 2_000_000_000);
        assert!(parse_size("1GB").unwrap_err().to_string().contains("\"1GB\""));
        assert!(parse_size("Gi").is_err());
    }
}
