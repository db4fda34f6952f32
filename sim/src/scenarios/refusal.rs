//! Refusal, against wiremock on real time: every fourth reading is refused for its content (422)
//! and one agent in five has a wrong token (401). A batch refused for its content must go to
//! `rejected/` with its reason after one attempt and never hold up the batches behind it; a
//! wrong token is a fault of the agent's configuration, fixed outside it, so its batches must
//! all stay queued, retried with back-off and never set aside.

use super::fake::{Fake, Tuning};
use super::{Progress, QueueWatch, TOKEN, add_summary, both, count_files, join_lives};
use crate::ledger::{Ledger, check_exactly, check_order};
use crate::numbered::Stamp;
use crate::{Config, Report, SimError};
use agent::queue::REJECTED_DIR;
use agent::schedule::Summary;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Ticks each agent lives through: enough for a wrong token to be refused several times over.
const TICKS: u32 = 20;
/// A wrong token's requests at most: about one per tick (each tick's probe finds the backend up
/// and resumes), a few more while the back-off is shorter than a tick, and the final `--once`.
const MOST_TRIES_WITH_A_WRONG_TOKEN: u32 = 2 * TICKS;
const WRONG_TOKEN: &str = "not-the-token";

fn refused_for_content(seq: u64) -> bool {
    seq.is_multiple_of(4)
}

fn has_wrong_token(n: usize) -> bool {
    n % 5 == 4
}

/// Slower ticks for a bigger fleet, so that two cores keep up with the requests.
fn tuning(agents: usize) -> Tuning {
    let interval = Duration::from_millis(100).max(Duration::from_millis(3) * agents as u32);
    Tuning { interval, timeout: interval * 10, base: interval / 2, cap: interval * 4 }
}

/// Checks the token and the content like the backend would, counting attempts per batch.
#[derive(Default)]
struct Gate {
    ledger: Ledger,
    /// (agent id, reading) -> requests
    attempts: Mutex<HashMap<(String, u64), u32>>,
}

/// The mock server owns its responder; the scenario keeps a handle to read the gate after.
struct Shared(Arc<Gate>);

impl Respond for Shared {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let refuse = |status, code, detail| {
            ResponseTemplate::new(status)
                .set_body_json(serde_json::json!({"detail": detail, "code": code}))
        };
        let gate = &self.0;
        let stamp = match Stamp::of(&request.body) {
            Ok(stamp) => stamp,
            Err(why) => return refuse(422, protocol::codes::INVALID, why),
        };
        let mut attempts = gate.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *attempts.entry((stamp.agent_id.clone(), stamp.seq)).or_default() += 1;
        drop(attempts);
        let token = request.headers.get(protocol::HEADER_TOKEN).and_then(|v| v.to_str().ok());
        if token != Some(TOKEN) {
            return refuse(401, protocol::codes::BAD_TOKEN, "wrong API token".into());
        }
        if refused_for_content(stamp.seq) {
            return refuse(
                422,
                protocol::codes::INVALID,
                format!("reading {} is not acceptable", stamp.seq),
            );
        }
        let duplicate = gate.ledger.receive(stamp);
        ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"stored": u32::from(!duplicate), "duplicate": duplicate}),
        )
    }
}

