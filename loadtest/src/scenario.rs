//! The goose side: each user takes the next slot of the schedule, waits for its due time,
//! builds and signs the request right then, sends it and judges the answer.
//!
//! goose's own `--throttle-requests` only caps the rate (users wait on each other's answers),
//! so the rate here comes from [`Schedule`] instead: slots are due by the clock, and a user
//! that picks one up late records the lag rather than silently sending fewer requests.

use crate::payload::{Fleet, Hostile, Signed, Signer};
use crate::schedule::Schedule;
use crate::tally::{Answer, Outcome, Tally, judge};
use goose::prelude::*;
use protocol::{HEADER_SIGNATURE, HEADER_SIGNATURE_TS, HEADER_TOKEN};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Time for goose to start every user before the first slot is due.
const LEAD: Duration = Duration::from_secs(1);
/// How often an idle user looks again once the schedule is used up.
const IDLE: Duration = Duration::from_millis(20);
/// A replay must be of a request young enough that only the replay guard can refuse it.
const REPLAY_MAX_AGE: Duration = Duration::from_secs(10);

/// What every user shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub fleet: Fleet,
    pub signer: Signer,
    pub schedule: Schedule,
    pub attack: f64,
    pub tally: Tally,
    next_slot: AtomicU64,
    /// Users holding a slot that is not finished; the run ends when it reaches 0 at the end.
    busy: AtomicU64,
    start: OnceLock<Instant>,
}

impl Shared {
    pub(crate) fn new(fleet: Fleet, signer: Signer, schedule: Schedule, attack: f64) -> Self {
        Self {
            fleet,
            signer,
            schedule,
            attack,
            tally: Tally::default(),
            next_slot: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            start: OnceLock::new(),
        }
    }

    /// When the first slot was due, once the run has begun.
    pub(crate) fn start(&self) -> Option<Instant> {
        self.start.get().copied()
    }
}

/// Per user: the last request the backend accepted, to replay.
#[derive(Debug, Clone, Default)]
struct UserState {
    last_accepted: Option<(Instant, Signed)>,
}

pub(crate) fn scenario(shared: Arc<Shared>) -> Scenario {
    let transaction: TransactionFunction = Arc::new(move |user| {
        let shared = shared.clone();
        Box::pin(async move { next_request(user, &shared).await })
    });
    scenario!("ingest").register_transaction(Transaction::new(transaction).set_name("ingest"))
}

async fn next_request(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    // Counted busy before taking a slot, so that no one sees the end while a slot is held.
    shared.busy.fetch_add(1, Ordering::SeqCst);
    let slot = shared.next_slot.fetch_add(1, Ordering::SeqCst);
    if shared.schedule.total_slots().is_some_and(|total| slot >= total) {
        if shared.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            goose::trigger_killswitch("every scheduled request is done");
        }
        tokio::time::sleep(IDLE).await;
        return Ok(());
    }
    let start = *shared.start.get_or_init(|| Instant::now() + LEAD);
    let due = start + shared.schedule.due_at(slot);
    tokio::time::sleep_until(due.into()).await;
    let result = send(user, shared, slot, due).await;
    shared.busy.fetch_sub(1, Ordering::SeqCst);
    result
}

fn unix_now() -> (OffsetDateTime, i64) {
    let now = OffsetDateTime::now_utc();
    (now, now.unix_timestamp())
}

async fn send(user: &mut GooseUser, shared: &Shared, slot: u64, due: Instant) -> TransactionResult {
    if user.get_session_data::<UserState>().is_none() {
        user.set_session_data(UserState::default());
    }
    let (now, now_s) = unix_now();
    let batch = shared.fleet.batch(slot, now);
    let replay = user
        .get_session_data::<UserState>()
        .and_then(|s| s.last_accepted.as_ref())
        .filter(|(at, _)| at.elapsed() < REPLAY_MAX_AGE)
        .map(|(_, signed)| signed.clone());
    let hostile = Hostile::for_slot(slot, shared.attack);
    let forged =
        hostile.and_then(|kind| shared.signer.attack(kind, &batch, now_s, replay.as_ref()));
    // With nothing accepted recently to replay, the slot carries a normal batch instead.
    let (hostile, signed) = match forged {
        Some(forged) => (hostile, forged),
        None => (None, shared.signer.sign(&batch, now_s)),
    };
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/ingest")?
        .header("content-type", "application/json")
        .header(HEADER_TOKEN, &signed.token)
        .header(HEADER_SIGNATURE_TS, &signed.ts)
        .header(HEADER_SIGNATURE, &signed.signature)
        .body(signed.body.clone());
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(hostile.map_or("ingest", Hostile::name))
        .expect_status_code(if hostile.is_some() { 401 } else { 200 })
        .build();

    let sent_at = Instant::now();
    shared.tally.sent(hostile.is_some(), sent_at.saturating_duration_since(due), sent_at);
    let mut goose = user.request(request).await?;
    let answer = match goose.response {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(body) => Answer::Http { status, body: body.to_vec() },
                Err(e) => Answer::Failed(describe(&e)),
            }
        }
        Err(ref e) => Answer::Failed(describe(e)),
    };
    let answered = matches!(answer, Answer::Http { .. });
    let outcome = judge(hostile, batch.events.len(), &answer);
    shared.tally.done(slot, hostile.is_some(), &outcome, answered, Instant::now());
    match &outcome {
        Outcome::Acked => {
            if let Some(state) = user.get_session_data_mut::<UserState>() {
                state.last_accepted = Some((Instant::now(), signed));
            }
        }
        // goose judged this one by its status alone; make its report agree with ours.
        Outcome::Error { reason, .. } if goose.request.success => {
            let _ = user.set_failure(reason, &mut goose.request, None, None);
        }
        _ => {}
    }
    Ok(())
}

/// A short, stable reason: error counts are grouped by it.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_body() || e.is_decode() {
        "answer cut off".into()
    } else {
        "request failed".into()
    }
}
