//! Alerts end to end: rules and channels set through the API, rounds on the real backend, and
//! notifications received by a real HTTP receiver of the test's own.

use crate::helpers::*;
use crate::live::{connect, next_json};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use protocol::IngestBatch;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a receiver got: each request's headers, its body as JSON (or a JSON string of its
/// text) and as sent.
type Inbox = Arc<Mutex<Vec<(HeaderMap, Value, Bytes)>>>;

/// An HTTP receiver on `addr` (a free port when it ends in `:0`) that answers 200 and keeps
/// every request.
pub(crate) async fn receiver(addr: SocketAddr) -> (SocketAddr, Inbox, tokio::task::JoinHandle<()>) {
    receive_on(tokio::net::TcpListener::bind(addr).await.expect("bind the receiver"))
}

/// The same on a listener of the caller's.
fn receive_on(
    listener: tokio::net::TcpListener,
) -> (SocketAddr, Inbox, tokio::task::JoinHandle<()>) {
    let inbox = Inbox::default();
    let kept = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                let json = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
                kept.lock().unwrap().push((headers, json, body));
                StatusCode::OK
            }
        }),
    );
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, inbox, task)
}

/// A backend in this process or the binary: whose logs a failed wait shows.
pub(crate) trait Logged: std::ops::Deref<Target = harness::api::Api> {
    fn all_logs(&self) -> String;
}

impl Logged for TestBackend {
    fn all_logs(&self) -> String {
        self.logs()
    }
}

impl Logged for BackendProcess {
    fn all_logs(&self) -> String {
        self.logs()
    }
}

