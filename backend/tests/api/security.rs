use crate::helpers::*;
use insta::assert_json_snapshot;
use reqwest::StatusCode;

#[tokio::test]
async fn every_refusal_is_a_401_naming_its_reason_and_stores_nothing() {
    let server = TestBackend::start();
    let body = seed_example().as_bytes();
    let ts = now_secs().to_string();
    let sig = protocol::sign(SECRET.as_bytes(), &ts, body);
    // Past the 30 s drift by a margin, so that a second passing during the test cannot bring
    // either back within it.
    let stale = (now_secs() - 35).to_string();
    let stale_sig = protocol::sign(SECRET.as_bytes(), &stale, body);
    let future = (now_secs() + 35).to_string();
    let future_sig = protocol::sign(SECRET.as_bytes(), &future, body);
    let wrong_secret = protocol::sign(b"not-the-secret", &ts, body);
    let cases = [
        ("wrong_token", "nope", ts.as_str(), sig.as_str()),
        ("empty_token", "", ts.as_str(), sig.as_str()),
        ("stale_timestamp", TOKEN, stale.as_str(), stale_sig.as_str()),
        ("future_timestamp", TOKEN, future.as_str(), future_sig.as_str()),
        ("malformed_timestamp", TOKEN, "yesterday", sig.as_str()),
        ("wrong_secret", TOKEN, ts.as_str(), wrong_secret.as_str()),
        ("malformed_signature", TOKEN, ts.as_str(), "abc"),
        ("uppercase_signature", TOKEN, ts.as_str(), &sig.to_uppercase()),
    ];
    for (name, token, ts, sig) in cases {
        let (status, err) = server.post_signed(body, token, ts, sig).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        if err["code"] == "stale_timestamp" && name != "malformed_timestamp" {
            // The skew in the message depends on when the test runs; its advice does not.
            assert!(err["detail"].as_str().unwrap().ends_with("check the clock"), "{err}");
            assert_json_snapshot!(format!("refused_{name}"), err, {".detail" => "[skew]"});
        } else {
            assert_json_snapshot!(format!("refused_{name}"), err);
        }
    }
    // A tampered body with the original signature.
    let tampered = seed_example().replace("0.32", "0.99");
    let (status, err) = server.post_signed(tampered.as_bytes(), TOKEN, &ts, &sig).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_signature")));
    assert_eq!(server.count_rows("SELECT count(*) FROM events"), 0);

    // The genuine request once, then its exact replay.
    assert_eq!(server.post_signed(body, TOKEN, &ts, &sig).await.0, StatusCode::OK);
    let (status, err) = server.post_signed(body, TOKEN, &ts, &sig).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_json_snapshot!("refused_replay", err);
    assert_eq!(server.count_rows("SELECT count(*) FROM events"), 2);
    assert_eq!(server.metric("telemetry_requests_refused_total{reason=\"replay\"}"), 1.0);
}

#[tokio::test]
async fn missing_headers_are_401s() {
    let server = TestBackend::start();
    for missing in ["x-api-token", "x-signature-ts", "x-signature"] {
        let ts = now_secs().to_string();
        let body = seed_example();
        let sig = protocol::sign(SECRET.as_bytes(), &ts, body.as_bytes());
        let mut req = server.http.post(server.url("/api/ingest")).body(body);
        for (name, value) in
            [("x-api-token", TOKEN), ("x-signature-ts", &ts), ("x-signature", &sig)]
        {
            if name != missing {
                req = req.header(name, value);
            }
        }
        let (status, err) = split(req.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{missing}");
        assert!(err["detail"].as_str().unwrap().contains("missing"), "{missing}: {err}");
    }
}

#[tokio::test]
async fn a_replay_is_refused_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let server = backend_process(&db, &[]);
    let body = seed_example().as_bytes();
    let ts = now_secs().to_string();
    let sig = protocol::sign(SECRET.as_bytes(), &ts, body);
    assert_eq!(server.post_signed(body, TOKEN, &ts, &sig).await.0, StatusCode::OK);
    server.kill();
    let server = TestBackend::start_on(&db, &[]);
    let (status, err) = server.post_signed(body, TOKEN, &ts, &sig).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("replay")));
    assert_eq!(server.count_rows("SELECT count(*) FROM events"), 2);
}

