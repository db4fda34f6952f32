//! HTTPS with a private CA made by openssl: served to clients of that CA only, within the same
//! connection limits as plain HTTP, renewed without a restart, and probed by `--healthcheck`.

use crate::helpers::*;
use harness::tls::{ServerCert, TestCa, client_trusting};
use reqwest::StatusCode;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `GET /healthz` on a connection of its own, trusting `ca` only (besides the public roots).
async fn healthz(server: &TestBackend, ca: &Path) -> Result<StatusCode, String> {
    let sent = client_trusting(ca).get(server.url("/healthz")).send().await;
    // The chain of causes: the certificate's fault is at its end.
    sent.map(|r| r.status()).map_err(|e| format!("{:?}", anyhow::Error::from(e)))
}

/// Asks `healthz` with `ca` until `done` says its outcome is the awaited one.
async fn until(
    server: &TestBackend,
    ca: &Path,
    what: &str,
    done: impl Fn(&Result<StatusCode, String>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = healthz(server, ca).await;
        if done(&outcome) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {outcome:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn https_serves_clients_of_the_ca_and_a_silent_client_holds_no_slot() {
    let ca = TestCa::new("telemetry test CA");
    let limits = [("HEADER_TIMEOUT", "1"), ("MAX_CONNECTIONS", "1")];
    let server = TestBackend::start_tls(&ca.cert, &ca.issue(), &limits);
    assert!(server.logs().contains(&format!("listening on https://{}", server.addr)));

    // The only slot, taken by a client that opens a connection and never says hello.
    let silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let (status, body) = server.ingest(&batch("tls-1", 2)).await;
    assert_eq!((status, body["stored"].as_i64()), (StatusCode::OK, Some(3)), "{body}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "the silent client had no slot: {waited:?}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    assert_eq!(server.count_rows("SELECT count(*) FROM events WHERE agent_id = 'tls-1'"), 3);
    drop(silent);

    let stranger = TestCa::new("another CA");
    let refused = healthz(&server, &stranger.cert).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    let plain = reqwest::get(format!("http://{}/healthz", server.addr)).await;
    assert!(plain.is_err(), "plain HTTP answered on the TLS port: {plain:?}");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let served = old_ca.issue();
    let server = TestBackend::start_tls(&old_ca.cert, &served, &[]);
    assert_eq!(healthz(&server, &old_ca.cert).await, Ok(StatusCode::OK));

    // Half a renewal: the new certificate beside the old key. The old pair stays in service.
    let renewed = new_ca.issue();
    let half = ServerCert { cert: renewed.cert.clone(), key: served.key.clone() };
    half.install_over(&served);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.logs().contains("still serving the previous certificate") {
        assert_eq!(healthz(&server, &old_ca.cert).await, Ok(StatusCode::OK));
        assert!(Instant::now() < deadline, "no warning about the bad pair:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.logs().contains("TLS_KEY does not fit TLS_CERT"), "{}", server.logs());
    assert_eq!(healthz(&server, &old_ca.cert).await, Ok(StatusCode::OK));

    renewed.install_over(&served);
    until(&server, &new_ca.cert, "the renewed certificate", |r| r == &Ok(StatusCode::OK)).await;
    let old = healthz(&server, &old_ca.cert).await.unwrap_err();
    assert!(old.contains("UnknownIssuer"), "{old}");
    assert!(server.logs().contains("serving the new certificate"), "{}", server.logs());
}

#[tokio::test]
async fn the_healthcheck_flag_probes_over_tls_when_the_backend_serves_it() {
    let ca = TestCa::new("telemetry test CA");
    let pair = ca.issue();
    let server = TestBackend::start_tls(&ca.cert, &pair, &[]);
    let probe = |tls: bool| {
        let mut probe = Command::new(env!("CARGO_BIN_EXE_backend"));
        probe.env_clear().args(["--healthcheck", "--host", "0.0.0.0"]);
        probe.args(["--port", &server.addr.port().to_string()]);
        if tls {
            probe.env("TLS_CERT", &pair.cert).env("TLS_KEY", &pair.key);
        }
        probe.status().unwrap()
    };
    assert!(probe(true).success());
    assert!(!probe(false).success(), "plain HTTP is no answer from a TLS port");
}

#[test]
fn a_pair_that_cannot_be_served_stops_the_start_with_the_reason() {
    let ca = TestCa::new("telemetry test CA");
    let (one, two) = (ca.issue(), ca.issue());
    let (status, err) = refused_start(&[
        ("PORT", "0".as_ref()),
        ("RUST_LOG", "off".as_ref()),
        ("TLS_CERT", one.cert.as_os_str()),
        ("TLS_KEY", two.key.as_os_str()),
    ]);
    assert!(!status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("backend: TLS_KEY does not fit TLS_CERT"), "{err}");
}

#[tokio::test]
async fn the_dashboard_door_serves_https_with_the_same_certificate() {
    let ca = TestCa::new("telemetry test CA");
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("index.html"), "<div id=\"main\"></div>").unwrap();
    let env = [("DASHBOARD_DIST", dist.path().to_str().unwrap())];
    let server = TestBackend::start_tls(&ca.cert, &ca.issue(), &env);
    let site = server.dashboard.as_ref().unwrap();
    assert!(server.logs().contains(&format!("dashboard on https://{}", site.addr)));
    let page = site.http.get(site.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(site.ingest(&batch("tls-door", 1)).await.0, StatusCode::OK);
    let plain = reqwest::get(format!("http://{}/", site.addr)).await;
    assert!(plain.is_err(), "plain HTTP answered on the dashboard's TLS door: {plain:?}");
}
