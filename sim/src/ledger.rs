//! The receiving side of the fake servers: what arrived, from whom, in which order, and how
//! often a batch came again. The real backend is checked through its database instead.

use crate::numbered::Stamp;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<String>,
    /// agent id -> numbers stored, in order of arrival
    arrivals: HashMap<String, Vec<u64>>,
    duplicates: u64,
}

impl Ledger {
    /// Stores a batch unless its `batch_id` was stored before; true for such a duplicate, as the
    /// backend answers `{"duplicate":true}`.
    pub(crate) fn receive(&self, stamp: Stamp) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !inner.seen.insert(stamp.batch_id) {
            inner.duplicates += 1;
            return true;
        }
        inner.arrivals.entry(stamp.agent_id).or_default().push(stamp.seq);
        false
    }

    pub(crate) fn arrivals(&self, agent_id: &str) -> Vec<u64> {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.arrivals.get(agent_id).cloned().unwrap_or_default()
    }

    /// (stored, duplicates)
    pub(crate) fn totals(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (inner.seen.len() as u64, inner.duplicates)
    }
}

/// Each agent's batches must be stored in the order they were produced.
pub(crate) fn check_order(agent_id: &str, arrivals: &[u64], failures: &mut Vec<String>) {
    if let Some(w) = arrivals.windows(2).find(|w| w[1] <= w[0]) {
        failures.push(format!("{agent_id}: reading {} stored after reading {}", w[1], w[0]));
    }
}

/// What was stored must be exactly `expected`: nothing missing, nothing extra, nothing twice.
pub(crate) fn check_exactly(
    agent_id: &str,
    arrivals: &[u64],
    expected: &BTreeSet<u64>,
    failures: &mut Vec<String>,
) {
    let stored: BTreeSet<u64> = arrivals.iter().copied().collect();
    if stored.len() != arrivals.len() {
        failures.push(format!("{agent_id}: a reading was stored twice"));
    }
    let missing: Vec<u64> = expected.difference(&stored).copied().collect();
    let extra: Vec<u64> = stored.difference(expected).copied().collect();
    if !missing.is_empty() {
        failures.push(format!(
            "{agent_id}: {} readings never stored: {}",
            missing.len(),
            few(&missing)
        ));
    }
    if !extra.is_empty() {
        failures.push(format!(
            "{agent_id}: {} readings stored unexpectedly: {}",
            extra.len(),
            few(&extra)
        ));
    }
}

fn few(seqs: &[u64]) -> String {
    let shown: Vec<String> = seqs.iter().take(8).map(u64::to_string).collect();
    let more = if seqs.len() > 8 { " ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(agent: &str, seq: u64, id: &str) -> Stamp {
        Stamp { agent_id: agent.into(), seq, batch_id: id.into() }
    }

    #[test]
    fn a_repeated_batch_id_is_a_duplicate_and_stored_once() {
        let ledger = Ledger::default();
        assert!(!ledger.receive(stamp("a", 1, "x")));
        assert!(ledger.receive(stamp("a", 1, "x")));
        assert!(!ledger.receive(stamp("a", 2, "y")));
        assert_eq!(ledger.arrivals("a"), [1, 2]);
        assert_eq!(ledger.totals(), (2, 1));
    }

    #[test]
    fn checks_catch_disorder_loss_and_extras() {
        let mut failures = Vec::new();
        check_order("a", &[1, 3, 2], &mut failures);
        check_exactly("a", &[1, 3, 3, 9], &(1..=3).collect(), &mut failures);
        assert_eq!(failures.len(), 4, "{failures:?}");
        let mut none = Vec::new();
        check_order("a", &[1, 2, 5], &mut none);
        check_exactly("a", &[1, 2, 5], &[1, 2, 5].into(), &mut none);
        assert!(none.is_empty(), "{none:?}");
    }
}
