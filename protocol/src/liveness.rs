//! When an agent counts as online: the backend's `/api/agents` and the dashboard's live view
//! judge it by the same rule.

/// Assumed until an agent's interval is learnt (the seed's default tick).
pub(crate) const DEFAULT_INTERVAL_S: f64 = 5.0;
/// An agent is offline after this many of its own intervals without a batch.
pub(crate) const MISSED_INTERVALS: f64 = 3.0;

/// The interval to judge by: the learnt one, else the default; never under a second.
pub fn interval_s(learnt_s: Option<f64>) -> f64 {
    learnt_s.filter(|s| *s > 0.0).unwrap_or(DEFAULT_INTERVAL_S).max(1.0)
}

/// Heard from within [`MISSED_INTERVALS`] of its interval.
pub fn is_online(seen_ago_s: f64, interval_s: f64) -> bool {
    seen_ago_s <= MISSED_INTERVALS * interval_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_missed_intervals_make_an_agent_offline() {
        assert_eq!(interval_s(None), 5.0);
        assert_eq!(interval_s(Some(0.0)), 5.0);
        assert_eq!(interval_s(Some(0.2)), 1.0);
        assert!(is_online(15.0, 5.0) && !is_online(15.1, 5.0));
    }
}