/// A request with the admin token.
pub(crate) async fn admin(
    server: &harness::api::Api,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut req = server.http.request(method, server.url(path)).header("x-api-token", ADMIN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.expect("an admin request");
    if response.status() == reqwest::StatusCode::NO_CONTENT {
        return (response.status(), Value::Null);
    }
    split(response).await
}

pub(crate) async fn post(server: &harness::api::Api, path: &str, body: Value) -> Value {
    let (status, answer) = admin(server, reqwest::Method::POST, path, Some(body)).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{answer}");
    answer
}

/// Batches of one metric reading each with this cpu (0..1).
pub(crate) async fn send_cpu(server: &harness::api::Api, agent: &str, cpu: f64, batches: usize) {
    for _ in 0..batches {
        let mut b = batch(agent, 0);
        b.events[0].cpu = Some(cpu);
        assert_eq!(server.ingest(&b).await.0, reqwest::StatusCode::OK);
    }
}

/// Polls `check` until it gives a value, or fails with the backend's logs.
pub(crate) async fn wait_for<T>(
    server: &impl Logged,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}; logs:\n{}",
            server.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn fast_alerts() -> [(&'static str, &'static str); 2] {
    [("ALERT_EVAL_SECONDS", "1"), ("ALERT_RETRY_MAX_SECONDS", "1")]
}

/// The alerts in a state, by `GET /api/alerts`.
pub(crate) async fn alerts(server: &harness::api::Api, state: &str) -> Vec<Value> {
    let (status, list) = server.get(&format!("/api/alerts?state={state}")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

#[tokio::test]
async fn a_held_breach_fires_once_is_signed_to_the_webhook_and_resolves() {
    let server = TestBackend::start_with(&fast_alerts());
    let (hook, inbox, _task) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let channel = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "ops hook", "kind": "webhook", "url": format!("http://{hook}/hook"),
               "secret": "whsec"}),
    )
    .await;
    assert_eq!((channel["has_secret"].as_bool(), channel.get("secret")), (Some(true), None));
    post(
        &server,
        "/api/alerts/rules",
        json!({"name": "hot", "metric": "cpu", "threshold": 50, "window_s": 60,
               "resolve_after_s": 0, "severity": "critical", "channels": [channel["id"]]}),
    )
    .await;
    let mut live = connect(&server, "?alerts=1&agent_id=pc-1").await;

    send_cpu(&server, "pc-1", 0.9, 3).await;
    let firing =
        wait_for(&server, "the alert fires", async || alerts(&server, "firing").await.pop()).await;
    assert_eq!(
        (firing["agent_id"].as_str(), firing["severity"].as_str()),
        (Some("pc-1"), Some("critical"))
    );
    assert!(firing["summary"].as_str().unwrap().contains("90.0 %"), "{firing}");
    // Pushed live to a client that asked for alerts, after the rows it also gets.
    let pushed = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), next_json(&mut live)).await.unwrap();
        if msg["type"] == "alert" {
            break msg;
        }
    };
    assert_eq!(pushed["alert"]["id"], firing["id"]);

    let (headers, body, raw) = wait_for(&server, "the webhook receives it", async || {
        inbox.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(body["kind"], "firing");
    assert_eq!(body["alert"]["id"], firing["id"]);
    let key = body["idempotency_key"].as_str().unwrap();
    assert_eq!(headers["idempotency-key"], key);
    let ts = headers[protocol::HEADER_SIGNATURE_TS].to_str().unwrap();
    let signature = headers[protocol::HEADER_SIGNATURE].to_str().unwrap();
    assert_eq!(signature, protocol::sign(b"whsec", ts, &raw), "signed like ingest");

    // Readings fall: the average over the window drops below the threshold.
    send_cpu(&server, "pc-1", 0.0, 30).await;
    wait_for(&server, "the alert resolves", async || alerts(&server, "resolved").await.pop()).await;
    let got = wait_for(&server, "the all-clear arrives", async || {
        let got = inbox.lock().unwrap().clone();
        (got.len() >= 2).then_some(got)
    })
    .await;
    assert_eq!(got[1].1["kind"], "resolved");
    assert_ne!(got[1].1["idempotency_key"], key);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inbox.lock().unwrap().len(), 2, "one notification each, no more");
    assert!(alerts(&server, "open").await.is_empty());
    let (_, deliveries) = server.get("/api/alerts/notifications").await;
    let delivered = deliveries.as_array().unwrap().iter().filter(|d| d["delivered_at"].is_i64());
    assert_eq!(delivered.count(), 2, "{deliveries}");
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_notification_once_it_is_back() {
    let server = TestBackend::start_with(&fast_alerts());
    // A port nobody listens on yet: bound, so that nothing else takes it meanwhile (tests running
    // beside this one open connections all the time), and refusing connections until it listens.
    let down = tokio::net::TcpSocket::new_v4().unwrap();
    down.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let free = down.local_addr().unwrap();
    let channel = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "later", "kind": "slack", "url": format!("http://{free}/hook")}),
    )
    .await;
    post(
        &server,
        "/api/alerts/rules",
        json!({"name": "gone", "metric": "proc_missing", "process": "sqlservr.exe",
               "window_s": 60, "channels": [channel["id"]]}),
    )
    .await;
    send_cpu(&server, "db-1", 0.1, 2).await;
    wait_for(&server, "two attempts fail", async || {
        let (_, d) = server.get("/api/alerts/notifications").await;
        let first = d.as_array()?.first()?.clone();
        (first["attempts"].as_u64()? >= 2 && first["last_error"].is_string()).then_some(())
    })
    .await;
    let (_, inbox, _task) = receive_on(down.listen(64).unwrap());
    let (_, body, _) = wait_for(&server, "delivered once the receiver is back", async || {
        inbox.lock().unwrap().first().cloned()
    })
    .await;
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING] [warning] gone: sqlservr.exe is not running on db-1"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inbox.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn rules_channels_and_silences_are_checked_and_need_the_admin_token() {
    let server = TestBackend::start_with(&[("ALERT_EVAL_SECONDS", "0")]);
    let rule = json!({"name": "hot", "metric": "cpu", "threshold": 90});
    let anonymous = server.http.post(server.url("/api/alerts/rules")).json(&rule).send().await;
    let (status, refusal) = split(anonymous.unwrap()).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{refusal}");
    for (path, body, why) in [
        ("/api/alerts/rules", json!({"name": "x", "metric": "load", "threshold": 1}), "load"),
        ("/api/alerts/rules", json!({"name": "x", "metric": "cpu"}), "threshold"),
        (
            "/api/alerts/rules",
            json!({"name": "x", "metric": "proc_cpu", "threshold": 1}),
            "process",
        ),
        (
            "/api/alerts/rules",
            json!({"name": "x", "metric": "disk_free_pct", "threshold": 1,
            "aggregate": "max"}),
            "avg",
        ),
        (
            "/api/alerts/rules",
            json!({"name": "x", "metric": "cpu", "threshold": 1,
            "window_s": 5}),
            "window_s",
        ),
        (
            "/api/alerts/rules",
            json!({"name": "x", "metric": "cpu", "threshold": 1,
            "channels": [42]}),
            "channel 42",
        ),
        (
            "/api/alerts/channels",
            json!({"name": "x", "kind": "webhook",
            "url": "file:///etc/passwd"}),
            "http",
        ),
        (
            "/api/alerts/channels",
            json!({"name": "x", "kind": "email",
            "email": {"host": "smtp", "from": "not an address", "to": ["a@b.c"]}}),
            "address",
        ),
        ("/api/alerts/silences", json!({"ends_at": 1}), "future"),
    ] {
        let (status, answer) = admin(&server, reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        assert!(answer["detail"].as_str().unwrap().contains(why), "{answer}");
    }
    let created = post(&server, "/api/alerts/rules", rule).await;
    let path = format!("/api/alerts/rules/{}", created["id"]);
    let renamed = json!({"name": "hotter", "metric": "cpu", "threshold": 95});
    let (status, replaced) = admin(&server, reqwest::Method::PUT, &path, Some(renamed)).await;
    assert_eq!((status, replaced["name"].as_str()), (reqwest::StatusCode::OK, Some("hotter")));
    assert_eq!(server.get("/api/alerts/rules").await.1[0]["threshold"], 95.0);
    let (status, _) = admin(&server, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let (status, answer) = admin(&server, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (reqwest::StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, answer) = server.get("/api/alerts?state=burning").await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
}

/// Two backend processes on one database, both evaluating every second and both sending: each
/// of five alerts fires and notifies once; then one process is killed, and the other resolves
/// every alert and sends each all-clear once.
#[tokio::test]
async fn two_replica_processes_on_postgresql_fire_and_notify_each_alert_once() {
    let url = crate::replicas::fresh_database().await;
    let env = [("DATABASE_URL", url.as_str()), fast_alerts()[0], fast_alerts()[1]];
    let dir = tempfile::tempdir().unwrap();
    let a = backend_process(&dir.path().join("unused-a.db"), &env);
    let b = backend_process(&dir.path().join("unused-b.db"), &env);
    let (hook, inbox, _task) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let channel = post(
        &a,
        "/api/alerts/channels",
        json!({"name": "hook", "kind": "webhook", "url": format!("http://{hook}/hook")}),
    )
    .await;
    post(
        &b,
        "/api/alerts/rules",
        json!({"name": "hot", "metric": "cpu", "threshold": 50, "window_s": 60,
               "resolve_after_s": 0, "channels": [channel["id"]]}),
    )
    .await;
    let agents: Vec<String> = (0..5).map(|i| format!("pc-{i}")).collect();
    for (i, agent) in agents.iter().enumerate() {
        send_cpu(if i % 2 == 0 { &a } else { &b }, agent, 0.9, 2).await;
    }
    let received = |kind: &str| -> Vec<(String, String)> {
        let got = inbox.lock().unwrap().clone();
        got.iter()
            .filter(|(_, body, _)| body["kind"] == kind)
            .map(|(_, body, _)| {
                let agent = body["alert"]["agent_id"].as_str().unwrap().to_owned();
                (agent, body["idempotency_key"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    wait_for(&a, "five firings arrive", async || (received("firing").len() >= 5).then_some(()))
        .await;
    // Rounds go on on both replicas; nothing more may come.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let once_each = |mut got: Vec<(String, String)>| {
        got.sort();
        let agents_told: Vec<&str> = got.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(agents_told, agents, "one notification per agent: {got:?}");
        got.dedup_by(|x, y| x.1 == y.1);
        assert_eq!(got.len(), 5, "each with its own key");
    };
    once_each(received("firing"));
    let (_, all) = b.get("/api/alerts").await;
    assert_eq!(all.as_array().unwrap().len(), 5, "{all}");

    // A replica dies; the other carries every alert to its end.
    a.kill();
    for agent in &agents {
        send_cpu(&b, agent, 0.0, 30).await;
    }
    wait_for(&b, "five all-clears arrive", async || {
        (received("resolved").len() >= 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    once_each(received("resolved"));
    assert_eq!(received("firing").len(), 5);
    assert!(alerts(&b, "open").await.is_empty());
}

/// Each chat kind gets the body its service reads, and ntfy its headers.
#[tokio::test]
async fn chat_channels_get_their_services_payloads() {
    let server = TestBackend::start_with(&fast_alerts());
    let (hook, inbox, _task) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let mut ids = Vec::new();
    for kind in ["slack", "discord", "teams", "ntfy"] {
        let mut channel = json!({"name": kind, "kind": kind, "url": format!("http://{hook}/hook")});
        if kind == "ntfy" {
            channel["secret"] = json!("tk_ntfy");
        }
        ids.push(post(&server, "/api/alerts/channels", channel).await["id"].clone());
    }
    post(
        &server,
        "/api/alerts/rules",
        json!({"name": "down", "metric": "proc_missing", "process": "nginx.exe",
               "severity": "critical", "window_s": 60, "channels": ids}),
    )
    .await;
    send_cpu(&server, "web-1", 0.1, 1).await;
    let got = wait_for(&server, "four notifications", async || {
        let got = inbox.lock().unwrap().clone();
        (got.len() >= 4).then_some(got)
    })
    .await;
    let text = "[FIRING] [critical] down: nginx.exe is not running on web-1";
    // Markdown shows the escaped brackets as brackets.
    let markdown = r"\[FIRING\] \[critical\] down: nginx.exe is not running on web-1";
    let has =
        |key: &str, text: &str| got.iter().any(|(_, body, _)| body.get(key) == Some(&json!(text)));
    assert!(has("text", text), "slack reads `text`: {got:?}");
    assert!(has("text", markdown), "teams reads `text` as Markdown: {got:?}");
    assert!(has("content", markdown), "discord reads `content`: {got:?}");
    let (headers, body, _) =
        got.iter().find(|(_, body, _)| body.is_string()).expect("ntfy's plain-text body");
    assert_eq!(body, &json!(text));
    assert_eq!(headers["title"], "Alert: down on web-1");
    assert_eq!(headers["priority"], "5");
    assert_eq!(headers["authorization"], "Bearer tk_ntfy");
}

#[tokio::test]
async fn clearing_an_agent_resolves_its_alerts_without_a_notification() {
    let server = TestBackend::start_with(&fast_alerts());
    let (hook, inbox, _task) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let channel = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "hook", "kind": "webhook", "url": format!("http://{hook}/hook")}),
    )
    .await;
    post(
        &server,
        "/api/alerts/rules",
        json!({"name": "gone", "metric": "proc_missing", "process": "nginx.exe",
               "window_s": 60, "channels": [channel["id"]]}),
    )
    .await;
    send_cpu(&server, "old-pc", 0.1, 1).await;
    wait_for(&server, "the alert fires", async || alerts(&server, "firing").await.pop()).await;
    let (status, _) = server.clear(Some(ADMIN), r#"{"agent_id": "old-pc"}"#).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    wait_for(&server, "the alert resolves", async || alerts(&server, "resolved").await.pop()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kinds: Vec<Value> =
        inbox.lock().unwrap().iter().map(|(_, b, _)| b["kind"].clone()).collect();
    assert_eq!(kinds, [json!("firing")], "nobody is told of an all-clear for a cleared agent");
}

/// A batch from `agent` listing Spooler in `state`, with `errors` Event Log errors.
fn machine_batch(agent: &str, state: protocol::ServiceState, errors: usize) -> IngestBatch {
    let mut b = batch(agent, 0);
    b.services = Some(vec![protocol::Service {
        name: "Spooler".into(),
        display_name: Some("Print Spooler".into()),
        state,
        start: Some(protocol::StartMode::Auto),
    }]);
    let error = protocol::Notice {
        ts: b.ts.clone(),
        kind: protocol::NoticeKind::Log,
        level: protocol::NoticeLevel::Error,
        source: "System/Service Control Manager".into(),
        code: Some(7034),
        message: "The Print Spooler service terminated unexpectedly.".into(),
    };
    b.notices = Some(vec![error; errors]);
    b
}

#[tokio::test]
async fn a_stopped_service_and_event_log_errors_raise_alerts() {
    use protocol::ServiceState::{Running, Stopped};
    let server = TestBackend::start_with(&fast_alerts());
    for rule in [
        json!({"name": "spooler", "metric": "service_down", "service": "Spooler",
               "resolve_after_s": 0}),
        json!({"name": "not watched", "metric": "service_down", "service": "MSSQLSERVER"}),
        json!({"name": "errors", "metric": "log_errors", "threshold": 2, "window_s": 600}),
    ] {
        post(&server, "/api/alerts/rules", rule).await;
    }
    assert_eq!(server.ingest(&machine_batch("pc-w", Stopped, 3)).await.0, StatusCode::OK);
    let firing = wait_for(&server, "both alerts fire", async || {
        let firing = alerts(&server, "firing").await;
        (firing.len() == 2).then_some(firing)
    })
    .await;
    let mut summaries: Vec<&str> = firing.iter().map(|a| a["summary"].as_str().unwrap()).collect();
    summaries.sort_unstable();
    assert_eq!(
        summaries,
        [
            "errors: 3 log errors in 10 min on pc-w (above 2)",
            "spooler: service Spooler is not running on pc-w"
        ]
    );
    assert_eq!(server.ingest(&machine_batch("pc-w", Running, 0)).await.0, StatusCode::OK);
    let resolved = wait_for(&server, "the service alert resolves", async || {
        alerts(&server, "resolved").await.pop()
    })
    .await;
    assert_eq!(resolved["rule_name"], "spooler");
    assert_eq!(alerts(&server, "firing").await.len(), 1, "the errors stay in the window");

    let (status, refusal) = admin(
        &server,
        reqwest::Method::POST,
        "/api/alerts/rules",
        Some(json!({"name": "x", "metric": "service_down"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refusal["detail"].as_str().unwrap().contains("service"), "{refusal}");
}
