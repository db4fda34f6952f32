//! Alert e-mail through a real SMTP server (Python's aiosmtpd, which `./ci/test.sh` installs):
//! the login, the message and its idempotency key, no plain-text fallback when STARTTLS is asked
//! for and the server does not offer it, and STARTTLS to a server of a private CA.

use crate::alerts::{post, send_cpu, wait_for};
use crate::helpers::*;
use harness::tls::{ServerCert, TestCa};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/support/smtp_server.py");

/// The SMTP server on a free port, and the messages it accepted (one JSON object each).
struct Smtp {
    port: u16,
    child: Child,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Smtp {
    /// With `tls`, the server requires STARTTLS and presents that certificate.
    fn start(tls: Option<&ServerCert>) -> Self {
        let mut args = vec![SERVER.to_owned(), "alerts".into(), "s3cret".into()];
        if let Some(pair) = tls {
            args.extend([&pair.cert, &pair.key].map(|p| p.to_string_lossy().into_owned()));
        }
        let mut child = Command::new("python3")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (the tests need Python 3 with aiosmtpd: pip install aiosmtpd)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let port = first.strip_prefix("ready ").and_then(|p| p.parse().ok());
        let port = port.expect("the SMTP server did not start: is aiosmtpd installed?");
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(serde_json::from_str(&line).unwrap());
            }
        });
        Self { port, child, got }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_firing_is_mailed_with_a_login_and_never_sent_in_plain_text_when_starttls_is_asked() {
    let server = TestBackend::start_with(&crate::alerts::fast_alerts());
    let smtp = Smtp::start(None);
    let email = |security: &str| {
        json!({"host": "127.0.0.1", "port": smtp.port, "security": security,
               "username": "alerts", "from": "Telemetry <alerts@example.com>",
               "to": ["ops@example.com", "db@example.com"]})
    };
    let plain = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "relay", "kind": "email", "secret": "s3cret", "email": email("none")}),
    )
    .await;
    let tls = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "tls", "kind": "email", "secret": "s3cret", "email": email("starttls")}),
    )
    .await;
    post(
        &server,
        "/api/alerts/rules",
        json!({"name": "gone", "metric": "proc_missing", "process": "sqlservr.exe",
               "severity": "critical", "window_s": 60, "channels": [plain["id"], tls["id"]]}),
    )
    .await;
    send_cpu(&server, "db-1", 0.1, 1).await;

    let mail =
        wait_for(&server, "the mail arrives", async || smtp.got.lock().unwrap().first().cloned())
            .await;
    assert_eq!(mail["login"], "alerts");
    assert_eq!(mail["to"], json!(["ops@example.com", "db@example.com"]));
    let data = mail["data"].as_str().unwrap();
    assert!(data.contains("Subject: Alert: gone on db-1"), "{data}");
    assert!(data.contains("sqlservr.exe is not running on db-1"), "{data}");
    let (_, deliveries) = server.get("/api/alerts/notifications").await;
    let by_channel = |id: &Value| {
        deliveries.as_array().unwrap().iter().find(|d| &d["channel_id"] == id).unwrap().clone()
    };
    let key = by_channel(&plain["id"])["idempotency_key"].as_str().unwrap().to_owned();
    assert!(data.contains(&format!("Message-ID: <{key}@telemetry-backend>")), "{data}");

    // The server offers no STARTTLS: that channel fails and says why, rather than sending the
    // password and the alert in the clear.
    let failed = wait_for(&server, "the STARTTLS channel reports its failure", async || {
        let (_, d) = server.get("/api/alerts/notifications").await;
        let tls_delivery = d
            .as_array()?
            .iter()
            .find(|d| d["channel_id"] == tls["id"] && d["last_error"].is_string())?;
        Some(tls_delivery.clone())
    })
    .await;
    assert!(failed["delivered_at"].is_null(), "{failed}");
    assert_eq!(smtp.got.lock().unwrap().len(), 1, "only the relay channel's mail arrived");
}

/// A server with a certificate of a private CA: mailed over STARTTLS when the channel trusts
/// that CA, refused (and said why) when it does not.
#[tokio::test]
async fn starttls_to_a_server_of_a_private_ca_is_trusted_only_with_its_certificate() {
    let server = TestBackend::start_with(&crate::alerts::fast_alerts());
    let authority = TestCa::new("telemetry test CA");
    let smtp = Smtp::start(Some(&authority.issue()));
    let ca = authority.pem();
    let email = |ca: Option<&str>| {
        json!({"host": "localhost", "port": smtp.port, "security": "starttls",
               "username": "alerts", "ca_pem": ca, "from": "alerts@example.com",
               "to": ["ops@example.com"]})
    };
    let trusted = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "private", "kind": "email", "secret": "s3cret", "email": email(Some(&ca))}),
    )
    .await;
    let unknown = post(
        &server,
        "/api/alerts/channels",
        json!({"name": "public roots", "kind": "email", "secret": "s3cret", "email": email(None)}),
    )
    .await;
    post(
        &server,
        "/api/alerts/rules",
        json!({"name": "gone", "metric": "proc_missing", "process": "sqlservr.exe",
               "window_s": 60, "channels": [trusted["id"], unknown["id"]]}),
    )
    .await;
    send_cpu(&server, "db-2", 0.1, 1).await;
    let mail = wait_for(&server, "the mail arrives over TLS", async || {
        smtp.got.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(mail["login"], "alerts", "logged in after STARTTLS");
    let refused = wait_for(&server, "the other channel says why it failed", async || {
        let (_, d) = server.get("/api/alerts/notifications").await;
        let row = d
            .as_array()?
            .iter()
            .find(|d| d["channel_id"] == unknown["id"] && d["last_error"].is_string())?
            .clone();
        Some(row)
    })
    .await;
    let error = refused["last_error"].as_str().unwrap();
    assert!(error.contains("certificate") || error.contains("Certificate"), "{error}");
    assert_eq!(smtp.got.lock().unwrap().len(), 1);
}
