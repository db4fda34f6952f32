use crate::helpers::*;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(server: &TestBackend, query: &str) -> Ws {
    tokio_tungstenite::connect_async(server.ws_url(query)).await.unwrap().0
}

/// Waits until the server counts `n` clients: from then on each of them is subscribed.
pub(crate) async fn wait_for_clients(server: &TestBackend, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("telemetry_ws_clients ") != n {
        assert!(Instant::now() < deadline, "clients never reached {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a live message in time")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn rows_and_clears_are_pushed_with_the_agent_filter() {
    let server = TestBackend::start();
    let mut all = connect(&server, "").await;
    let mut only_a = connect(&server, "?agent_id=a").await;
    wait_for_clients(&server, 2.0).await;

    server.ingest(&batch("b", 1)).await;
    server.ingest(&batch("a", 1)).await;
    let (_, rows) = server.get("/api/events?limit=4").await;
    let mut pushed = Vec::new();
    for _ in 0..4 {
        pushed.push(next_json(&mut all).await);
    }
    pushed.reverse();
    // Same rows, same shape, same order as the REST API.
    assert_eq!(Value::Array(pushed), rows);
    assert_eq!(next_json(&mut only_a).await["agent_id"], "a");
    assert_eq!(next_json(&mut only_a).await["agent_id"], "a");

    assert_eq!(server.clear(Some(ADMIN), r#"{"agent_id":"b"}"#).await.0, StatusCode::OK);
    assert_eq!(next_json(&mut all).await, serde_json::json!({"type": "clear", "agent_id": "b"}));
    server.clear(Some(ADMIN), "").await;
    assert_eq!(next_json(&mut all).await, serde_json::json!({"type": "clear", "agent_id": null}));
    // The filtered client skips b's clear but gets the clear of everything.
    assert_eq!(
        next_json(&mut only_a).await,
        serde_json::json!({"type": "clear", "agent_id": null})
    );
}

/// A client that completes the handshake and then never reads, with a tiny receive buffer.
async fn never_reading_client(server: &TestBackend) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    stream
}

#[tokio::test]
async fn a_slow_client_is_closed_and_the_others_get_every_row() {
    const READERS: usize = 50;
    const BATCHES: usize = 40;
    const EVENTS: usize = 1000;
    let server = TestBackend::start_with(&[("WS_CLIENT_BUFFER", "16")]);
    let _slow = never_reading_client(&server).await;
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut ws = connect(&server, "").await;
        readers.push(tokio::spawn(async move {
            let mut rows = 0;
            while rows < BATCHES * EVENTS {
                match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => rows += 1,
                    Ok(Some(Ok(_))) => {}
                    other => panic!("reader stopped after {rows} rows: {other:?}"),
                }
            }
            rows
        }));
    }
    wait_for_clients(&server, (READERS + 1) as f64).await;

    // Long process names make rows large, so the slow client's socket fills quickly.
    let mut slowest = Duration::ZERO;
    for _ in 0..BATCHES {
        let mut b = batch("busy", 0);
        let metric = b.events[0].clone();
        b.events = (0..EVENTS)
            .map(|i| {
                if i == 0 {
                    metric.clone()
                } else {
                    protocol::Event::process(i as u32, format!("{i:0>250}"), 0.001, 1)
                }
            })
            .collect();
        let started = Instant::now();
        let (status, _) = server.ingest(&b).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, StatusCode::OK);
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), BATCHES * EVENTS);
    }
    // The stuck client is dropped once it lags the whole buffer or its send times out.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("telemetry_ws_slow_closed_total") < 1.0 {
        assert!(Instant::now() < deadline, "the slow client was never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ingest never waited on the stuck client.
    assert!(slowest < Duration::from_secs(3), "slowest ingest took {slowest:?}");
}
