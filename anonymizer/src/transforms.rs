//! Per-column transforms of an export: generalization (numeric ranges,
//! dates to month or year, birth dates to age bands, zip prefixes), time
//! truncation, bounded numeric noise from a CSPRNG, and keyed pseudonyms
//! with a key per dataset, so tokens from two datasets cannot be joined.
//!
//! Values are text in and text out (the gateway's JSON rows as strings);
//! a value a transform cannot read is an error naming it, never passed
//! through untransformed.

use std::fmt;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Why a value could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("`{value}` is not {expected} ({transform})")]
    BadValue {
        transform: &'static str,
        expected: &'static str,
        value: String,
    },
    #[error("{0}")]
    BadParameter(String),
    #[error("the system random number generator failed")]
    Random,
}

fn bad(transform: &'static str, expected: &'static str, value: &str) -> TransformError {
    TransformError::BadValue {
        transform,
        expected,
        value: value.chars().take(64).collect(),
    }
}

/// `value` generalized to the range of `width` it falls in, as
/// `"lo-hi"` (inclusive, integers): 37 with width 10 → `"30-39"`.
pub fn numeric_range(value: &str, width: i64) -> Result<String, TransformError> {
    if width <= 0 {
        return Err(TransformError::BadParameter(format!(
            "a range width must be positive, got {width}"
        )));
    }
    let v = parse_number(value).ok_or_else(|| bad("range", "a number", value))?;
    let lo = (v / width as f64).floor() as i64 * width;
    Ok(format!("{lo}-{}", lo + width - 1))
}

