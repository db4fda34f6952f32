//! The dashboard's door (`DASHBOARD_DIST`, `DASHBOARD_ADDR`): the page and the whole API on a
//! second listener, as `./start.sh` runs it for a new user (development credentials). Every
//! attack that the API port refuses is refused here too, because it is the same router.

use crate::helpers::*;
use crate::hostile::{all_closed_soon, raw, slowloris, still_serves};
use reqwest::StatusCode;
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PAGE: &str = "<!doctype html><div id=\"main\"></div>";

/// A built dashboard, as far as serving it goes.
fn dist() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), PAGE).unwrap();
    std::fs::write(dir.path().join("app.js"), "export default 1;").unwrap();
    dir
}

/// The backend with the dashboard, like `./start.sh`: no credentials set.
fn as_start_sh_runs_it(dist: &tempfile::TempDir, db: &tempfile::TempDir) -> TestBackend {
    let dist = dist.path().to_str().unwrap();
    TestBackend::start_without_credentials(&db.path().join("t.db"), &[("DASHBOARD_DIST", dist)])
}

/// Signed with the development credentials, as an agent started by `./start.sh`'s hint does.
async fn ingest_dev(api: &harness::Api, batch: &protocol::IngestBatch) -> StatusCode {
    let body = serde_json::to_vec(batch).unwrap();
    let ts = now_secs().to_string();
    let sig = protocol::sign(protocol::DEV_HMAC_SECRET.as_bytes(), &ts, &body);
    api.post_signed(&body, protocol::DEV_API_TOKEN, &ts, &sig).await.0
}

fn door(server: &TestBackend) -> SocketAddr {
    server.dashboard.as_ref().expect("the dashboard door is open").addr
}

#[tokio::test]
async fn the_door_serves_the_page_deep_links_and_the_api_beside_them() {
    let (dist, db) = (dist(), tempfile::tempdir().unwrap());
    let server = as_start_sh_runs_it(&dist, &db);
    let site = server.dashboard.as_ref().unwrap();
    for path in ["/", "/agents/pc-01", "/events"] {
        let page = site.http.get(site.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        // No other site may frame the console and have its buttons clicked through.
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        assert_eq!(page.headers()["content-security-policy"], "frame-ancestors 'none'");
        assert_eq!(page.text().await.unwrap(), PAGE, "{path}");
    }
    let script = site.http.get(site.url("/app.js")).send().await.unwrap();
    assert_eq!(script.headers()["content-type"], "text/javascript");
    assert_eq!(ingest_dev(site, &batch("pc-01", 1)).await, StatusCode::OK);
    let (status, rows) = site.get("/api/events").await;
    assert_eq!((status, rows.as_array().map(Vec::len)), (StatusCode::OK, Some(2)));
    // The API port stays the API: an unknown path is a JSON 404 there, not the page.
    let (status, err) = server.get("/agents/pc-01").await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn a_page_rebinding_its_name_to_loopback_gets_nothing_through_the_door() {
    let (dist, db) = (dist(), tempfile::tempdir().unwrap());
    let server = as_start_sh_runs_it(&dist, &db);
    let site = server.dashboard.as_ref().unwrap();
    assert_eq!(ingest_dev(site, &batch("pc-01", 1)).await, StatusCode::OK);
    let dev = protocol::DEV_API_TOKEN;
    let host = format!("rebound.example:{}", door(&server).port());
    let channel = r#"{"name":"x","kind":"webhook","url":"http://10.0.0.1/"}"#;
    let body = seed_example();
    let ts = now_secs().to_string();
    let sig = protocol::sign(protocol::DEV_HMAC_SECRET.as_bytes(), &ts, body.as_bytes());
    for (what, request) in [
        ("read", format!("GET /api/events HTTP/1.1\r\nHost: {host}\r\n\r\n")),
        ("page", format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")),
        (
            "clear",
            format!(
                "POST /api/events/clear HTTP/1.1\r\nHost: {host}\r\nX-Api-Token: {dev}\r\n\
                 Content-Length: 2\r\n\r\n{{}}"
            ),
        ),
        (
            "channel",
            format!(
                "POST /api/alerts/channels HTTP/1.1\r\nHost: {host}\r\nX-Api-Token: {dev}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{channel}",
                channel.len()
            ),
        ),
        (
            "ingest",
            format!(
                "POST /api/ingest HTTP/1.1\r\nHost: {host}\r\nX-Api-Token: {dev}\r\n\
                 X-Signature-Ts: {ts}\r\nX-Signature: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        ),
    ] {
        let request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        let answer = raw(door(&server), &request).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{what}: {answer}");
        assert!(answer.contains("host_not_allowed"), "{what}: {answer}");
    }
    assert_eq!(server.count_rows("SELECT count(*) FROM events"), 2, "nothing cleared or forged");
    let channels = server.http.get(server.url("/api/alerts/channels")).header("x-api-token", dev);
    let (status, channels) = split(channels.send().await.unwrap()).await;
    assert_eq!((status, channels), (StatusCode::OK, serde_json::json!([])));
}

#[tokio::test]
async fn another_site_cannot_open_the_live_feed_through_the_door() {
    let (dist, db) = (dist(), tempfile::tempdir().unwrap());
    let server = as_start_sh_runs_it(&dist, &db);
    let site = server.dashboard.as_ref().unwrap();
    let upgrade = |origin: &str| {
        let mut req = site.ws_url("?alerts=1").into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    match upgrade("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("an upgrade from another site must fail: {:?}", other.map(|_| ())),
    }
    assert_eq!(server.metric("telemetry_ws_clients "), 0.0);
    // The page's own origin is the door's.
    let own = format!("http://{}", door(&server));
    assert!(upgrade(&own).await.is_ok(), "the dashboard's own page");
}

#[tokio::test]
async fn a_slowloris_at_the_door_is_cut_off_and_the_page_and_api_still_answer() {
    let (dist, db) = (dist(), tempfile::tempdir().unwrap());
    let dir = dist.path().to_str().unwrap();
    let server = TestBackend::start_on(
        &db.path().join("t.db"),
        &[
            ("DASHBOARD_DIST", dir),
            ("HEADER_TIMEOUT", "2"),
            ("MAX_CONNECTIONS", "300"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "400"),
        ],
    );
    let mut acknowledged = 0;
    // More than the door's cap: those past it wait in the kernel's backlog, not here.
    let mut sockets = slowloris(door(&server), 400).await;
    // Each door has its own cap: the API port is not starved by the dashboard's.
    still_serves(&server, &mut acknowledged).await;
    all_closed_soon(&mut sockets[..300]).await;
    drop(sockets);
    let site = server.dashboard.as_ref().unwrap();
    let page = site.http.get(site.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    still_serves(&server, &mut acknowledged).await;
}

#[tokio::test]
async fn a_door_beyond_loopback_closes_the_open_reads_on_both() {
    let dist = dist();
    let server = TestBackend::start_with(&[
        ("DASHBOARD_DIST", dist.path().to_str().unwrap()),
        ("DASHBOARD_ADDR", "0.0.0.0:0"),
    ]);
    let site = server.dashboard.as_ref().unwrap();
    for api in [&*server, site] {
        let (status, err) = api.get("/api/events").await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("login_required"))
        );
    }
}

#[test]
fn a_dist_without_the_app_stops_the_start_with_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let start = std::panic::catch_unwind(|| TestBackend::start_with(&[("DASHBOARD_DIST", dir)]));
    let why = start.expect_err("no index.html, no start");
    let why = why.downcast_ref::<String>().unwrap();
    assert!(why.contains("has no index.html") && why.contains("build-web.sh"), "{why}");
}
