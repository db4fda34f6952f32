//! A hostile client on the LAN and a hostile page in the operator's browser, against the real
//! binary. Each case checks that the service keeps answering normal requests and loses nothing.

use crate::helpers::*;
use crate::live::{connect, next_json, wait_for_clients};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A normal ingest and read still work, and every batch acknowledged so far is stored.
pub(crate) async fn still_serves(server: &TestBackend, acknowledged: &mut i64) {
    let (status, body) = server.ingest(&batch("steady", 2)).await;
    assert_eq!((status, body["stored"].as_i64()), (StatusCode::OK, Some(3)), "{body}");
    *acknowledged += 3;
    let (status, _) = server.get("/api/events?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.count_rows("SELECT count(*) FROM events"), *acknowledged);
}

/// A request of our own to `addr`, byte for byte, for the cases reqwest would not send.
pub(crate) async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_step_that_overflowed_is_refused_and_reads_go_on() {
    let server = TestBackend::start();
    let mut acknowledged = 0;
    still_serves(&server, &mut acknowledged).await;
    for path in ["processes?name=x&", "series?"] {
        for _ in 0..6 {
            let url = format!("/api/agents/steady/{path}from=0&to=3600&step=2305843009213693952");
            let (status, err) = server.get(&url).await;
            assert_eq!(
                (status, err["code"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid"))
            );
        }
    }
    let (status, _) = server.get("/api/agents/steady/series").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.get("/readyz").await.0, StatusCode::OK);
    still_serves(&server, &mut acknowledged).await;
}

/// `n` connections to `addr`, every other one with half a request header sent: a slowloris.
pub(crate) async fn slowloris(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::new();
    for i in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-To").await.unwrap();
        }
        sockets.push(s);
    }
    sockets
}

