//! Counters and histograms rendered in the Prometheus text format at `/metrics`.

use crate::security::AuthFailure;
use protocol::codes;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A fixed-bucket histogram: cumulative counts are computed when rendered.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, value: f64) {
        let slot = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        self.counts[slot].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {}", self.count.load(Relaxed));
    }
}

const REFUSAL_REASONS: [&str; 7] = [
    codes::BAD_TOKEN,
    codes::BAD_SIGNATURE,
    codes::STALE_TIMESTAMP,
    codes::REPLAY,
    codes::INVALID,
    codes::TOO_LARGE,
    codes::BUSY,
];

/// The figures `/metrics` shows, shared by the routes and the store that counts into them.
#[derive(Debug)]
pub struct Metrics {
    pub(crate) events_stored: AtomicU64,
    pub(crate) batches_stored: AtomicU64,
    pub(crate) batches_duplicate: AtomicU64,
    refused: [AtomicU64; REFUSAL_REASONS.len()],
    pub(crate) ws_clients: AtomicU64,
    pub(crate) ws_slow_closed: AtomicU64,
    pub(crate) events_pruned: AtomicU64,
    pub(crate) batches_compacted: AtomicU64,
    pub(crate) replay_entries: AtomicU64,
    pub(crate) index_waiting: AtomicU64,
    pub(crate) commit_jobs: Histogram,
    pub(crate) commit_seconds: Histogram,
    pub(crate) alert_round_seconds: Histogram,
    /// Notification attempts by outcome: delivered, failed and retried, given up.
    pub(crate) notifications: [AtomicU64; 3],
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            events_stored: AtomicU64::new(0),
            batches_stored: AtomicU64::new(0),
            batches_duplicate: AtomicU64::new(0),
            refused: Default::default(),
            ws_clients: AtomicU64::new(0),
            ws_slow_closed: AtomicU64::new(0),
            events_pruned: AtomicU64::new(0),
            batches_compacted: AtomicU64::new(0),
            replay_entries: AtomicU64::new(0),
            index_waiting: AtomicU64::new(0),
            commit_jobs: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            commit_seconds: Histogram::new(&[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            alert_round_seconds: Histogram::new(&[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            notifications: Default::default(),
        }
    }
}

/// What a refused request is counted as.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    Auth(AuthFailure),
    Invalid,
    TooLarge,
    Busy,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Auth(a) => a.code(),
            Refusal::Invalid => codes::INVALID,
            Refusal::TooLarge => codes::TOO_LARGE,
            Refusal::Busy => codes::BUSY,
        }
    }
}

impl Metrics {
    pub(crate) fn refused(&self, why: Refusal) {
        let label = why.label();
        if let Some(i) = REFUSAL_REASONS.iter().position(|r| *r == label) {
            self.refused[i].fetch_add(1, Relaxed);
        }
    }

    #[cfg(test)]
    pub(crate) fn refused_count(&self, label: &str) -> u64 {
        REFUSAL_REASONS
            .iter()
            .position(|r| *r == label)
            .map_or(0, |i| self.refused[i].load(Relaxed))
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        counter(
            "telemetry_events_stored_total",
            "Events committed.",
            "counter",
            self.events_stored.load(Relaxed),
        );
        counter(
            "telemetry_events_pruned_total",
            "Events deleted by retention.",
            "counter",
            self.events_pruned.load(Relaxed),
        );
        counter(
            "telemetry_batches_compacted_total",
            "Raw batches moved into compressed chunks (SQLite).",
            "counter",
            self.batches_compacted.load(Relaxed),
        );
        counter(
            "telemetry_ws_clients",
            "Connected WebSocket clients.",
            "gauge",
            self.ws_clients.load(Relaxed),
        );
        counter(
            "telemetry_ws_slow_closed_total",
            "WebSocket clients closed for falling behind.",
            "counter",
            self.ws_slow_closed.load(Relaxed),
        );
        counter(
            "telemetry_replay_cache_entries",
            "Signatures remembered by the replay guard.",
            "gauge",
            self.replay_entries.load(Relaxed),
        );
        counter(
            "telemetry_index_waiting_batches",
            "Stored batches not yet written into the per-agent index (SQLite; read from memory \
             meanwhile, replayed from the log after a crash).",
            "gauge",
            self.index_waiting.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP telemetry_batches_total Ingest batches by outcome.\n# TYPE telemetry_batches_total counter"
        );
        let _ = writeln!(
            out,
            "telemetry_batches_total{{result=\"stored\"}} {}",
            self.batches_stored.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "telemetry_batches_total{{result=\"duplicate\"}} {}",
            self.batches_duplicate.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP telemetry_requests_refused_total Requests refused, by reason.\n# TYPE telemetry_requests_refused_total counter"
        );
        for (reason, count) in REFUSAL_REASONS.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "telemetry_requests_refused_total{{reason=\"{reason}\"}} {}",
                count.load(Relaxed)
            );
        }
        self.commit_jobs.render(
            &mut out,
            "telemetry_commit_requests",
            "Requests committed together in one transaction.",
        );
        self.commit_seconds.render(
            &mut out,
            "telemetry_commit_seconds",
            "Time to write and commit one group.",
        );
        self.alert_round_seconds.render(
            &mut out,
            "telemetry_alert_round_seconds",
            "Time of one alert round: measuring every rule on every agent, then deciding.",
        );
        let _ = writeln!(
            out,
            "# HELP telemetry_alert_notifications_total Notification attempts, by outcome.\n# TYPE telemetry_alert_notifications_total counter"
        );
        for (outcome, count) in ["delivered", "retried", "given_up"].iter().zip(&self.notifications)
        {
            let _ = writeln!(
                out,
                "telemetry_alert_notifications_total{{outcome=\"{outcome}\"}} {}",
                count.load(Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 1.7, 9.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "h", "help");
        assert!(out.contains("h_bucket{le=\"1\"} 1\n"));
        assert!(out.contains("h_bucket{le=\"2\"} 3\n"));
        assert!(out.contains("h_bucket{le=\"+Inf\"} 4\n"));
        assert!(out.contains("h_count 4\n"));
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let m = Metrics::default();
        m.refused(Refusal::Auth(AuthFailure::Replay));
        m.refused(Refusal::Auth(AuthFailure::Replay));
        m.refused(Refusal::TooLarge);
        assert_eq!(m.refused_count("replay"), 2);
        assert!(m.render().contains("telemetry_requests_refused_total{reason=\"too_large\"} 1\n"));
    }
}
