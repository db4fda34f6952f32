use crate::helpers::*;
use insta::assert_json_snapshot;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;

#[tokio::test]
async fn the_seed_example_is_stored_and_read_back() {
    let server = TestBackend::start();
    let (status, body) = server.ingest_raw(seed_example().as_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("ingest_stored", body);
    let (status, rows) = server.get("/api/events").await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("events_after_seed_example", rows, {
        "[].id" => "[id]",
        "[].ingested_at" => "[time]",
    });
}

#[tokio::test]
async fn a_retried_batch_id_is_stored_once() {
    let server = TestBackend::start();
    let b = batch("host-dup", 3);
    let (status, first) = server.ingest(&b).await;
    assert_eq!((status, first["stored"].as_u64()), (StatusCode::OK, Some(4)));
    // Signed anew (a new timestamp), as an agent does when it retries after a lost response.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, again) = server.ingest(&b).await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("ingest_duplicate", again);
    assert_eq!(server.count_rows("SELECT count(*) FROM events"), 4);
    // The same batch id from another agent is a different batch.
    let mut other = b.clone();
    other.agent_id = "host-other".into();
    assert_eq!(server.ingest(&other).await.1["stored"], 4);
}

#[tokio::test]
async fn bad_bodies_get_422_with_a_reason_and_store_nothing() {
    let server = TestBackend::start();
    let valid = seed_example();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"{not json".to_vec()),
        ("invalid utf-8", b"{\"agent_id\":\"\xff\xfe\"}".to_vec()),
        ("wrong type", valid.replace("0.32", "\"high\"").into_bytes()),
        (
            "unknown field",
            valid.replace("\"platform\"", "\"colour\": 1, \"platform\"").into_bytes(),
        ),
        ("empty event type", valid.replace("\"proc\"", "\"\"").into_bytes()),
        ("event without a type", valid.replace("\"type\": \"proc\", ", "").into_bytes()),
        ("nan", valid.replace("0.32", "NaN").into_bytes()),
        ("cpu above 1", valid.replace("0.32", "1.5").into_bytes()),
        ("negative memory", valid.replace("134217728", "-1").into_bytes()),
        ("huge number", valid.replace("134217728", "1e400").into_bytes()),
        (
            "empty events",
            br#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[]}"#
                .to_vec(),
        ),
        ("empty agent", valid.replace("host-01", "").into_bytes()),
        ("long agent", valid.replace("host-01", &"h".repeat(129)).into_bytes()),
        ("control char", valid.replace("host-01", "host\\u0007").into_bytes()),
        ("long name", valid.replace("example.exe", &"n".repeat(261)).into_bytes()),
        ("bad ts", valid.replace("2025-11-12T12:00:00+00:00", "12/11/2025").into_bytes()),
        ("array", b"[]".to_vec()),
        ("empty body", Vec::new()),
    ];
    for (name, body) in cases {
        let (status, err) = server.ingest_raw(&body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {err}");
        assert_eq!(err["code"], "invalid", "{name}");
        assert!(!err["detail"].as_str().unwrap().is_empty(), "{name}");
    }
    let too_many = {
        let mut b = batch("host-many", 0);
        b.events = vec![b.events[0].clone(); 1001];
        serde_json::to_vec(&b).unwrap()
    };
    let (status, err) = server.ingest_raw(&too_many).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_json_snapshot!("ingest_too_many_events", err);
    assert_eq!(server.count_rows("SELECT count(*) FROM events"), 0);
    assert_eq!(server.metric("telemetry_requests_refused_total{reason=\"invalid\"}"), 19.0);
}

#[tokio::test]
async fn a_thousand_events_are_accepted_and_a_larger_body_gets_413() {
    let server = TestBackend::start_with(&[("MAX_BODY_BYTES", "200000")]);
    let mut b = batch("host-big", 0);
    b.events = vec![b.events[0].clone(); 1000];
    let (status, body) = server.ingest(&b).await;
    assert_eq!((status, body["stored"].as_u64()), (StatusCode::OK, Some(1000)));
    let huge = vec![b' '; 200_001];
    let (status, err) = server.ingest_raw(&huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_json_snapshot!("ingest_too_large", err);
}

/// Arbitrary signed bodies, some of them near-valid: never a 5xx, never a crash.
#[tokio::test]
async fn no_signed_body_causes_a_server_error() {
    let server = TestBackend::start();
    let mut runner = TestRunner::deterministic();
    let fields = proptest::sample::select(vec![
        "\"cpu\":",
        "\"mem_free\":",
        "\"pid\":",
        "\"rss\":",
        "\"name\":",
        "\"type\":",
        "\"events\":",
        "-1",
        "1e308",
        "18446744073709551616",
        "null",
        "\"\"",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\"metric\"",
        "\"proc\"",
        "0.5",
        "\"\\u0000\"",
        "true",
    ]);
    let mutated = proptest::collection::vec(fields, 0..24).prop_map(|parts| {
        format!(
            r#"{{"agent_id":"p","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{{"type":"metric",{}}}]}}"#,
            parts.concat()
        )
    });
    let random = proptest::collection::vec(proptest::num::u8::ANY, 0..200)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    let strategy = proptest::prop_oneof![mutated, random];
    for _ in 0..300 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let (status, _) = server.ingest_raw(body.as_bytes()).await;
        assert!(status.is_success() || status.is_client_error(), "{status} for {body:?}");
    }
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}
