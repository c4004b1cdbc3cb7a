//! Diagnostics on stderr, one line each, with a UTC timestamp and a level.
//! Operator-facing output goes to stdout instead. Never pass a secret here.
use std::io::Write;

fn emit(level: &str, message: &str) {
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let _ = writeln!(err, "{} {level} {message}", timestamp());
}

pub fn info(message: &str) {
    emit("INFO", message);
}

pub fn warn(message: &str) {
    emit("WARN", message);
}

pub fn error(message: &str) {
    emit("ERROR", message);
}

/// `YYYY-MM-DDTHH:MM:SSZ` for the current time.
pub fn timestamp() -> String {
    format_utc(crate::clock::now_ms() / 1000)
}

/// Civil date from Unix seconds (Howard Hinnant's days-from-civil inverse).
pub fn format_utc(unix_s: i64) -> String {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::format_utc(1_704_724_200), "2024-01-08T14:30:00Z");
    }
}
