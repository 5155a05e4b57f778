//! Calendar arithmetic: the fixed time window of the demo data, and the
//! dates and times of audit events and queries.
//!
//! Timestamps are seconds since the Unix epoch (UTC, no leap seconds).
//! Nothing here looks at the clock: the demo data must not depend on when it
//! is generated.

/// Seconds per day.
pub(crate) const DAY: i64 = 86_400;

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`
/// (Howard Hinnant's `days_from_civil`).
pub(crate) const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub(crate) const fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) const fn is_leap_year(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub(crate) const fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// First second of the window: customers start signing up on 2022-01-01.
pub(crate) const SIGNUP_START: i64 = days_from_civil(2022, 1, 1) * DAY;
/// Orders, events and tickets happen from 2024-01-01 ...
pub(crate) const ACTIVITY_START: i64 = days_from_civil(2024, 1, 1) * DAY;
/// ... up to and including 2025-12-31T23:59:59Z, the data set's "now".
pub(crate) const WINDOW_END: i64 = days_from_civil(2026, 1, 1) * DAY - 1;

/// `2024-03-05T10:11:12Z`.
pub(crate) fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(DAY));
    let sod = secs.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// `2024-03-05`.
pub(crate) fn iso_date((y, m, d): (i64, u32, u32)) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// The date of a timestamp.
pub(crate) const fn date_of(secs: i64) -> (i64, u32, u32) {
    civil_from_days(secs.div_euclid(DAY))
}

pub(crate) const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(rfc3339(1_709_633_472), "2024-03-05T10:11:12Z");
        assert_eq!(rfc3339(WINDOW_END), "2025-12-31T23:59:59Z");
        assert_eq!(rfc3339(SIGNUP_START), "2022-01-01T00:00:00Z");
    }

    #[test]
    fn civil_round_trips_over_two_centuries() {
        let mut expected = (1900, 1, 1);
        for z in days_from_civil(1900, 1, 1)..days_from_civil(2101, 1, 1) {
            assert_eq!(civil_from_days(z), expected);
            assert_eq!(days_from_civil(expected.0, expected.1, expected.2), z);
            let (y, m, d) = expected;
            expected = if d < days_in_month(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }
}
