//! What happened to each request: judged from the answer, counted as it happens, and kept per
//! slot for `--verify`.

use crate::payload::Hostile;
use protocol::{ErrorBody, IngestResponse};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A request that left this late after its due time means the load tester fell behind.
pub(crate) const LATE: Duration = Duration::from_millis(100);

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A normal batch, stored in full.
    Acked,
    /// A hostile request, refused with 401 and the code it deserved.
    Refused(Hostile),
    /// Anything else. `maybe_stored`: the backend may have stored it (no answer, or a 5xx).
    Error { reason: String, maybe_stored: bool },
}

/// What came back: an HTTP status and body, or why none came.
#[derive(Debug)]
pub(crate) enum Answer {
    Http { status: u16, body: Vec<u8> },
    Failed(String),
}

fn error(reason: String, maybe_stored: bool) -> Outcome {
    Outcome::Error { reason, maybe_stored }
}

fn code_of(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body).map_or_else(|_| "no error code".into(), |e| e.code)
}

/// Judges an answer. `expected_stored` is the number of events in a normal batch.
pub(crate) fn judge(hostile: Option<Hostile>, expected_stored: usize, answer: &Answer) -> Outcome {
    let (status, body) = match answer {
        Answer::Http { status, body } => (*status, body.as_slice()),
        Answer::Failed(why) => return error(why.clone(), hostile.is_none()),
    };
    match hostile {
        None if status == 200 => match serde_json::from_slice::<IngestResponse>(body) {
            Ok(r) if r.duplicate => error("fresh batch_id answered as duplicate".into(), true),
            Ok(r) if r.stored == expected_stored => Outcome::Acked,
            Ok(r) => error(format!("stored {} of {expected_stored} events", r.stored), true),
            Err(_) => error("200 with an unreadable body".into(), true),
        },
        None => error(format!("{status} {}", code_of(body)), status >= 500),
        Some(kind) if status == 401 => {
            let code = code_of(body);
            if code == kind.expected_code() {
                Outcome::Refused(kind)
            } else {
                error(
                    format!("{} refused as {code}, not {}", kind.name(), kind.expected_code()),
                    false,
                )
            }
        }
        Some(kind) if (200..300).contains(&status) => {
            error(format!("{} was ACCEPTED ({status})", kind.name()), false)
        }
        Some(kind) => error(format!("{} answered {status} {}", kind.name(), code_of(body)), false),
    }
}

/// Slots by what became of them, for `--verify`.
#[derive(Debug, Default, Clone)]
pub struct Slots {
    pub acked: Vec<u64>,
    /// Errors the backend may still have stored.
    pub uncertain: Vec<u64>,
    /// Hostile requests: none of these may ever be stored.
    pub hostile: Vec<u64>,
}

#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub sent: u64,
    pub answered: u64,
    pub acked: u64,
    pub refused_attacks: u64,
    pub attacks_sent: u64,
    pub errors: u64,
    pub errors_by_reason: BTreeMap<String, u64>,
    pub late: u64,
    pub max_lag: Duration,
    pub first_send: Option<Instant>,
    pub last_send: Option<Instant>,
    /// When the last request finished, answered or not.
    pub last_done: Option<Instant>,
    pub slots: Slots,
}

/// Shared by every goose user; one short lock per request is far below the cost of a request.
#[derive(Debug, Default)]
pub(crate) struct Tally(Mutex<Counts>);

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic elsewhere must not hide the counts gathered so far.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn sent(&self, hostile: bool, lag: Duration, at: Instant) {
        let mut c = self.lock();
        c.sent += 1;
        c.attacks_sent += u64::from(hostile);
        c.late += u64::from(lag > LATE);
        c.max_lag = c.max_lag.max(lag);
        c.first_send.get_or_insert(at);
        c.last_send = Some(at);
    }

    pub(crate) fn done(
        &self,
        slot: u64,
        hostile: bool,
        outcome: &Outcome,
        answered: bool,
        at: Instant,
    ) {
        let mut c = self.lock();
        c.answered += u64::from(answered);
        c.last_done = Some(c.last_done.map_or(at, |l| l.max(at)));
        if hostile {
            c.slots.hostile.push(slot);
        }
        match outcome {
            Outcome::Acked => {
                c.acked += 1;
                c.slots.acked.push(slot);
            }
            Outcome::Refused(_) => c.refused_attacks += 1,
            Outcome::Error { reason, maybe_stored } => {
                c.errors += 1;
                *c.errors_by_reason.entry(reason.clone()).or_default() += 1;
                if *maybe_stored {
                    c.slots.uncertain.push(slot);
                }
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Counts {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> Answer {
        Answer::Http { status, body: body.as_bytes().to_vec() }
    }

    fn reason(o: Outcome) -> String {
        match o {
            Outcome::Error { reason, .. } => reason,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn a_full_store_is_an_ack_and_anything_less_is_an_error() {
        assert_eq!(judge(None, 6, &http(200, r#"{"stored":6}"#)), Outcome::Acked);
        assert!(reason(judge(None, 6, &http(200, r#"{"stored":5}"#))).contains("5 of 6"));
        let dup = judge(None, 6, &http(200, r#"{"stored":0,"duplicate":true}"#));
        assert!(reason(dup).contains("duplicate"));
        let busy = judge(None, 6, &http(503, r#"{"detail":"x","code":"storage_unavailable"}"#));
        assert_eq!(busy, error("503 storage_unavailable".into(), true));
        assert_eq!(
            judge(None, 6, &Answer::Failed("connection failed".into())),
            error("connection failed".into(), true)
        );
    }

    #[test]
    fn attacks_must_be_refused_with_their_own_code() {
        let replay = r#"{"detail":"x","code":"replay"}"#;
        assert_eq!(
            judge(Some(Hostile::Replay), 6, &http(401, replay)),
            Outcome::Refused(Hostile::Replay)
        );
        let wrong = reason(judge(Some(Hostile::Stale), 6, &http(401, replay)));
        assert!(wrong.contains("refused as replay, not stale_timestamp"), "{wrong}");
        let accepted = reason(judge(Some(Hostile::Tampered), 6, &http(200, r#"{"stored":6}"#)));
        assert!(accepted.contains("ACCEPTED"));
    }

    #[test]
    fn the_tally_keeps_slots_apart_by_fate() {
        let t = Tally::default();
        let now = Instant::now();
        t.sent(false, Duration::ZERO, now);
        t.sent(true, Duration::from_millis(150), now);
        t.done(1, false, &Outcome::Acked, true, now);
        t.done(2, true, &Outcome::Refused(Hostile::Stale), true, now);
        t.done(3, false, &error("timeout".into(), true), false, now);
        let c = t.snapshot();
        assert_eq!((c.sent, c.answered, c.acked, c.refused_attacks, c.errors), (2, 2, 1, 1, 1));
        assert_eq!((c.late, c.attacks_sent), (1, 1));
        assert_eq!(
            (c.slots.acked, c.slots.hostile, c.slots.uncertain),
            (vec![1], vec![2], vec![3])
        );
    }
}
