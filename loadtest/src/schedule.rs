//! The open-loop clock: request number `n` is due at a fixed time after the start, whatever
//! happened to earlier requests. A slow backend therefore shows up as latency (or as lag of
//! the load tester, which is reported), never as a quietly lower rate.

use std::time::Duration;

/// Extra load for the last `len_s` seconds of every `every_s`-second period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub extra_rps: f64,
    pub len_s: f64,
    pub every_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    burst: Option<Burst>,
    duration_s: Option<f64>,
}

impl Schedule {
    /// `rate` must be positive and a burst shorter than its period; the CLI checks both.
    pub fn new(rate: f64, burst: Option<Burst>, duration_s: Option<f64>) -> Self {
        Self { rate, burst, duration_s }
    }

    /// The highest request rate the schedule asks for.
    pub fn peak_rps(&self) -> f64 {
        self.rate + self.burst.map_or(0.0, |b| b.extra_rps)
    }

    /// How many requests are due in the first `t` seconds (fractional).
    pub fn due_by(&self, t: f64) -> f64 {
        let Some(b) = self.burst else { return self.rate * t };
        let periods = (t / b.every_s).floor();
        let into = t - periods * b.every_s;
        let quiet = b.every_s - b.len_s;
        let in_burst = (into - quiet).max(0.0);
        self.rate * t + b.extra_rps * (periods * b.len_s + in_burst)
    }

    /// Requests in the whole run, or `None` when it runs until stopped.
    pub fn total_slots(&self) -> Option<u64> {
        // A slot due exactly at the end belongs to the next run; the epsilon absorbs rounding.
        // The float is non-negative and far below u64::MAX for any run a machine can do.
        self.duration_s.map(|d| (self.due_by(d) - 1e-9).ceil().max(0.0) as u64)
    }

    pub fn duration_s(&self) -> Option<f64> {
        self.duration_s
    }

    /// The average rate the schedule asks for over its first `span` seconds.
    pub fn mean_rps(&self, span: f64) -> f64 {
        if span > 0.0 { self.due_by(span) / span } else { self.rate }
    }

    /// When request `n` (from 0) is due, after the start.
    pub fn due_at(&self, n: u64) -> Duration {
        // Precision: f64 holds slot numbers exactly up to 2^53.
        let n = n as f64;
        let secs = match self.burst {
            None => n / self.rate,
            Some(b) => {
                let quiet = b.every_s - b.len_s;
                let per_period = self.rate * b.every_s + b.extra_rps * b.len_s;
                let periods = (n / per_period).floor();
                let rem = n - periods * per_period;
                let quiet_slots = self.rate * quiet;
                let into = if rem < quiet_slots {
                    rem / self.rate
                } else {
                    quiet + (rem - quiet_slots) / (self.rate + b.extra_rps)
                };
                periods * b.every_s + into
            }
        };
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst() -> Schedule {
        Schedule::new(100.0, Some(Burst { extra_rps: 2000.0, len_s: 3.0, every_s: 10.0 }), None)
    }

    #[test]
    fn a_steady_rate_spaces_requests_evenly() {
        let s = Schedule::new(200.0, None, Some(5.0));
        assert_eq!(s.due_at(0), Duration::ZERO);
        assert_eq!(s.due_at(200), Duration::from_secs(1));
        assert_eq!(s.total_slots(), Some(1000));
        assert_eq!(s.mean_rps(5.0), 200.0);
    }

    #[test]
    fn bursts_add_their_rate_at_the_end_of_each_period() {
        let s = burst();
        // 700 quiet requests in 7 s, then 2100/s for 3 s.
        assert_eq!(s.due_at(700), Duration::from_secs(7));
        assert!((s.due_at(700 + 2100).as_secs_f64() - 8.0).abs() < 1e-9);
        assert!((s.due_at(6_999).as_secs_f64() - 10.0).abs() < 1e-3);
        assert!((s.due_at(7_000).as_secs_f64() - 10.0).abs() < 1e-9);
        assert!((s.due_at(7_700).as_secs_f64() - 17.0).abs() < 1e-9);
        assert_eq!(s.peak_rps(), 2100.0);
        assert!((s.due_by(10.0) - 7_000.0).abs() < 1e-9);
        assert!((s.due_by(18.0) - (7_000.0 + 700.0 + 2_100.0)).abs() < 1e-9);
    }

    #[test]
    fn due_at_and_due_by_agree() {
        let s = burst();
        for n in (0..30_000).step_by(37) {
            let t = s.due_at(n).as_secs_f64();
            // Durations keep nanoseconds: at 2100 req/s that is a few millionths of a slot.
            assert!((s.due_by(t) - n as f64).abs() < 1e-4, "slot {n} at {t}s");
        }
    }

    #[test]
    fn due_times_never_go_backwards() {
        let s = burst();
        let mut last = Duration::ZERO;
        for n in 0..25_000 {
            let t = s.due_at(n);
            assert!(t >= last, "slot {n}");
            last = t;
        }
    }
}
