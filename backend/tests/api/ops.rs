use crate::helpers::*;
use insta::assert_json_snapshot;
use reqwest::StatusCode;

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let server = TestBackend::start();
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("healthz", body);
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_json_snapshot!("readyz", body);

    server.ingest(&batch("m", 2)).await;
    let resp = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for needle in [
        "telemetry_events_stored_total 3",
        "telemetry_batches_total{result=\"stored\"} 1",
        "telemetry_replay_cache_entries 1",
        "telemetry_ws_clients 0",
        // Stored, and waiting to be written into its agent's index with the next ones.
        "telemetry_index_waiting_batches 1",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    // The readiness probe commits too, so at least two groups were committed.
    assert!(server.metric("telemetry_commit_requests_count") >= 2.0);
    assert!(server.metric("telemetry_commit_seconds_bucket{le=\"+Inf\"}") >= 2.0);

    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_json_snapshot!("openapi_paths", paths);
    assert!(doc["components"]["schemas"]["IngestBatch"].is_object());
    // The seed's shapes: only the type is required, and any type name is allowed.
    let event = &doc["components"]["schemas"]["Event"];
    assert_eq!(event["required"], serde_json::json!(["type"]));
    assert_eq!(event["properties"]["type"]["type"], "string");
    assert!(event["properties"]["type"].get("enum").is_none());
    assert_json_snapshot!("openapi_event_schema", event);
}

#[tokio::test]
async fn the_healthcheck_flag_reports_a_running_backend() {
    let server = TestBackend::start();
    let probe = |port: u16| {
        std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
            .args(["--healthcheck", "--host", "0.0.0.0", "--port", &port.to_string()])
            .status()
            .unwrap()
    };
    assert!(probe(server.addr.port()).success());
    // Bound but not listening: refuses connections, and no other test's server can take it.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    assert!(!probe(closed.local_addr().unwrap().port()).success());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = TestBackend::start();
    let (status, body) = server.get("/api/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_json_snapshot!("not_found", body);
    let (status, body) =
        split(server.http.delete(server.url("/api/events")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_json_snapshot!("method_not_allowed", body);
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = backend_process(&dir.path().join("t.db"), &[]);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    let url = server.url("");
    for t in 0..8 {
        let acked = acked.clone();
        let http = server.http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                if !post_batch(&http, &url, &batch(&format!("term-{t}"), 4)).await {
                    break;
                }
                acked.fetch_add(5, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let db = server.db_path.clone();
    let status = server.terminate();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(status.success(), "{status:?}");
    let stored = harness::backend::count_rows(&db, "SELECT count(*) FROM events");
    let acked = acked.load(std::sync::atomic::Ordering::SeqCst) as i64;
    assert!(acked > 0);
    assert!(stored >= acked, "stored {stored} < acknowledged {acked}");
}