#[tokio::test]
async fn rotated_tokens_and_secrets_are_all_accepted() {
    let server = TestBackend::start_with(&[
        ("API_TOKEN", "old-token,new-token"),
        ("HMAC_SECRET", "old-s, new-s"),
    ]);
    for (token, secret) in [("old-token", "old-s"), ("new-token", "new-s"), ("old-token", "new-s")]
    {
        let body = serde_json::to_vec(&batch("rotating", 0)).unwrap();
        let ts = now_secs().to_string();
        let sig = protocol::sign(secret.as_bytes(), &ts, &body);
        let (status, _) = server.post_signed(&body, token, &ts, &sig).await;
        assert_eq!(status, StatusCode::OK, "{token} {secret}");
    }
    let body = serde_json::to_vec(&batch("rotating", 0)).unwrap();
    let ts = now_secs().to_string();
    let sig = protocol::sign(b"retired", &ts, &body);
    assert_eq!(server.post_signed(&body, "new-token", &ts, &sig).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn development_defaults_work_over_loopback_and_warn() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let server = TestBackend::start_without_credentials(&db, &[]);
    let body = seed_example().as_bytes();
    let ts = now_secs().to_string();
    let sig = protocol::sign(b"hmac-secret", &ts, body);
    assert_eq!(server.post_signed(body, "token", &ts, &sig).await.0, StatusCode::OK);
    assert!(server.logs().contains("development defaults are in use"), "{}", server.logs());
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let server = TestBackend::start_with(&[("RUST_LOG", "trace")]);
    server.ingest_raw(seed_example().as_bytes()).await;
    server.post_signed(b"{}", "wrong-token", "1", "00").await;
    server.clear(Some(ADMIN), "{}").await;
    let logs = server.logs();
    assert!(!logs.is_empty());
    assert!(!logs.contains(TOKEN) && !logs.contains(SECRET), "{logs}");
}

#[tokio::test]
async fn cors_allows_the_dashboard_origin_only() {
    let server = TestBackend::start();
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/api/events/clear"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-token,content-type")
            .send()
    };
    let ok = preflight("http://localhost:1337").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "http://localhost:1337");
    assert!(ok.headers().get("access-control-allow-credentials").is_none());
    let other = preflight("http://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn a_replay_ttl_under_twice_the_drift_stops_the_start_with_what_to_set() {
    let env = [("PORT", "0"), ("HMAC_DRIFT", "30"), ("HMAC_REPLAY_TTL", "45")];
    let (status, stderr) = refused_start(&env.map(|(k, v)| (k, v.as_ref())));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("HMAC_REPLAY_TTL is 45, shorter than twice HMAC_DRIFT (30)"),
        "{stderr}"
    );
    assert!(stderr.contains("at least 60"), "{stderr}");
}

#[tokio::test]
async fn short_tokens_are_warned_about_by_name_and_never_shown() {
    const SHORT: &str = "rd-7f3a";
    let server = TestBackend::start_with(&[
        ("API_TOKEN", "a-long-enough-api-token-0001"),
        ("HMAC_SECRET", "a-long-enough-hmac-secret-0001"),
        ("ADMIN_TOKEN", "a-long-enough-admin-token-0001"),
        ("READ_TOKEN", &format!("a-long-enough-read-token-0001,{SHORT}")),
    ]);
    let logs = server.logs();
    assert!(logs.contains("READ_TOKEN has a value shorter than 16 characters"), "{logs}");
    for long_enough in ["API_TOKEN has", "HMAC_SECRET has", "ADMIN_TOKEN has"] {
        assert!(!logs.contains(long_enough), "{logs}");
    }
    assert!(!logs.contains(SHORT), "{logs}");
}