pub(crate) async fn run(config: &Config) -> Result<Report, SimError> {
    let gate = Arc::new(Gate::default());
    let server = MockServer::builder().disable_request_recording().start().await;
    Mock::given(path("/api/ingest"))
        .and(method("POST"))
        .respond_with(Shared(gate.clone()))
        .mount(&server)
        .await;
    Mock::given(path("/healthz")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let tmp = tempfile::tempdir().map_err(|e| SimError::setup("temporary folder", e))?;
    let url = server.uri();

    let t = tuning(config.agents);
    let run_for = t.interval * TICKS;
    let mut fakes = Vec::new();
    let mut lives = Vec::new();
    for n in 0..config.agents {
        let token = if has_wrong_token(n) { WRONG_TOKEN } else { TOKEN };
        let fake = Fake::new("refusal", n, config.seed, tmp.path(), &url, token, t)?;
        lives.push(tokio::spawn(fake.agent(fake.http.clone())?.run(tokio::time::sleep(run_for))));
        fakes.push((fake, token == TOKEN));
    }
    let stats = fakes.iter().map(|(f, _)| f.stats.clone()).collect();
    let progress = Progress::start(config.progress, "refusal", stats, Duration::from_secs(1));
    let watch = QueueWatch::start(fakes.iter().map(|(f, _)| f.dir.clone()).collect());
    let mut report = Report { simulated: run_for, ..Report::default() };
    let firsts = join_lives(lives, &mut report).await;
    drop(progress);
    for ((fake, good_token), first) in fakes.iter().zip(firsts) {
        let summary = both(first, fake.agent(fake.http.clone())?.run_once().await);
        add_summary(&mut report, &summary);
        let produced = fake.collector.produced();
        report.produced += produced;
        check_agent(&fake.id, &fake.dir, *good_token, produced, &summary, &gate, &mut report);
    }
    (report.delivered, report.duplicates) = gate.ledger.totals();
    report.max_queue_bytes = watch.max();
    Ok(report)
}

fn check_agent(
    id: &str,
    dir: &Path,
    good_token: bool,
    produced: u64,
    summary: &Summary,
    gate: &Gate,
    report: &mut Report,
) {
    let rejected_dir = dir.join(REJECTED_DIR);
    let reasons: Vec<String> = std::fs::read_dir(&rejected_dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".reason.txt"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let set_aside = count_files(&rejected_dir, ".batch") as u64;
    report.expect_eq(
        &format!("{id}: refusals counted vs files in rejected/"),
        summary.rejected,
        set_aside,
    );
    report.expect_eq(
        &format!("{id}: reasons beside the refused batches"),
        reasons.len() as u64,
        set_aside,
    );
    let arrivals = gate.ledger.arrivals(id);
    let attempts = gate.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let tries = |seq: u64| attempts.get(&(id.to_owned(), seq)).copied().unwrap_or(0);
    if good_token {
        let expected: BTreeSet<u64> = (1..=produced).filter(|s| !refused_for_content(*s)).collect();
        check_order(id, &arrivals, &mut report.failures);
        check_exactly(id, &arrivals, &expected, &mut report.failures);
        let refused = produced - expected.len() as u64;
        report.expect_eq(&format!("{id}: refused for content vs rejected"), set_aside, refused);
        if let Some(seq) = (1..=produced).find(|s| refused_for_content(*s) && tries(*s) != 1) {
            report.fail(format!(
                "{id}: reading {seq}, refused for its content, was sent {} times",
                tries(seq)
            ));
        }
        if let Some(r) = reasons.iter().find(|r| !r.contains("invalid")) {
            report.fail(format!("{id}: a reason without the backend's code: {r}"));
        }
        report.expect_eq(&format!("{id}: queued at the end"), summary.queued, 0);
    } else {
        if !arrivals.is_empty() {
            report.fail(format!("{id}: stored with a wrong token"));
        }
        report.expect_eq(&format!("{id}: set aside with a wrong token"), set_aside, 0);
        report.expect_eq(&format!("{id}: queued vs produced"), summary.queued, produced);
        // Retried oldest first: the batch at the head is the only one ever sent.
        if let Some(seq) = (2..=produced).find(|s| tries(*s) > 0) {
            report.fail(format!("{id}: reading {seq} was sent before the oldest was stored"));
        }
        if tries(1) < 2 {
            report.fail(format!("{id}: a refused token was not retried ({} tries)", tries(1)));
        }
        let most = (1..=produced).map(tries).max().unwrap_or(0);
        if most > MOST_TRIES_WITH_A_WRONG_TOKEN {
            report.fail(format!("{id}: a batch was sent {most} times, hammering the backend"));
        }
    }
}
