//! The agent's queue and real sender against wiremock answers that are not a plain success: what
//! is retried stays queued until stored once, only a refused body is set aside, and nothing is
//! trusted that does not come from the backend. Each agent life is an `--once` run, which stops
//! at the first failed delivery, so the order of answers is the order of the lives.

use agent::collect::{Collector, Reading};
use agent::queue::fs::StdFs;
use agent::queue::outbox::Outbox;
use agent::queue::{DiskQueue, Limits, REJECTED_DIR};
use agent::retry::Backoff;
use agent::schedule::{Agent, Summary};
use agent::send::HttpTransport;
use protocol::{Event, EventKind, HEADER_TOKEN, IngestBatch};
use std::path::Path;
use std::time::Duration;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "answers-token";

struct Idle;

impl Collector for Idle {
    fn collect(&mut self) -> Reading {
        Reading { metric: Event::empty(EventKind::Metric), procs: vec![], drives: vec![] }
    }
}

/// One `--once` life on the queue in `dir`: a tick, then delivery until the first failure.
async fn life(url: &str, dir: &Path) -> Summary {
    let agent = Agent {
        collector: Idle,
        transport: HttpTransport::new(url, TOKEN, "answers-secret", Duration::from_secs(5))
            .unwrap(),
        policy: Backoff::default(),
        outbox: Outbox::new(DiskQueue::open(StdFs, dir, Limits::NONE).unwrap()),
        agent_id: "answers".into(),
        interval: Duration::from_secs(5),
        stats: Default::default(),
    };
    agent.run_once().await
}

fn stored() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({"stored": 1}))
}

fn error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(serde_json::json!({"detail": format!("refused: {code}"), "code": code}))
}

/// The batch id of each request `server` received, in order.
async fn batch_ids(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap();
    let batch = |body: &[u8]| serde_json::from_slice::<IngestBatch>(body).unwrap();
    requests.iter().map(|r| batch(&r.body).batch_id.unwrap()).collect()
}

fn files_in(dir: &Path, suffix: &str) -> usize {
    let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name());
    names.filter(|n| n.to_string_lossy().ends_with(suffix)).count()
}

/// Answers `failures` in turn, one life each, then stores: every failure is retried, and after
/// the last life every batch is stored exactly once and nothing is set aside.
async fn retried_until_stored(failures: Vec<ResponseTemplate>) {
    let server = MockServer::start().await;
    let refusals = failures.len();
    for failure in failures {
        Mock::given(path("/api/ingest"))
            .respond_with(failure)
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/api/ingest"))
        .respond_with(stored())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=refusals {
        let summary = life(&server.uri(), dir.path()).await;
        assert_eq!((summary.delivered, summary.rejected, summary.queued), (0, 0, n as u64));
    }
    let last = life(&server.uri(), dir.path()).await;
    assert_eq!((last.delivered, last.queued), (refusals as u64 + 1, 0), "{last:?}");
    assert_eq!(files_in(&dir.path().join(REJECTED_DIR), ""), 0);
    let ids = batch_ids(&server).await;
    // The oldest batch was sent once per failure and once more; each answered 200 once.
    assert!(ids[..=refusals].iter().all(|id| *id == ids[0]), "{ids:?}");
    let stored: std::collections::HashSet<_> = ids[refusals..].iter().collect();
    assert_eq!(stored.len(), refusals + 1, "{ids:?}");
}

#[tokio::test]
async fn a_stale_timestamp_is_retried_then_stored_once() {
    retried_until_stored(vec![error(401, "stale_timestamp")]).await;
}

#[tokio::test]
async fn too_many_requests_and_unavailable_are_retried_then_stored() {
    retried_until_stored(vec![error(429, "busy"), error(503, "storage_unavailable")]).await;
}

#[tokio::test]
async fn a_success_without_the_backends_answer_is_retried() {
    let portal = ResponseTemplate::new(200)
        .set_body_raw("<html><body>Accept the terms to use the Wi-Fi</body></html>", "text/html");
    retried_until_stored(vec![portal]).await;
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_the_token_never_leaves() {
    let elsewhere = MockServer::start().await;
    // Were the redirect followed, this host would answer like the backend.
    Mock::given(any()).respond_with(stored()).mount(&elsewhere).await;
    let server = MockServer::start().await;
    for status in [302, 307] {
        Mock::given(path("/api/ingest"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("location", format!("{}/api/ingest", elsewhere.uri())),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let summary = life(&server.uri(), dir.path()).await;
        assert_eq!((summary.delivered, summary.rejected), (0, 0), "{summary:?}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    let leaked = elsewhere.received_requests().await.unwrap();
    assert!(leaked.is_empty(), "followed to another host: {leaked:?}");
    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(sent.headers[HEADER_TOKEN], TOKEN);
    assert_eq!(files_in(dir.path(), ".batch"), 2, "both batches stay queued");
}

#[tokio::test]
async fn an_invalid_body_is_set_aside_with_its_reason() {
    let server = MockServer::start().await;
    Mock::given(path("/api/ingest")).respond_with(error(422, "invalid")).mount(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = life(&server.uri(), dir.path()).await;
    assert_eq!((summary.delivered, summary.rejected, summary.queued), (0, 1, 0), "{summary:?}");
    let rejected = dir.path().join(REJECTED_DIR);
    let note = std::fs::read_dir(&rejected)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".reason.txt"))
        .unwrap();
    let reason = std::fs::read_to_string(note).unwrap();
    assert_eq!(reason, "422 Unprocessable Entity invalid: refused: invalid");
    assert_eq!((files_in(&rejected, ".batch"), files_in(&rejected, ".reason.txt")), (1, 1));
}