fn parse_number(value: &str) -> Option<f64> {
    value.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A calendar date `YYYY-MM-DD` (or the date part of an RFC 3339 time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// Parses `YYYY-MM-DD`, optionally followed by `T...`.
    pub fn parse(value: &str) -> Option<Date> {
        let date = value.trim().get(..10)?;
        let mut parts = date.split('-');
        let year = parts.next()?.parse().ok()?;
        let month: u32 = parts.next()?.parse().ok()?;
        let day: u32 = parts.next()?.parse().ok()?;
        let rest = &value.trim()[10..];
        let valid_rest = rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ');
        let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        (valid && valid_rest).then_some(Date { year, month, day })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A date generalized to its month: `2024-03-17` → `"2024-03"`.
pub fn date_to_month(value: &str) -> Result<String, TransformError> {
    let d = Date::parse(value).ok_or_else(|| bad("month", "a date", value))?;
    Ok(format!("{:04}-{:02}", d.year, d.month))
}

/// A date generalized to its year: `2024-03-17` → `"2024"`.
pub fn date_to_year(value: &str) -> Result<String, TransformError> {
    let d = Date::parse(value).ok_or_else(|| bad("year", "a date", value))?;
    Ok(format!("{:04}", d.year))
}

/// Whole years from `birth` to `on`.
pub fn age_on(birth: Date, on: Date) -> i32 {
    let mut age = on.year - birth.year;
    if (on.month, on.day) < (birth.month, birth.day) {
        age -= 1;
    }
    age
}

/// A birth date generalized to the age band of `width` years it gives on
/// `on`: born 1985-06-01, on 2026-11-26, width 5 → `"40-44"`. Bands are
/// aligned to multiples of the width; ages of 90 and over are one band
/// (`"90+"`), as HIPAA's Safe Harbor asks, since few people are that old.
pub fn age_band(value: &str, on: Date, width: i32) -> Result<String, TransformError> {
    if width <= 0 {
        return Err(TransformError::BadParameter(format!(
            "an age band width must be positive, got {width}"
        )));
    }
    let birth = Date::parse(value).ok_or_else(|| bad("age_band", "a birth date", value))?;
    let age = age_on(birth, on);
    if age < 0 {
        return Err(bad("age_band", "a birth date in the past", value));
    }
    if age >= 90 {
        return Ok("90+".to_owned());
    }
    let lo = age / width * width;
    Ok(format!("{lo}-{}", (lo + width - 1).min(89)))
}

/// The first `digits` characters of a zip code, the rest dropped:
/// `"94107"`, 3 → `"941"`. Shorter codes are kept whole only if they are
/// no longer than the prefix (a 3-digit zip stays as it is).
pub fn zip_prefix(value: &str, digits: usize) -> Result<String, TransformError> {
    let zip = value.trim();
    if zip.is_empty()
        || !zip
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        return Err(bad("zip_prefix", "a postal code", value));
    }
    Ok(zip.chars().take(digits).collect())
}

/// Where a time is truncated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Hour,
    Day,
}

/// An RFC 3339 UTC time truncated: `2024-03-17T14:35:09Z` → hour
/// `"2024-03-17T14:00:00Z"`, day `"2024-03-17T00:00:00Z"`. Times with an
/// offset other than `Z`/`+00:00` are refused rather than truncated in the
/// wrong zone.
pub fn truncate_time(value: &str, unit: TimeUnit) -> Result<String, TransformError> {
    let v = value.trim();
    let date = Date::parse(v).ok_or_else(|| bad("truncate", "an RFC 3339 time", value))?;
    let time = v
        .get(11..)
        .ok_or_else(|| bad("truncate", "an RFC 3339 time", value))?;
    let hour: u32 = time
        .get(..2)
        .and_then(|h| h.parse().ok())
        .filter(|h| *h < 24)
        .ok_or_else(|| bad("truncate", "an RFC 3339 time", value))?;
    let zone_ok = v.ends_with('Z') || v.ends_with("+00:00") || v.ends_with("+0000");
    if !zone_ok {
        return Err(bad("truncate", "a UTC time (Z or +00:00)", value));
    }
    // Exports truncate millions of these: build the text directly, no
    // formatting machinery (the date's own digits when they are canonical).
    let mut out = String::with_capacity(20);
    match v.get(..10).filter(|d| canonical_date(d)) {
        Some(digits) => out.push_str(digits),
        None => out.push_str(&date.to_string()),
    }
    out.push('T');
    match unit {
        TimeUnit::Hour => {
            out.push(char::from(b'0' + (hour / 10) as u8));
            out.push(char::from(b'0' + (hour % 10) as u8));
        }
        TimeUnit::Day => out.push_str("00"),
    }
    out.push_str(":00:00Z");
    Ok(out)
}

/// `YYYY-MM-DD` exactly (digits and dashes in place), as [`Date`] prints.
fn canonical_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Adds integer noise drawn uniformly from `[-bound, bound]` by the
/// operating system's CSPRNG (rejection sampling, no modulo bias). For
/// perturbing counts and amounts so exact values cannot be matched; not a
/// differential-privacy mechanism (that is for aggregates).
pub struct BoundedNoise {
    bound: u64,
    rng: SystemRandom,
}

impl BoundedNoise {
    pub fn new(bound: u64) -> Result<BoundedNoise, TransformError> {
        if bound > (1 << 40) {
            return Err(TransformError::BadParameter(format!(
                "noise bound {bound} is implausibly large"
            )));
        }
        Ok(BoundedNoise {
            bound,
            rng: SystemRandom::new(),
        })
    }

    /// `value` plus noise; integers stay integers, decimals keep two places.
    pub fn apply(&self, value: &str) -> Result<String, TransformError> {
        let trimmed = value.trim();
        let noise = self.draw()?;
        if let Ok(v) = trimmed.parse::<i64>() {
            return Ok(v.saturating_add(noise).to_string());
        }
        let v = parse_number(trimmed).ok_or_else(|| bad("noise", "a number", value))?;
        Ok(format!("{:.2}", v + noise as f64))
    }

    fn draw(&self) -> Result<i64, TransformError> {
        let span = 2 * self.bound + 1;
        // The largest multiple of span that fits: values at or above it are
        // redrawn, so every outcome is equally likely.
        let limit = u64::MAX - (u64::MAX % span);
        loop {
            let mut bytes = [0u8; 8];
            self.rng
                .fill(&mut bytes)
                .map_err(|_| TransformError::Random)?;
            let x = u64::from_le_bytes(bytes);
            if x < limit {
                return Ok((x % span) as i64 - self.bound as i64);
            }
        }
    }
}

/// Keyed pseudonyms for one dataset: HMAC-SHA256 under a key derived from
/// the export secret and the dataset's name, so the same value gets the
/// same token throughout a dataset (joins and counts inside it work) and
/// unrelated tokens in another dataset (two exports cannot be joined).
pub struct DatasetPseudonymizer {
    key: hmac::Key,
}

impl DatasetPseudonymizer {
    /// `secret`: the export key from the vault; `dataset`: the dataset name.
    pub fn new(secret: &[u8; 32], dataset: &str) -> DatasetPseudonymizer {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let mut context = b"privet dataset pseudonym key\0".to_vec();
        context.extend_from_slice(dataset.as_bytes());
        let derived = hmac::sign(&root, &context);
        DatasetPseudonymizer {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// `"p_"` and 24 hex digits (96 bits: collisions stay negligible for
    /// any dataset size while tokens stay short).
    pub fn token(&self, value: &str) -> String {
        let tag = hmac::sign(&self.key, value.as_bytes());
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(26);
        out.push_str("p_");
        for b in &tag.as_ref()[..12] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ranges_are_aligned_and_inclusive() {
        assert_eq!(numeric_range("37", 10).unwrap(), "30-39");
        assert_eq!(numeric_range("30", 10).unwrap(), "30-39");
        assert_eq!(numeric_range("-1", 10).unwrap(), "-10--1");
        assert_eq!(numeric_range("1234.5", 100).unwrap(), "1200-1299");
        assert!(numeric_range("abc", 10).is_err());
        assert!(numeric_range("NaN", 10).is_err());
        assert!(numeric_range("5", 0).is_err());
    }

    #[test]
    fn dates_generalize_to_month_and_year_and_bad_dates_are_refused() {
        assert_eq!(date_to_month("2024-03-17").unwrap(), "2024-03");
        assert_eq!(date_to_month("2024-03-17T10:00:00Z").unwrap(), "2024-03");
        assert_eq!(date_to_year("2024-03-17").unwrap(), "2024");
        for bad_value in [
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "17.03.2024",
            "",
            "2024-03-17x",
        ] {
            assert!(date_to_month(bad_value).is_err(), "{bad_value}");
        }
        assert!(date_to_month("2024-02-29").is_ok());
    }

    #[test]
    fn age_bands_count_birthdays_and_cap_at_ninety() {
        let on = Date::parse("2026-11-26").unwrap();
        assert_eq!(age_band("1985-06-01", on, 5).unwrap(), "40-44");
        // Birthday tomorrow: still 39.
        assert_eq!(age_band("1986-11-27", on, 5).unwrap(), "35-39");
        assert_eq!(age_band("1986-11-26", on, 5).unwrap(), "40-44");
        assert_eq!(age_band("1930-01-01", on, 5).unwrap(), "90+");
        assert_eq!(age_band("1937-01-01", on, 5).unwrap(), "85-89");
        assert!(age_band("2030-01-01", on, 5).is_err());
        assert!(age_band("1985-06-01", on, 0).is_err());
    }

    #[test]
    fn zip_prefixes_and_time_truncation() {
        assert_eq!(zip_prefix("94107", 3).unwrap(), "941");
        assert_eq!(zip_prefix("SW1A 1AA", 3).unwrap(), "SW1");
        assert!(zip_prefix("", 3).is_err());
        assert!(zip_prefix("9410'; --", 3).is_err());
        assert_eq!(
            truncate_time("2024-03-17T14:35:09Z", TimeUnit::Hour).unwrap(),
            "2024-03-17T14:00:00Z"
        );
        assert_eq!(
            truncate_time("2024-03-17T14:35:09.123+00:00", TimeUnit::Day).unwrap(),
            "2024-03-17T00:00:00Z"
        );
        assert!(truncate_time("2024-03-17T14:35:09+02:00", TimeUnit::Hour).is_err());
        assert!(truncate_time("2024-03-17T25:00:00Z", TimeUnit::Hour).is_err());
        assert!(truncate_time("yesterday", TimeUnit::Hour).is_err());
    }

    #[test]
    fn noise_stays_within_its_bound_and_covers_it() {
        let noise = BoundedNoise::new(3).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let v: i64 = noise.apply("100").unwrap().parse().unwrap();
            assert!((97..=103).contains(&v), "{v}");
            seen.insert(v);
        }
        // All 7 outcomes appear (probability of missing one in 2000 draws
        // is below 1e-130).
        assert_eq!(seen.len(), 7);
        let d: f64 = noise.apply("10.50").unwrap().parse().unwrap();
        assert!((7.5..=13.5).contains(&d));
        assert!(noise.apply("ten").is_err());
        assert_eq!(BoundedNoise::new(0).unwrap().apply("5").unwrap(), "5");
    }

    #[test]
    fn pseudonyms_are_stable_within_and_unlinkable_across_datasets() {
        let secret = [9u8; 32];
        let recs = DatasetPseudonymizer::new(&secret, "recommendations");
        let again = DatasetPseudonymizer::new(&secret, "recommendations");
        let marketing = DatasetPseudonymizer::new(&secret, "marketing");
        let other_secret = DatasetPseudonymizer::new(&[8u8; 32], "recommendations");
        let t = recs.token("customer:42");
        assert_eq!(t, again.token("customer:42"));
        assert_eq!(t.len(), 26);
        assert!(t.starts_with("p_"));
        assert_ne!(t, recs.token("customer:43"));
        assert_ne!(t, marketing.token("customer:42"));
        assert_ne!(t, other_secret.token("customer:42"));
        // No token of one dataset appears among the other's for the same ids.
        let a: std::collections::HashSet<_> =
            (0..1000).map(|i| recs.token(&i.to_string())).collect();
        assert!((0..1000).all(|i| !a.contains(&marketing.token(&i.to_string()))));
    }
}
