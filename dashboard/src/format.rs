//! Units people read: percentages, binary byte sizes, rates, "ago" times and local clock times.
//!
//! Every function is pure (the caller passes "now" and the time-zone offset), so the same text
//! comes out in the browser, in server-side rendering and in tests.

const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// A fraction 0..1 as a percentage with one decimal, or a dash when unknown.
pub(crate) fn percent(fraction: Option<f64>) -> String {
    match fraction {
        Some(f) if f.is_finite() => format!("{:.1} %", f * 100.0),
        _ => "–".to_owned(),
    }
}

/// Bytes in binary units with three significant figures: `512 B`, `1.50 KiB`, `12.3 GiB`.
pub(crate) fn bytes(value: f64) -> String {
    if !value.is_finite() || value < 0.0 {
        return "–".to_owned();
    }
    let mut v = value;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else if v < 10.0 {
        format!("{v:.2} {}", UNITS[unit])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// Bytes per second, as `bytes` with `/s`.
pub(crate) fn rate(bps: Option<f64>) -> String {
    match bps {
        Some(v) if v.is_finite() && v >= 0.0 => format!("{}/s", bytes(v)),
        _ => "–".to_owned(),
    }
}

/// Elapsed seconds as "3 s ago", "5 min ago", "2 h ago", "4 d ago"; "just now" under a second.
pub(crate) fn ago(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "never".to_owned();
    }
    // A clock a little ahead of ours must not read "-1 s ago".
    let s = seconds.max(0.0) as u64;
    match s {
        0 => "just now".to_owned(),
        1..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// An uptime as "3 d 4 h", "5 h 12 min" or "42 min".
pub(crate) fn duration(seconds: u64) -> String {
    let (d, h, m) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    }
}

fn civil(unix_ms: i64, offset_min: i32) -> Option<time::PrimitiveDateTime> {
    let local_ms = unix_ms + i64::from(offset_min) * 60_000;
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(local_ms) * 1_000_000).ok()?;
    Some(time::PrimitiveDateTime::new(t.date(), t.time()))
}

/// `YYYY-MM-DD HH:MM:SS` on the local clock.
pub(crate) fn date_time(unix_ms: i64, offset_min: i32) -> String {
    civil(unix_ms, offset_min)
        .map(|t| {
            format!(
                "{}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|| "–".to_owned())
}

/// An RFC 3339 time from the API as [`date_time`] on the local clock, or as sent when it does
/// not parse.
pub(crate) fn local_ts(ts: &str, offset_min: i32) -> String {
    parse_ts(ts).map_or_else(|| ts.to_owned(), |ms| date_time(ms, offset_min))
}

/// A chart's axis label: the clock for short ranges, day and hour for long ones.
pub(crate) fn axis_time(unix_ms: i64, offset_min: i32, span_ms: i64) -> String {
    match civil(unix_ms, offset_min) {
        Some(t) if span_ms > 2 * 86_400_000 => {
            format!("{:02}-{:02} {:02}:{:02}", u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        Some(t) if span_ms > 3_600_000 => format!("{:02}:{:02}", t.hour(), t.minute()),
        Some(t) => format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
        None => "–".to_owned(),
    }
}

/// An RFC 3339 time from the API as unix milliseconds.
pub(crate) fn parse_ts(ts: &str) -> Option<i64> {
    protocol::validate::parse_ts(ts).ok()
}

/// `name (pid 42) · 1.00 MiB`, leaving out what the agent did not send.
pub(crate) fn process_details(name: Option<&str>, pid: Option<u32>, rss: Option<u64>) -> String {
    let mut out = name.unwrap_or("?").to_owned();
    if let Some(pid) = pid {
        out.push_str(&format!(" (pid {pid})"));
    }
    if let Some(rss) = rss {
        out.push_str(" · ");
        out.push_str(&bytes(rss as f64));
    }
    out
}

/// Memory used as a fraction of the total, when both are known.
pub(crate) fn used_fraction(free: Option<u64>, total: Option<u64>) -> Option<f64> {
    match (free, total) {
        (Some(free), Some(total)) if total > 0 => Some(1.0 - free.min(total) as f64 / total as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_details_leave_out_what_is_unknown() {
        assert_eq!(process_details(Some("a.exe"), Some(4), Some(1024)), "a.exe (pid 4) · 1.00 KiB");
        assert_eq!(process_details(Some("a.exe"), None, None), "a.exe");
        assert_eq!(process_details(None, Some(4), None), "? (pid 4)");
    }

    #[test]
    fn percentages_have_one_decimal() {
        assert_eq!(percent(Some(0.3216)), "32.2 %");
        assert_eq!(percent(Some(1.0)), "100.0 %");
        assert_eq!(percent(None), "–");
        assert_eq!(percent(Some(f64::NAN)), "–");
    }

    #[test]
    fn bytes_use_binary_units_and_three_figures() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1536.0), "1.50 KiB");
        assert_eq!(bytes(134_217_728.0), "128 MiB");
        assert_eq!(bytes(12.34 * 1024.0 * 1024.0 * 1024.0), "12.3 GiB");
        assert_eq!(bytes(5.0 * 1024f64.powi(5)), "5120 TiB");
        assert_eq!(bytes(-1.0), "–");
        assert_eq!(rate(Some(2048.0)), "2.00 KiB/s");
        assert_eq!(rate(None), "–");
    }

    #[test]
    fn ago_picks_the_largest_whole_unit() {
        assert_eq!(ago(0.4), "just now");
        assert_eq!(ago(-3.0), "just now");
        assert_eq!(ago(3.9), "3 s ago");
        assert_eq!(ago(59.0), "59 s ago");
        assert_eq!(ago(60.0), "1 min ago");
        assert_eq!(ago(7200.0), "2 h ago");
        assert_eq!(ago(3.0 * 86_400.0), "3 d ago");
        assert_eq!(ago(f64::INFINITY), "never");
    }

    #[test]
    fn durations_show_two_units() {
        assert_eq!(duration(42 * 60), "42 min");
        assert_eq!(duration(5 * 3600 + 12 * 60), "5 h 12 min");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 59), "3 d 4 h");
    }

    #[test]
    fn local_times_apply_the_offset() {
        // 2025-11-12T12:00:00Z
        let t = 1_762_948_800_000;
        assert_eq!(date_time(t, 90), "2025-11-12 13:30:00");
        assert_eq!(date_time(t, -300), "2025-11-12 07:00:00");
        assert_eq!(date_time(t, 60), "2025-11-12 13:00:00");
        assert_eq!(date_time(t - 13 * 3_600_000, 0), "2025-11-11 23:00:00");
        assert_eq!(axis_time(t, 0, 600_000), "12:00:00");
        assert_eq!(axis_time(t, 0, 86_400_000), "12:00");
        assert_eq!(axis_time(t, 0, 7 * 86_400_000), "11-12 12:00");
    }

    #[test]
    fn timestamps_parse_to_milliseconds() {
        assert_eq!(parse_ts("2025-11-12T12:00:00+00:00"), Some(1_762_948_800_000));
        assert_eq!(parse_ts("2025-11-12T13:00:00.5+01:00"), Some(1_762_948_800_500));
        assert_eq!(parse_ts("yesterday"), None);
    }

    #[test]
    fn api_times_read_on_the_local_clock_or_as_sent() {
        assert_eq!(local_ts("2025-11-12T12:00:00Z", 60), "2025-11-12 13:00:00");
        assert_eq!(local_ts("2025-11-12T13:00:00+01:00", -300), "2025-11-12 07:00:00");
        assert_eq!(local_ts("yesterday", 60), "yesterday");
    }

    #[test]
    fn used_fraction_needs_both_figures() {
        assert_eq!(used_fraction(Some(25), Some(100)), Some(0.75));
        assert_eq!(used_fraction(Some(200), Some(100)), Some(0.0));
        assert_eq!(used_fraction(Some(1), None), None);
        assert_eq!(used_fraction(Some(1), Some(0)), None);
    }
}
