//! Printing, and the human forms of times and durations.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

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

/// A time as RFC 3339 in UTC, to the second: `2026-01-31T12:00:00Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A duration as humantime writes it: `12h`, `1h 30m`.
pub fn duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Parses a time argument: RFC 3339, e.g. `2026-01-31T12:00:00Z`.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|error| error.to_string())
}