/// Every socket is closed by the server (end of stream, or a reset) within 8 s: a header
/// timeout of 2 s with room for a busy machine, and well before our own deadline.
pub(crate) async fn all_closed_soon(sockets: &mut [TcpStream]) {
    let started = Instant::now();
    for s in sockets {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
}

#[tokio::test]
async fn half_sent_headers_and_idle_sockets_are_closed_while_others_are_served() {
    // All from one address here: its own cap (MAX_CONNECTIONS_PER_ADDRESS) is not what is tested.
    let server = TestBackend::start_with(&[
        ("HEADER_TIMEOUT", "2"),
        ("MAX_CONNECTIONS", "600"),
        ("MAX_CONNECTIONS_PER_ADDRESS", "600"),
    ]);
    let mut acknowledged = 0;
    let mut sockets = slowloris(server.addr, 500).await;
    still_serves(&server, &mut acknowledged).await;
    all_closed_soon(&mut sockets).await;
    still_serves(&server, &mut acknowledged).await;
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_for_a_slot_not_forever() {
    let server = TestBackend::start_with(&[("HEADER_TIMEOUT", "2"), ("MAX_CONNECTIONS", "20")]);
    let mut acknowledged = 0;
    let idle: Vec<TcpStream> = {
        let mut v = Vec::new();
        for _ in 0..20 {
            v.push(TcpStream::connect(server.addr).await.unwrap());
        }
        v
    };
    let started = Instant::now();
    still_serves(&server, &mut acknowledged).await;
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    drop(idle);
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_gets_408_within_the_body_timeout() {
    let server = TestBackend::start_with(&[("BODY_TIMEOUT", "2")]);
    let mut acknowledged = 0;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        format!(
            "POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\
             X-Api-Token: {TOKEN}\r\nContent-Type: application/json\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let drip = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if s.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), drip).await;
    let mut answer = vec![0u8; 512];
    let n =
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(6));
    still_serves(&server, &mut acknowledged).await;
}

#[tokio::test]
async fn websocket_upgrades_from_other_sites_are_refused() {
    let server = TestBackend::start();
    let upgrade = |origin: Option<&str>| {
        let mut req = server.ws_url("").into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    match upgrade(Some("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("an upgrade from another site must fail: {:?}", other.map(|_| ())),
    }
    assert!(upgrade(Some("http://localhost:1337")).await.is_ok(), "the dashboard's origin");
    assert!(upgrade(None).await.is_ok(), "a client that is not a browser");
}

#[tokio::test]
async fn with_the_development_credentials_another_host_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestBackend::start_without_credentials(&dir.path().join("t.db"), &[]);
    let dev = protocol::DEV_API_TOKEN;
    let body = seed_example();
    for (path, request) in [
        (
            "clear",
            format!(
                "POST /api/events/clear HTTP/1.1\r\nHost: evil.example:8000\r\nX-Api-Token: \
                 {dev}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            ),
        ),
        (
            "read",
            "GET /api/events HTTP/1.1\r\nHost: evil.example:8000\r\nConnection: close\r\n\r\n"
                .to_owned(),
        ),
    ] {
        let answer = raw(server.addr, &request).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{path}: {answer}");
        assert!(answer.contains("host_not_allowed"), "{path}: {answer}");
    }
    // The same requests naming this machine work, so the check is the Host and nothing else.
    let ts = now_secs().to_string();
    let sig = protocol::sign(protocol::DEV_HMAC_SECRET.as_bytes(), &ts, body.as_bytes());
    assert_eq!(server.post_signed(body.as_bytes(), dev, &ts, &sig).await.0, StatusCode::OK);
    let (status, cleared) = server.clear(Some(dev), "{}").await;
    assert_eq!((status, cleared["cleared"].as_i64()), (StatusCode::OK, Some(2)));
}

#[tokio::test]
async fn beyond_loopback_reads_need_a_credential_and_a_login_gives_one() {
    let server = TestBackend::start_with(&[("HOST", "0.0.0.0"), ("READ_TOKEN", "reader-5b9")]);
    server.ingest(&batch("a", 1)).await;
    let (status, err) = server.get("/api/agents").await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("login_required")));
    let login = |token: &'static str| {
        server
            .http
            .post(server.url("/api/session"))
            .json(&serde_json::json!({ "token": token }))
            .send()
    };
    assert_eq!(login("wrong").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login(TOKEN).await.unwrap().status(), StatusCode::UNAUTHORIZED, "not the API token");
    let session: serde_json::Value = login("reader-5b9").await.unwrap().json().await.unwrap();
    assert_eq!(session["role"], "read");
    let bearer = format!("Bearer {}", session["session"].as_str().unwrap());
    let rows = server.http.get(server.url("/api/events")).header("authorization", &bearer).send();
    assert_eq!(rows.await.unwrap().status(), StatusCode::OK);
    // A read session cannot clear; the admin token can.
    let resp = server
        .http
        .post(server.url("/api/events/clear"))
        .header("authorization", &bearer)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Browsers offer the session as a subprotocol of the WebSocket.
    assert!(tokio_tungstenite::connect_async(server.ws_url("")).await.is_err());
    let offered = crate::sessions::offer(session["session"].as_str().unwrap());
    assert!(crate::sessions::live(&server, &offered).await.is_ok());
    assert_eq!(server.clear(Some(ADMIN), "{}").await.0, StatusCode::OK);
}

#[tokio::test]
async fn oversized_and_garbage_websocket_frames_close_only_that_client() {
    let server = TestBackend::start_with(&[("WS_MAX_MESSAGE_BYTES", "4096")]);
    let mut acknowledged = 0;
    let mut good = connect(&server, "").await;
    let mut big = connect(&server, "").await;
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    wait_for_clients(&server, 2.0).await;
    let _ = big.send(Message::Text("x".repeat(1 << 20).into())).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = big.next().await {
            if msg.is_close() {
                break;
            }
        }
    });
    assert!(closed.await.is_ok(), "the oversized client is closed");
    // Not even a WebSocket handshake: bytes that parse as nothing.
    garbage.write_all(&[0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad]).await.unwrap();
    still_serves(&server, &mut acknowledged).await;
    for _ in 0..3 {
        assert_eq!(next_json(&mut good).await["agent_id"], "steady");
    }
}

