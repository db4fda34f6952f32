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

#[tokio::test]
async fn logging_out_everywhere_on_one_replica_ends_the_sessions_the_other_accepts() {
    use crate::sessions::{closed, get_with, live, offer, session};
    let url = fresh_database().await;
    let env = [("DATABASE_URL", url.as_str()), ("READ_TOKEN", harness::READER)];
    let (a, b) = (TestBackend::start_with(&env), TestBackend::start_with(&env));
    // Made by A, taken by B: for the API and the live feed.
    let reader = session(&a, harness::READER).await;
    let leaving = session(&a, harness::READER).await;
    assert_eq!(get_with(&b, "/api/agents", &reader).await, StatusCode::OK);
    let (mut on_b, _) = live(&b, &offer(&reader)).await.expect("B takes A's session");

    // One session logged out on A ends on B.
    let out = a.http.delete(a.url("/api/session")).bearer_auth(&leaving).send();
    assert_eq!(out.await.unwrap().status(), StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_with(&b, "/api/agents", &leaving).await != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "B still takes the session logged out on A");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get_with(&b, "/api/agents", &reader).await, StatusCode::OK);

    // Every session, revoked on A, ends on B, and so does B's socket.
    let revoke = a.http.post(a.url("/api/session/revoke")).header("x-api-token", ADMIN).send();
    assert_eq!(revoke.await.unwrap().status(), StatusCode::NO_CONTENT);
    let (code, reason) = closed(&mut on_b, Duration::from_secs(10)).await;
    assert_eq!(code, 1008, "{reason}");
    assert_eq!(get_with(&b, "/api/agents", &reader).await, StatusCode::UNAUTHORIZED);
    // A session made on B after the revocation is good on A.
    let fresh = session(&b, harness::READER).await;
    assert_eq!(get_with(&a, "/api/agents", &fresh).await, StatusCode::OK);
}
