//! Wall-clock time in unix milliseconds, and how the API spells a time.

use time::OffsetDateTime;
use time::macros::format_description;

/// Now, in unix milliseconds, by the system clock (which may step back or forward).
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The seed's style, `2025-11-12T12:00:00.123+00:00`, always UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+00:00"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_seed() {
        assert_eq!(format_ms(1_762_948_800_123), "2025-11-12T12:00:00.123+00:00");
        assert_eq!(
            protocol::validate::parse_ts(&format_ms(1_762_948_800_123)),
            Ok(1_762_948_800_123)
        );
    }
}
