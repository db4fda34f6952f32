//! Two backend processes on one PostgreSQL database behave as one backend.

use crate::helpers::*;
use crate::live::{connect, next_json, wait_for_clients};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

/// A new, empty database on the tests' PostgreSQL server (see `harness::postgres`).
pub(crate) async fn fresh_database() -> String {
    let admin = harness::postgres::server_url();
    let name = format!("telemetry_replicas_{}", uuid::Uuid::new_v4().simple());
    backend::storage::create_database(&admin, &name).await.unwrap()
}

fn sign(ts: &str, body: &[u8]) -> String {
    protocol::sign(SECRET.as_bytes(), ts, body)
}

#[tokio::test]
async fn two_replicas_share_rows_the_live_feed_replays_and_batch_ids() {
    let url = fresh_database().await;
    let a = TestBackend::start_with(&[("DATABASE_URL", &url)]);
    let b = TestBackend::start_with(&[("DATABASE_URL", &url)]);
    let mut live_b = connect(&b, "?agent_id=host-a").await;
    wait_for_clients(&b, 1.0).await;

    // Ingested by A: read back and pushed live by B within a second.
    let first = batch("host-a", 2);
    let body = serde_json::to_vec(&first).unwrap();
    let ts = now_secs().to_string();
    let sig = sign(&ts, &body);
    let sent = Instant::now();
    assert_eq!(a.post_signed(&body, TOKEN, &ts, &sig).await.0, StatusCode::OK);
    let pushed = tokio::time::timeout(Duration::from_secs(3), next_json(&mut live_b))
        .await
        .unwrap_or_else(|_| panic!("B pushed nothing; its logs:\n{}", b.logs()));
    assert!(sent.elapsed() < Duration::from_secs(1), "pushed after {:?}", sent.elapsed());
    assert_eq!(pushed["agent_id"], "host-a");
    let (_, rows) = b.get("/api/events?agent_id=host-a").await;
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(b.get("/api/agents").await.1[0]["agent_id"], "host-a");

    // The same signed request replayed to B is refused.
    let (status, refusal) = b.post_signed(&body, TOKEN, &ts, &sig).await;
    assert_eq!((status, refusal["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("replay")));

    // One batch id sent to both at once (signed apart, as an agent signs each attempt) is
    // stored once.
    let twin = serde_json::to_vec(&batch("host-a", 1)).unwrap();
    let (ts_a, ts_b) = (now_secs().to_string(), (now_secs() - 1).to_string());
    let (sig_a, sig_b) = (sign(&ts_a, &twin), sign(&ts_b, &twin));
    let ((sa, ra), (sb, rb)) = tokio::join!(
        a.post_signed(&twin, TOKEN, &ts_a, &sig_a),
        b.post_signed(&twin, TOKEN, &ts_b, &sig_b)
    );
    assert_eq!((sa, sb), (StatusCode::OK, StatusCode::OK));
    let duplicates = [&ra, &rb].iter().filter(|r| r["duplicate"] == true).count();
    assert_eq!(duplicates, 1, "{ra} {rb}");
    let (_, rows) = a.get("/api/events?agent_id=host-a").await;
    assert_eq!(rows.as_array().unwrap().len(), 5);
}
