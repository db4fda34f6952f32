//! Outage against a scripted wiremock server, on real time: the ingest endpoint answers 503, then
//! answers too late (past the request timeout), then drops connections (through a relay), then
//! recovers. Every batch must arrive exactly once and in order per agent, failed attempts must be
//! spaced by at least their back-off and at most its upper bound, and after the recovery each
//! agent must be delivering again within two ticks.

use super::fake::{Fake, Tuning};
use super::{Progress, QueueWatch, TOKEN, add_summary, both, join_lives};
use crate::ledger::{Ledger, check_exactly, check_order};
use crate::numbered::Stamp;
use crate::observed::{Attempt, Observed};
use crate::relay::{Mode, Relay};
use crate::{Config, Report, SimError};
use agent::retry::Backoff;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const UP: u8 = 0;
const UNAVAILABLE: u8 = 1;
const SLOW: u8 = 2;

/// The figures of one run, scaled so that a big fleet does not saturate two cores; each phase
/// lasts six ticks.
fn tuning(agents: usize) -> Tuning {
    let interval = Duration::from_millis(200).max(Duration::from_millis(4) * agents as u32);
    Tuning {
        interval,
        timeout: (interval * 2).max(Duration::from_millis(400)),
        base: interval / 4,
        cap: interval * 4,
    }
}

/// Answers ingest by phase and stores what it accepts; health follows the same phase.
struct Scripted {
    phase: Arc<AtomicU8>,
    ledger: Arc<Ledger>,
    late: Duration,
    ingest: bool,
}

impl Respond for Scripted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match self.phase.load(Relaxed) {
            UP if !self.ingest => ResponseTemplate::new(200),
            UP => match Stamp::of(&request.body) {
                Ok(stamp) => {
                    let duplicate = self.ledger.receive(stamp);
                    let stored = u32::from(!duplicate);
                    ResponseTemplate::new(200).set_body_json(
                        serde_json::json!({"stored": stored, "duplicate": duplicate}),
                    )
                }
                Err(why) => ResponseTemplate::new(422).set_body_json(
                    serde_json::json!({"detail": why, "code": protocol::codes::INVALID}),
                ),
            },
            SLOW => ResponseTemplate::new(503).set_delay(self.late),
            _ => ResponseTemplate::new(503),
        }
    }
}

pub(crate) async fn run(config: &Config) -> Result<Report, SimError> {
    let t = tuning(config.agents);
    let phase_length = t.interval * 6;
    let phase = Arc::new(AtomicU8::new(UP));
    let ledger = Arc::new(Ledger::default());
    let server = MockServer::builder().disable_request_recording().start().await;
    for (route, ingest) in [("/api/ingest", true), ("/healthz", false)] {
        let late = t.timeout * 2;
        let scripted = Scripted { phase: phase.clone(), ledger: ledger.clone(), late, ingest };
        Mock::given(path(route))
            .and(method(if ingest { "POST" } else { "GET" }))
            .respond_with(scripted)
            .mount(&server)
            .await;
    }
    let relay = Relay::start(*server.address()).await.map_err(|e| SimError::setup("relay", e))?;
    let url = format!("http://{}", relay.addr);
    let tmp = memory_backed_tempdir().map_err(|e| SimError::setup("temporary folder", e))?;

    let mut fakes = Vec::new();
    let mut lives = Vec::new();
    for n in 0..config.agents {
        let fake = Fake::new("outage", n, config.seed, tmp.path(), &url, TOKEN, t)?;
        let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
        let observed = Observed { inner: fake.http.clone(), attempts: attempts.clone() };
        let agent = fake.agent(observed)?;
        lives.push(tokio::spawn(agent.run(tokio::time::sleep(phase_length * 7))));
        fakes.push((fake, attempts));
    }
    let stats = fakes.iter().map(|(f, _)| f.stats.clone()).collect();
    let progress = Progress::start(config.progress, "outage", stats, Duration::from_secs(1));
    let watch = QueueWatch::start(fakes.iter().map(|(f, _)| f.dir.clone()).collect());

    let started = Instant::now();
    tokio::time::sleep(phase_length).await;
    phase.store(UNAVAILABLE, Relaxed);
    tokio::time::sleep(phase_length).await;
    phase.store(SLOW, Relaxed);
    tokio::time::sleep(phase_length).await;
    relay.set(Mode::Drop);
    tokio::time::sleep(phase_length).await;
    // Taken before the switch, so that no attempt after it can count as one during the outage.
    let recovered = Instant::now();
    phase.store(UP, Relaxed);
    relay.set(Mode::Forward);

    let mut report = Report::default();
    let summaries = join_lives(lives, &mut report).await;
    drop(progress);
    // A last `--once` life per agent sends what the stop left queued.
    for ((fake, attempts), first) in fakes.iter().zip(summaries) {
        let last = fake.agent(fake.http.clone())?.run_once().await;
        let attempts = attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        check_agent(fake, &attempts, &both(first, last), &ledger, &t, recovered, &mut report);
    }
    report.simulated = started.elapsed();
    (report.delivered, report.duplicates) = ledger.totals();
    report.max_queue_bytes = watch.max();
    Ok(report)
}

