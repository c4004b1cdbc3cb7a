//! Wall-clock time for log lines, without a date library.
//!
//! A real node formats its log timestamps with chrono in local time as
//! `%Y-%m-%d %H:%M:%S` (sc-tracing's `FastLocalTime`, via sc-cli's logger setup). Containers
//! run in UTC, so UTC here prints what `docker logs` shows for a real node.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS` for a Unix time in seconds, in UTC.
pub fn format_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// The calendar year (UTC) of a Unix time in seconds.
pub fn year_utc(unix_secs: u64) -> i64 {
    civil_from_days((unix_secs / 86_400) as i64).0
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
/// Howard Hinnant's `civil_from_days` (public-domain date algorithms): eras of 400 years
/// starting in March, so the leap day is the last day of the shifted year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01 00:00:00"),
            (951_782_400, "2000-02-29 00:00:00"), // leap day of a century leap year
            (951_868_799, "2000-02-29 23:59:59"),
            (1_591_193_661, "2020-06-03 14:14:21"),
            (1_709_251_200, "2024-03-01 00:00:00"), // the day after a leap day
            (4_102_444_800, "2100-01-01 00:00:00"), // 2100 is not a leap year
        ];
        for (secs, text) in cases {
            assert_eq!(format_utc(secs), text, "for {secs}");
        }
    }

    #[test]
    fn year_follows_the_calendar() {
        assert_eq!(year_utc(0), 1970);
        assert_eq!(year_utc(1_735_689_599), 2024); // 2024-12-31 23:59:59
        assert_eq!(year_utc(1_735_689_600), 2025);
    }

    #[test]
    fn every_day_of_a_leap_cycle_is_consecutive() {
        // Walking 1600 years day by day must never skip or repeat a date.
        let mut previous = civil_from_days(-1);
        for day in 0..(400 * 366 * 4) {
            let current = civil_from_days(day);
            let (py, pm, pd) = previous;
            let next_ok = current == (py, pm, pd + 1)
                || current == (py, pm + 1, 1)
                || current == (py + 1, 1, 1);
            assert!(next_ok, "{previous:?} -> {current:?}");
            previous = current;
        }
    }
}
