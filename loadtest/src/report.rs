//! The end of a run: one summary, as a table for people and as one JSON line for scripts.

use crate::schedule::Schedule;
use crate::tally::Counts;
use crate::verify::Verification;
use goose::metrics::GooseMetrics;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// The offered rate may fall this far below the schedule before the run counts as failed.
pub(crate) const RATE_TOLERANCE: f64 = 0.10;

/// Latency of normal ingest requests, from goose's histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of_ingest(metrics: &GooseMetrics) -> Self {
        let Some(ingest) = metrics.requests.get("POST ingest") else { return Self::default() };
        let d = &ingest.raw_data;
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50_ms: ms(d.percentile_us(0.50)),
            p95_ms: ms(d.percentile_us(0.95)),
            p99_ms: ms(d.percentile_us(0.99)),
            max_ms: ms(d.maximum_time_us),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What the schedule asked for, on average.
    pub target_rps: f64,
    /// Requests sent per second from the first due time to the last send.
    pub offered_rps: f64,
    /// Requests answered (any HTTP status) per second of wall time.
    pub achieved_rps: f64,
    /// Whether the offered rate came within 10% of the target.
    pub rate_held: bool,
    pub wall_s: f64,
    pub users: u32,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub attacks_sent: u64,
    pub refused_attacks: u64,
    #[serde(flatten)]
    pub latency: Latency,
    /// How late the latest request left after its due time.
    pub max_lag_ms: f64,
    /// Requests that left more than 100 ms after their due time.
    pub late: u64,
    pub errors_by_reason: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verification>,
    /// Why `--verify` could not read the events back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
}

impl Summary {
    pub fn new(
        schedule: &Schedule,
        start: Option<Instant>,
        counts: &Counts,
        latency: Latency,
        users: u32,
    ) -> Self {
        let since_start = |at: Option<Instant>| match (start, at) {
            (Some(s), Some(a)) => a.saturating_duration_since(s).as_secs_f64(),
            _ => 0.0,
        };
        let send_span = since_start(counts.last_send);
        let wall_s = since_start(counts.last_done);
        let per_s = |n: u64, span: f64| if span > 0.0 { n as f64 / span } else { 0.0 };
        let target_rps = schedule.mean_rps(schedule.duration_s().unwrap_or(send_span));
        // A single request has no span to speak of: it was sent when due.
        let offered_rps =
            if counts.sent > 1 { per_s(counts.sent - 1, send_span) } else { target_rps };
        Self {
            target_rps,
            offered_rps,
            achieved_rps: per_s(counts.answered, wall_s),
            rate_held: counts.sent > 0 && offered_rps >= target_rps * (1.0 - RATE_TOLERANCE),
            wall_s,
            users,
            sent: counts.sent,
            acked: counts.acked,
            errors: counts.errors,
            attacks_sent: counts.attacks_sent,
            refused_attacks: counts.refused_attacks,
            latency,
            max_lag_ms: counts.max_lag.as_secs_f64() * 1000.0,
            late: counts.late,
            errors_by_reason: counts.errors_by_reason.clone(),
            verify: None,
            verify_error: None,
        }
    }

    /// Every reason this run failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.errors > 0 {
            why.push(format!("{} request(s) failed", self.errors));
        }
        if !self.rate_held {
            why.push(format!(
                "the load tester could not hold the rate: offered {:.0} req/s of {:.0} \
                 (max lag {:.0} ms); raise --users or lower --rate",
                self.offered_rps, self.target_rps, self.max_lag_ms
            ));
        }
        if let Some(e) = &self.verify_error {
            why.push(format!("verification could not read the events back: {e}"));
        }
        if let Some(v) = self.verify.as_ref().filter(|v| !v.ok) {
            why.push(format!(
                "verification failed: {} missing, {} duplicated, {} hostile stored, \
                 {} unexpected, {} of {} process rows",
                v.missing,
                v.duplicated,
                v.hostile_stored,
                v.unexpected,
                v.proc_rows,
                v.proc_rows_expected
            ));
        }
        why
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "  {k:<18} {v}");
        };
        row(
            "rate req/s",
            format!(
                "target {:.1}, offered {:.1}, achieved {:.1}{}",
                self.target_rps,
                self.offered_rps,
                self.achieved_rps,
                if self.rate_held { "" } else { "  (NOT HELD)" }
            ),
        );
        row("wall time", format!("{:.2} s with {} users", self.wall_s, self.users));
        row(
            "requests",
            format!("{} sent, {} acked, {} errors", self.sent, self.acked, self.errors),
        );
        row("attacks", format!("{} sent, {} refused", self.attacks_sent, self.refused_attacks));
        let l = &self.latency;
        row(
            "ingest latency",
            format!(
                "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            ),
        );
        row("scheduling lag", format!("max {:.1} ms, {} late", self.max_lag_ms, self.late));
        for (reason, n) in &self.errors_by_reason {
            row("error", format!("{n} x {reason}"));
        }
        if let Some(v) = &self.verify {
            row(
                "verify",
                format!(
                    "{}: {} batches stored, {} missing, {} duplicated, {} hostile stored, \
                 {} stored without ack",
                    if v.ok { "ok" } else { "FAILED" },
                    v.stored_batches,
                    v.missing,
                    v.duplicated,
                    v.hostile_stored,
                    v.stored_unacked
                ),
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn counts(start: Instant, sent: u64, send_span_ms: u64, answered: u64) -> Counts {
        Counts {
            sent,
            answered,
            acked: answered,
            last_send: Some(start + Duration::from_millis(send_span_ms)),
            last_done: Some(start + Duration::from_millis(send_span_ms + 5)),
            ..Counts::default()
        }
    }

    #[test]
    fn an_on_time_run_holds_the_rate() {
        let start = Instant::now();
        let s = Schedule::new(200.0, None, Some(5.0));
        let sum =
            Summary::new(&s, Some(start), &counts(start, 1000, 4995, 1000), Latency::default(), 50);
        assert!(sum.rate_held, "{sum:?}");
        assert!((sum.achieved_rps - 200.0).abs() < 1.0, "{}", sum.achieved_rps);
        assert!(sum.failures().is_empty());
    }

    #[test]
    fn a_lagging_run_says_so() {
        let start = Instant::now();
        let s = Schedule::new(200.0, None, Some(5.0));
        let sum =
            Summary::new(&s, Some(start), &counts(start, 1000, 7000, 1000), Latency::default(), 5);
        assert!(!sum.rate_held);
        assert!(sum.failures()[0].contains("could not hold the rate"));
    }

    #[test]
    fn unanswered_requests_do_not_count_as_achieved() {
        let start = Instant::now();
        let s = Schedule::new(200.0, None, Some(5.0));
        let mut c = counts(start, 1000, 4995, 400);
        c.errors = 600;
        let sum = Summary::new(&s, Some(start), &c, Latency::default(), 50);
        assert!(sum.achieved_rps < 81.0, "{}", sum.achieved_rps);
        assert!(sum.failures()[0].contains("600 request(s) failed"));
    }
}