/// The fakes' queues, in memory where the host offers it: this scenario checks timing on real
/// time, and the fakes share two runtime workers on which each queue write waits for its fsync,
/// so a disk busy with other work (another test, a build) would stall the whole fleet and fail
/// the checks for a reason that is not the agent's.
fn memory_backed_tempdir() -> std::io::Result<tempfile::TempDir> {
    tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir())
}

fn check_agent(
    fake: &Fake,
    attempts: &[Attempt],
    summary: &agent::schedule::Summary,
    ledger: &Ledger,
    t: &Tuning,
    recovered: Instant,
    report: &mut Report,
) {
    add_summary(report, summary);
    let id = &fake.id;
    let produced = fake.collector.produced();
    report.produced += produced;
    let arrivals = ledger.arrivals(id);
    check_order(id, &arrivals, &mut report.failures);
    check_exactly(id, &arrivals, &(1..=produced).collect::<BTreeSet<_>>(), &mut report.failures);
    report.expect_eq(&format!("{id}: queued at the end"), summary.queued, 0);
    check_backoff(id, attempts, t, recovered, &mut report.failures);
}

/// Failed attempts before the recovery are spaced by their back-off: never sooner than its lower
/// bound (no hammering), never much later than its upper bound. After the recovery, a tick's
/// probe must bring the agent back within two ticks.
fn check_backoff(
    id: &str,
    attempts: &[Attempt],
    t: &Tuning,
    recovered: Instant,
    failures: &mut Vec<String>,
) {
    // Timers and a probe in flight when a timer fires delay an attempt, never hasten it.
    let late_slack = t.timeout + t.interval;
    let mut failed_in_row = 0u32;
    for pair in attempts.windows(2) {
        let (this, next) = (pair[0], pair[1]);
        if this.stored {
            failed_in_row = 0;
            continue;
        }
        if next.start < recovered {
            let gap = next.start - this.end;
            let (low, high) = Backoff::bounds(t.base, t.cap, failed_in_row);
            if gap < low {
                failures
                    .push(format!("{id}: retried after {gap:?}, before its back-off of {low:?}"));
            }
            if gap > high + late_slack {
                failures.push(format!("{id}: waited {gap:?}, past its back-off of {high:?}"));
            }
        }
        failed_in_row += 1;
    }
    let back = attempts.iter().find(|a| a.stored && a.start >= recovered);
    match back {
        Some(a) if a.start - recovered > t.interval * 2 + t.timeout => failures
            .push(format!("{id}: first delivery {:?} after the recovery", a.start - recovered)),
        Some(_) => {}
        None => failures.push(format!("{id}: nothing delivered after the recovery")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(at_ms: u64, stored: bool, zero: Instant) -> Attempt {
        let start = zero + Duration::from_millis(at_ms);
        Attempt { start, end: start + Duration::from_millis(1), stored }
    }

    #[tokio::test(start_paused = true)]
    async fn hammering_slow_returns_and_silence_after_recovery_are_caught() {
        let t = tuning(1);
        let zero = Instant::now();
        let recovered = zero + Duration::from_secs(10);
        // Back-off base 50 ms: the first wait is at least 25 ms, the second at least 50 ms.
        let good = [
            attempt(0, false, zero),
            attempt(40, false, zero),
            attempt(120, false, zero),
            attempt(10_100, true, zero),
        ];
        let mut failures = Vec::new();
        check_backoff("a", &good, &t, recovered, &mut failures);
        assert!(failures.is_empty(), "{failures:?}");

        let hammering =
            [attempt(0, false, zero), attempt(5, false, zero), attempt(10_100, true, zero)];
        let waited_too_long = [attempt(0, false, zero), attempt(5_000, false, zero)];
        for (attempts, expected) in
            [(&hammering[..], "before its back-off"), (&waited_too_long, "past its back-off")]
        {
            let mut failures = Vec::new();
            check_backoff("a", attempts, &t, recovered, &mut failures);
            assert!(failures.iter().any(|f| f.contains(expected)), "{failures:?}");
        }
        let mut failures = Vec::new();
        check_backoff(
            "a",
            &[attempt(0, false, zero), attempt(13_000, true, zero)],
            &t,
            recovered,
            &mut failures,
        );
        assert!(failures.iter().any(|f| f.contains("after the recovery")), "{failures:?}");
    }
}
