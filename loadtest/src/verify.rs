//! `--verify`: reads every event of the run's agents back through `GET /api/events` and checks
//! that each acknowledged batch was stored exactly once, and no hostile one at all.

use crate::payload::Fleet;
use crate::tally::Slots;
use protocol::EventRow;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

const PAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("reading {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("reading {url}: the backend answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
}

/// What the stored rows say; `ok` only when nothing is missing, doubled or forged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// Batches found, one per metric row.
    pub stored_batches: u64,
    /// Acknowledged batches with no row.
    pub missing: u64,
    /// Batches stored more than once.
    pub duplicated: u64,
    /// Hostile requests that left a row.
    pub hostile_stored: u64,
    /// Batches that failed (no answer, 5xx) and were stored anyway: allowed, reported.
    pub stored_unacked: u64,
    /// Rows from slots this run never sent as a normal batch.
    pub unexpected: u64,
    /// Process rows found against `procs` times the batches found.
    pub proc_rows: u64,
    pub proc_rows_expected: u64,
}

/// Stored rows of one run: batches by slot, and process rows.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub batches: HashMap<u64, u64>,
    pub proc_rows: u64,
}

impl Stored {
    fn add(&mut self, row: &EventRow) {
        match (row.event_type.as_str(), row.uptime_s) {
            ("metric", Some(slot)) => *self.batches.entry(slot).or_default() += 1,
            ("proc", _) => self.proc_rows += 1,
            // A metric row without a slot cannot come from this run's batches.
            _ => *self.batches.entry(u64::MAX).or_default() += 1,
        }
    }
}

/// Compares what was stored with what the run saw.
pub(crate) fn compare(stored: &Stored, slots: &Slots, procs: u32) -> Verification {
    let count = |slot: &u64| stored.batches.get(slot).copied().unwrap_or(0);
    let mut v = Verification {
        stored_batches: stored.batches.values().sum(),
        proc_rows: stored.proc_rows,
        ..Verification::default()
    };
    v.proc_rows_expected = v.stored_batches * u64::from(procs);
    for slot in &slots.acked {
        match count(slot) {
            0 => v.missing += 1,
            1 => {}
            _ => v.duplicated += 1,
        }
    }
    for slot in &slots.uncertain {
        match count(slot) {
            0 => {}
            1 => v.stored_unacked += 1,
            _ => v.duplicated += 1,
        }
    }
    v.hostile_stored = slots.hostile.iter().filter(|s| count(s) > 0).count() as u64;
    let known: HashSet<u64> = slots.acked.iter().chain(&slots.uncertain).copied().collect();
    v.unexpected = stored.batches.keys().filter(|s| !known.contains(s)).count() as u64;
    v.ok = v.missing == 0
        && v.duplicated == 0
        && v.hostile_stored == 0
        && v.unexpected == 0
        && v.proc_rows == v.proc_rows_expected;
    v
}

async fn page(
    http: &reqwest::Client,
    url: String,
    query: &[(&str, String)],
) -> Result<Vec<EventRow>, VerifyError> {
    let fail = |source| VerifyError::Http { url: url.clone(), source };
    let response = http.get(&url).query(query).send().await.map_err(fail)?;
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(VerifyError::Status { url, status, body });
    }
    response.json().await.map_err(fail)
}

/// Pages through every event of every simulated agent.
pub(crate) async fn read_back(
    http: &reqwest::Client,
    base_url: &str,
    fleet: &Fleet,
) -> Result<Stored, VerifyError> {
    let url = format!("{base_url}/api/events");
    let mut stored = Stored::default();
    for index in 0..fleet.agents() {
        let agent_id = fleet.agent_id(index);
        let mut before: Option<i64> = None;
        loop {
            let mut query = vec![("agent_id", agent_id.clone()), ("limit", PAGE.to_string())];
            if let Some(id) = before {
                query.push(("before_id", id.to_string()));
            }
            let rows = page(http, url.clone(), &query).await?;
            rows.iter().for_each(|row| stored.add(row));
            match rows.last() {
                Some(last) if rows.len() == PAGE => before = Some(last.id),
                _ => break,
            }
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(batches: &[(u64, u64)], proc_rows: u64) -> Stored {
        Stored { batches: batches.iter().copied().collect(), proc_rows }
    }

    fn slots(acked: &[u64], uncertain: &[u64], hostile: &[u64]) -> Slots {
        Slots { acked: acked.to_vec(), uncertain: uncertain.to_vec(), hostile: hostile.to_vec() }
    }

    #[test]
    fn every_ack_once_and_nothing_else_passes() {
        let v = compare(&stored(&[(1, 1), (2, 1), (4, 1)], 6), &slots(&[1, 2], &[4, 5], &[3]), 2);
        assert!(v.ok, "{v:?}");
        assert_eq!((v.stored_batches, v.stored_unacked), (3, 1));
    }

    #[test]
    fn missing_doubled_forged_and_unknown_rows_fail() {
        let s = slots(&[1, 2], &[], &[3]);
        let v = compare(&stored(&[(1, 1)], 0), &s, 0);
        assert_eq!((v.ok, v.missing), (false, 1));
        let v = compare(&stored(&[(1, 2), (2, 1)], 0), &s, 0);
        assert_eq!((v.ok, v.duplicated), (false, 1));
        let v = compare(&stored(&[(1, 1), (2, 1), (3, 1)], 0), &s, 0);
        assert_eq!((v.ok, v.hostile_stored, v.unexpected), (false, 1, 1));
        let v = compare(&stored(&[(1, 1), (2, 1), (9, 1)], 0), &s, 0);
        assert_eq!((v.ok, v.unexpected), (false, 1));
        let v = compare(&stored(&[(1, 1), (2, 1)], 3), &s, 2);
        assert_eq!((v.ok, v.proc_rows_expected), (false, 4));
    }
}
