//! Printing, and the human forms of times and durations.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::failure::Failure;

/// Writes `text` to stdout in one go. A closed pipe or a full disk is an I/O failure (exit 5),
/// not a panic.
pub fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|error| Failure::io("write to", Path::new("stdout"), &error))
}

/// The last second RFC 3339's four-digit years can write: 9999-12-31T23:59:59Z.
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

/// A time as RFC 3339 in UTC, to the second: `2026-01-31T12:00:00Z`. A time RFC 3339 cannot
/// write (past year 9999, or before 1970) is shown as `@SECONDS` since the Unix epoch (as
/// `date -d @SECONDS` reads it): a valid token or ring may carry one, and humantime panics on
/// it.
pub fn rfc3339(time: SystemTime) -> String {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) if since.as_secs() <= LAST_RFC3339_SECOND => {
            humantime::format_rfc3339_seconds(time).to_string()
        }
        Ok(since) => format!("@{}", since.as_secs()),
        Err(before) => format!("@-{}", before.duration().as_secs()),
    }
}

/// A time given in whole Unix seconds (a frame's times, `0..=2^64 - 1`), exactly: as
/// [`rfc3339`] writes it up to year 9999, and past it as `@SECONDS`, every digit kept (a
/// `SystemTime` would stop at `2^63 - 1` on Linux).
pub fn unix(secs: u64) -> String {
    if secs <= LAST_RFC3339_SECOND {
        rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
    } else {
        format!("@{secs}")
    }
}

/// A duration as humantime writes it: `12h`, `1h 30m`.
pub fn duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Parses a time argument: RFC 3339, e.g. `2026-01-31T12:00:00Z`.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_prints() {
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let cases = [
            (at(0), "1970-01-01T00:00:00Z"),
            (at(LAST_RFC3339_SECOND), "9999-12-31T23:59:59Z"),
            (at(LAST_RFC3339_SECOND + 1), "@253402300800"),
            (at(u64::MAX / 2), "@9223372036854775807"),
            (UNIX_EPOCH - Duration::from_secs(5), "@-5"),
        ];
        for (time, shown) in cases {
            assert_eq!(rfc3339(time), shown);
        }
        let exact = [
            (0, "1970-01-01T00:00:00Z"),
            (LAST_RFC3339_SECOND, "9999-12-31T23:59:59Z"),
            (LAST_RFC3339_SECOND + 1, "@253402300800"),
            (1 << 63, "@9223372036854775808"),
            (u64::MAX, "@18446744073709551615"),
        ];
        for (secs, shown) in exact {
            assert_eq!(unix(secs), shown);
        }
    }
}
