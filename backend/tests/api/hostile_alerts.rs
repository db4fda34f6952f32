//! Alert delivery against hostile conditions: receivers that fail with their credentials in the
//! failing URL, channel rows changed by hand, and an agent whose id is chat markup meant to ping
//! a channel with a phishing link.

use crate::alerts::{admin, fast_alerts, post, receiver, send_cpu, wait_for};
use crate::helpers::*;
use harness::READER;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `GET path` with the read role's token.
async fn read(server: &TestBackend, path: &str) -> Value {
    let answer = server.http.get(server.url(path)).bearer_auth(READER).send().await.unwrap();
    let (status, body) = split(answer).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

#[tokio::test]
async fn failed_deliveries_keep_webhook_urls_and_secrets_out_of_answers_and_logs() {
    let env = [fast_alerts()[0], fast_alerts()[1], ("READ_TOKEN", READER)];
    let server = TestBackend::start_with(&env);
    // Takes the connection into its backlog and never answers: the attempt times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let timeout_url =
        format!("http://{}/services/T000/B000/TIMEOUTPATHSECRET", silent.local_addr().unwrap());
    let unresolved_url = "https://hooks.slack.invalid/services/T000/B000/DNSPATHSECRET";
    let secret = "whsec-CHANNELSECRET";
    let hung = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "hung", "kind": "webhook", "url": timeout_url, "secret": secret}),
    )
    .await;
    let nowhere = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "nowhere", "kind": "slack", "url": unresolved_url}),
    )
    .await;
    post(
        &server,
        "/api/alerts/rules",
        json!({"name": "gone", "metric": "proc_missing", "process": "nginx.exe",
               "window_s": 60, "channels": [hung["id"], nowhere["id"]]}),
    )
    .await;
    send_cpu(&server, "web-1", 0.1, 1).await;
    let errors = wait_for(&server, "both channels failed an attempt", async || {
        let list = read(&server, "/api/alerts/notifications").await;
        let error = |channel: &Value| {
            let d = list.as_array()?.iter().find(|d| d["channel_id"] == channel["id"])?;
            d["last_error"].as_str().map(str::to_owned)
        };
        Some((error(&hung)?, error(&nowhere)?))
    })
    .await;
    // Still says what went wrong.
    assert!(errors.0.contains("timed out"), "{errors:?}");
    assert!(errors.1.contains("dns error"), "{errors:?}");

    let credentials = [timeout_url.as_str(), "TIMEOUTPATHSECRET", unresolved_url, "DNSPATHSECRET"];
    let mut answers = Vec::new();
    for path in ["/api/alerts/notifications", "/api/alerts", "/api/alerts/rules"] {
        answers.push((path, read(&server, path).await.to_string()));
    }
    let refused = server.http.get(server.url("/api/alerts/channels")).bearer_auth(READER);
    let (status, refusal) = split(refused.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "channels are listed to admins only");
    answers.push(("/api/alerts/channels as reader", refusal.to_string()));
    for (path, answer) in &answers {
        for credential in credentials.iter().chain([&secret]) {
            assert!(!answer.contains(credential), "{path} shows {credential}: {answer}");
        }
    }
    // Admins see the URLs they configured, never the secret.
    let (_, channels) = admin(&server, Method::GET, "/api/alerts/channels", None).await;
    assert!(!channels.to_string().contains(secret), "{channels}");
    let logs = server.logs();
    assert!(logs.contains("a notification failed; will retry"), "{logs}");
    for credential in credentials.iter().chain([&secret]) {
        assert!(!logs.contains(credential), "the log shows {credential}:\n{logs}");
    }
}

/// Within the agent id's limits (printable, 128 characters): a Slack broadcast, a Slack link and
/// a Markdown link with a misleading text, and a Discord mass mention.
const HOSTILE_AGENT: &str =
    "<!channel> <https://phish.example|Log in again> [Log in](https://phish.example) @everyone";

#[tokio::test]
async fn chat_markup_in_an_agent_id_reaches_chat_services_inert() {
    let server = TestBackend::start_with(&fast_alerts());
    let mut inboxes = Vec::new();
    let mut ids = Vec::new();
    for kind in ["slack", "discord", "teams", "webhook"] {
        let (hook, inbox, task) = receiver("127.0.0.1:0".parse().unwrap()).await;
        let url = format!("http://{hook}/hook");
        let channel = post(
            &server,
            "/api/alerts/channels",
            json!({"name": kind, "kind": kind,
                                                                    "url": url}),
        )
        .await;
        ids.push(channel["id"].clone());
        inboxes.push((inbox, task));
    }
    post(
        &server,
        "/api/alerts/rules",
        json!({"name": "gone", "metric": "proc_missing", "process": "nginx.exe",
               "window_s": 60, "channels": ids}),
    )
    .await;
    send_cpu(&server, HOSTILE_AGENT, 0.1, 1).await;
    let mut bodies = Vec::new();
    for (inbox, _) in &inboxes {
        let body = wait_for(&server, "each receiver gets the firing", async || {
            inbox.lock().unwrap().first().map(|(_, body, _)| body.clone())
        })
        .await;
        bodies.push(body);
    }
    let [slack, discord, teams, webhook] = &bodies[..] else { unreachable!() };

    let text = slack["text"].as_str().unwrap();
    assert!(!text.contains(['<', '>']), "Slack reads <...> as a mention or link: {text}");
    assert!(
        text.contains("&lt;!channel&gt; &lt;https://phish.example|Log in again&gt;"),
        "shown as sent: {text}"
    );
    assert!(!text.contains("@everyone"), "Mattermost and Rocket.Chat ping on @: {text}");

    assert_eq!(discord["allowed_mentions"], json!({"parse": []}), "{discord}");
    for (service, text) in [("Discord", &discord["content"]), ("Teams", &teams["text"])] {
        let text = text.as_str().unwrap();
        assert!(text.contains(r"\[Log in\](https://phish.example)"), "{service}: {text}");
        assert!(text.contains(r"\<!channel\>"), "{service}: {text}");
        assert!(!text.contains("@everyone"), "{service}: {text}");
    }

    // Our own JSON carries the values as they are: its receiver is a program.
    assert_eq!(webhook["alert"]["agent_id"], HOSTILE_AGENT);
    assert!(webhook["text"].as_str().unwrap().ends_with(HOSTILE_AGENT), "{webhook}");
}

#[tokio::test]
async fn a_channel_row_changed_by_hand_is_logged_without_its_values() {
    let server = TestBackend::start_with(&[("ALERT_EVAL_SECONDS", "0")]);
    let url = "https://hooks.slack.com/services/T000/B000/HANDEDITEDSECRET";
    post(&server, "/api/alerts/channels", json!({"name": "ops", "kind": "slack", "url": url}))
        .await;
    // The password put where the e-mail settings go: serde's error would quote it.
    let row = json!({"name": "ops", "kind": "email", "url": url, "email": "smtp-PASSWORD"});
    let db = rusqlite::Connection::open(&server.db_path).unwrap();
    db.execute("UPDATE alert_channels SET body = ?1", [row.to_string()]).unwrap();
    let (status, channels) = admin(&server, Method::GET, "/api/alerts/channels", None).await;
    assert_eq!((status, channels), (StatusCode::OK, json!([])), "the row is skipped");
    let logs = server.logs();
    assert!(logs.contains("an alert setting row cannot be read"), "{logs}");
    for value in ["smtp-PASSWORD", "HANDEDITEDSECRET"] {
        assert!(!logs.contains(value), "the log shows {value}:\n{logs}");
    }
}
