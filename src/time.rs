//! Time as the format sees it: whole seconds since the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; times before it count as zero.
pub(crate) fn to_unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// The time `secs` seconds after the Unix epoch, or the latest time a `SystemTime` can hold
/// when that is past it (a frame or a key ring file may carry any `u64`, and adding past the
/// platform's range would panic).
pub(crate) fn from_unix(secs: u64) -> SystemTime {
    if let Some(time) = UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        return time;
    }
    // The range is platform-dependent: search for its last whole second.
    let (mut fits, mut past) = (0, secs);
    while past - fits > 1 {
        let mid = fits + (past - fits) / 2;
        match UNIX_EPOCH.checked_add(Duration::from_secs(mid)) {
            Some(_) => fits = mid,
            None => past = mid,
        }
    }
    UNIX_EPOCH + Duration::from_secs(fits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_past_the_platform_range_saturate() {
        let latest = from_unix(u64::MAX);
        assert!(latest > from_unix(1 << 40));
        assert_eq!(from_unix(to_unix(latest)), latest);
        assert_eq!(to_unix(from_unix(1_800_000_000)), 1_800_000_000);
    }
}