#[tokio::test]
async fn live_clients_are_capped_and_a_slot_frees_when_one_leaves() {
    let server = TestBackend::start_with(&[("WS_MAX_CLIENTS", "2")]);
    let first = connect(&server, "").await;
    let _second = connect(&server, "").await;
    match tokio_tungstenite::connect_async(server.ws_url("")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        }
        other => panic!("a third client must be refused: {:?}", other.map(|_| ())),
    }
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio_tungstenite::connect_async(server.ws_url("")).await.is_err() {
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_live_client_that_never_reads_does_not_slow_ingest_or_lose_rows() {
    let server = TestBackend::start_with(&[("WS_CLIENT_BUFFER", "8")]);
    let mut acknowledged = 0;
    // Subscribed, then never read from again: its socket buffers fill.
    let _stalled = connect(&server, "").await;
    wait_for_clients(&server, 1.0).await;
    // About 9 MB of rows, more than the socket buffers between us hold.
    let started = Instant::now();
    for _ in 0..300 {
        let (status, body) = server.ingest(&batch("big", 99)).await;
        assert_eq!((status, body["stored"].as_i64()), (StatusCode::OK, Some(100)), "{body}");
        acknowledged += 100;
    }
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    still_serves(&server, &mut acknowledged).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("telemetry_ws_clients ") != 0.0 {
        assert!(Instant::now() < deadline, "the stalled client was never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = TestBackend::start_with(&[("MAX_CONNECTIONS_PER_ADDRESS", "10")]);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let health = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let answer = raw(server.addr, health).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"code\":\"too_many_connections\""), "{answer}");
    // Another address is served meanwhile: here another of this machine's loopback addresses.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = other.connect(server.addr).await.unwrap();
    s.write_all(health.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.unwrap().unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
    // A slot comes back as soon as one of the address's connections closes.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !raw(server.addr, health).await.starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "the address never got a slot back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let server = TestBackend::start_with(&[("WRITE_TIMEOUT", "2")]);
    let mut acknowledged = 0;
    for _ in 0..10 {
        let (status, _) = server.ingest(&batch("big", 99)).await;
        assert_eq!(status, StatusCode::OK);
        acknowledged += 100;
    }
    let request = "GET /api/events?limit=500 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let one = raw(server.addr, &request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")).await;
    // Far more than the sockets between us can buffer: the server's writes must wait for us.
    let asked = 300;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(server.addr).await.unwrap();
    s.write_all(request.repeat(asked).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(_) | Err(_))), "the server never closed the stalled connection");
    assert!(
        got.len() < one.len() * asked / 2,
        "{} of {} bytes: the server waited for the reader instead of cutting it off",
        got.len(),
        one.len() * asked
    );
    still_serves(&server, &mut acknowledged).await;
}

/// Sends a request's head announcing a 1 MiB body, and none of the body: the answer to read.
async fn head_only(server: &TestBackend, head: &str) -> String {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "{head}Host: 127.0.0.1\r\nContent-Length: 1048576\r\n\
         Content-Type: application/json\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer)).await;
    let n = read.expect("answered before the body was sent").unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn a_change_or_an_ingest_without_its_credential_is_refused_before_its_body_is_read() {
    let server = TestBackend::start_with(&[("BODY_TIMEOUT", "30")]);
    let mut acknowledged = 0;
    for (what, head, status, code) in [
        ("rule", "POST /api/alerts/rules HTTP/1.1\r\n", "403", "forbidden"),
        ("clear", "POST /api/events/clear HTTP/1.1\r\nX-Api-Token: wrong\r\n", "403", "forbidden"),
        ("revoke", "POST /api/session/revoke HTTP/1.1\r\n", "403", "forbidden"),
        ("ingest", "POST /api/ingest HTTP/1.1\r\nX-Api-Token: wrong\r\n", "401", "bad_token"),
    ] {
        let answer = head_only(&server, head).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{what}: {answer}");
        assert!(answer.contains(&format!("\"code\":\"{code}\"")), "{what}: {answer}");
    }
    assert_eq!(server.metric("telemetry_requests_refused_total{reason=\"bad_token\"}"), 1.0);
    // With the credential, the same head waits for its body.
    let head = format!("POST /api/alerts/rules HTTP/1.1\r\nX-Api-Token: {ADMIN}\r\n");
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let head = format!("{head}Host: 127.0.0.1\r\nContent-Length: 1048576\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_secs(2), s.read(&mut byte)).await;
    assert!(waited.is_err(), "an admin's body is waited for");
    still_serves(&server, &mut acknowledged).await;
}
