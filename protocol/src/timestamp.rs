//! ISO 8601 times as the seed's clients write them.
//!
//! RFC 3339 alone is too strict for them: .NET writes seven fractional digits, scripts write a
//! space instead of `T` or leave the offset out (pydantic took all of these). A time without an
//! offset is taken as UTC, as the seed stored it.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Unix milliseconds of `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][Z|±HH[:MM]|±HHMM]`, or `None`.
/// Fraction digits past the ninth are dropped.
pub(crate) fn parse_iso8601_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let mut at = Cursor { b, i: 0 };
    let year = at.digits(4)?;
    at.expect(b'-')?;
    let month = at.digits(2)?;
    at.expect(b'-')?;
    let day = at.digits(2)?;
    if !matches!(at.next()?, b'T' | b't' | b' ') {
        return None;
    }
    let hour = at.digits(2)?;
    at.expect(b':')?;
    let minute = at.digits(2)?;
    let (mut second, mut nanos) = (0, 0);
    if at.peek() == Some(b':') {
        at.i += 1;
        second = at.digits(2)?;
        if matches!(at.peek(), Some(b'.' | b',')) {
            at.i += 1;
            nanos = at.fraction()?;
        }
    }
    let offset_s = match at.next() {
        None => 0,
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hours = at.digits(2)?;
            if at.peek() == Some(b':') {
                at.i += 1;
            }
            let minutes = if at.peek().is_some() { at.digits(2)? } else { 0 };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let s = i32::try_from(hours * 3600 + minutes * 60).ok()?;
            if sign == b'-' { -s } else { s }
        }
        Some(_) => return None,
    };
    if at.peek().is_some() {
        return None;
    }
    let date = Date::from_calendar_date(
        i32::try_from(year).ok()?,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let offset = UtcOffset::from_whole_seconds(offset_s).ok()?;
    let at: OffsetDateTime = PrimitiveDateTime::new(date, time).assume_offset(offset);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }

    /// At least one digit; nanoseconds from the first nine.
    fn fraction(&mut self) -> Option<u32> {
        let start = self.i;
        let mut nanos = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            if self.i - start < 9 {
                nanos = nanos * 10 + u32::from(c - b'0');
            }
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 {
            return None;
        }
        Some(nanos * 10u32.pow(9usize.saturating_sub(n) as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::format_description::well_known::Rfc3339;

    const NOON: i64 = 1_762_948_800_000;

    #[test]
    fn the_forms_clients_write_are_read() {
        for (text, ms) in [
            ("2025-11-12T12:00:00+00:00", NOON),
            ("2025-11-12T12:00:00Z", NOON),
            ("2025-11-12t12:00:00z", NOON),
            ("2025-11-12T12:00:00.1234567Z", NOON + 123),
            ("2025-11-12T13:00:00.9999999+01:00", NOON + 999),
            ("2025-11-12T12:00:00.123456789123Z", NOON + 123),
            ("2025-11-12 12:00:00", NOON),
            ("2025-11-12T12:00", NOON),
            ("2025-11-12T12:00:00,5Z", NOON + 500),
            ("2025-11-12T07:00:00-0500", NOON),
            ("2025-11-12T14:00:00+02", NOON),
        ] {
            assert_eq!(parse_iso8601_ms(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "yesterday",
            "2025-11-12",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-11-12T24:00:00Z",
            "2025-11-12T12:00:00.Z",
            "2025-11-12T12:00:00+25:00",
            "2025-11-12T12:00:00Zjunk",
            "2025-11-12T12:00:00+01:0",
            "1731415200",
            "2025-11-12T12:00:00 +00:00",
        ] {
            assert_eq!(parse_iso8601_ms(text), None, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_answered_without_a_panic(text in ".{0,40}") {
            let _ = parse_iso8601_ms(&text);
        }

        #[test]
        fn every_rfc3339_time_reads_as_the_time_crate_reads_it(
            secs in -60_000_000_000i64..250_000_000_000, nanos in 0u32..1_000_000_000,
            offset_min in -1439i32..1440,
        ) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                .replace_nanosecond(nanos).unwrap()
                .to_offset(UtcOffset::from_whole_seconds(offset_min * 60).unwrap());
            let text = t.format(&Rfc3339).unwrap();
            let want = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap();
            prop_assert_eq!(parse_iso8601_ms(&text), Some(want), "{}", text);
        }
    }
}
