//! A client of one backend's API, as the suites use it: signed ingest, reads, clearing and
//! `/metrics`, each answering the status and the JSON body.

use crate::signed::{ingest_request, now_secs, signed_ingest};
use protocol::IngestBatch;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Agents' token and signing secret, and the token that clears, for every test backend.
pub const TOKEN: &str = "test-token-7f3a";
/// See [`TOKEN`].
pub const SECRET: &str = "test-secret-91c2";
/// What clears: agents' API token does not.
pub const ADMIN: &str = "test-admin-4d81";
/// What reads when a test sets `READ_TOKEN` to it.
pub const READER: &str = "test-read-94b2";

/// The API of the backend at `addr`.
#[derive(Debug, Clone)]
pub struct Api {
    /// Where the backend listens.
    pub addr: SocketAddr,
    /// A client with a 30 s timeout, so a hung request fails the test instead of stalling it.
    pub http: reqwest::Client,
    /// Over HTTPS, trusting the test's CA.
    tls: bool,
}

impl Api {
    /// A client of the backend at `addr`, over plain HTTP.
    pub fn new(addr: SocketAddr) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Tests shorten the server's keep-alive (HEADER_TIMEOUT) to 2 s: a pooled connection
            // sent on just as the server closes it fails the request, a race no client can see
            // coming (and that a POST is not retried over). Idle connections go well before.
            .pool_idle_timeout(Duration::from_millis(500))
            .build();
        Self { addr, http: http.expect("a reqwest client"), tls: false }
    }

    /// A client of the backend serving HTTPS at `addr` with a certificate that `ca` (a PEM
    /// file) signed.
    pub fn https(addr: SocketAddr, ca: &Path) -> Self {
        Self { addr, http: crate::tls::client_trusting(ca), tls: true }
    }

    /// `http://addr{path}` (`https://` over TLS); `url("")` is the base that agents are given.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// `ws://addr/ws{query}` (`wss://` over TLS).
    pub fn ws_url(&self, query: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/ws{query}", self.addr)
    }

    /// Signs `body` with [`SECRET`] and a fresh timestamp and posts it.
    pub async fn ingest_raw(&self, body: &[u8]) -> (StatusCode, Value) {
        let request =
            signed_ingest(&self.http, &self.url(""), TOKEN, SECRET, now_secs(), body.to_vec());
        split(request.send().await.expect("POST /api/ingest")).await
    }

    /// [`Api::ingest_raw`] of the batch as JSON.
    pub async fn ingest(&self, batch: &IngestBatch) -> (StatusCode, Value) {
        self.ingest_raw(&serde_json::to_vec(batch).expect("a batch serializes")).await
    }

    /// Posts `body` with the given headers as they are (the security tests send broken ones).
    pub async fn post_signed(
        &self,
        body: &[u8],
        token: &str,
        ts: &str,
        sig: &str,
    ) -> (StatusCode, Value) {
        let request = ingest_request(&self.http, &self.url(""), token, ts, sig, body.to_vec());
        split(request.send().await.expect("POST /api/ingest")).await
    }

    /// `GET path` without credentials.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        split(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    /// `POST /api/events/clear` with `body`, and `token` as `X-API-Token` if given.
    pub async fn clear(&self, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url("/api/events/clear")).body(body.to_owned());
        if let Some(t) = token {
            req = req.header(protocol::HEADER_TOKEN, t);
        }
        split(req.send().await.expect("POST /api/events/clear")).await
    }

    /// The first `/metrics` sample whose line starts with `line_prefix`, such as
    /// `telemetry_batches_total{result="stored"}`. Every sample is printed from the start, so a
    /// missing one is a misspelt name and fails the test.
    ///
    /// A plain blocking GET, so that tests without a runtime (the CLI tests) read it too; the
    /// backends here never run on the caller's runtime, so waiting cannot stall them.
    pub fn metric(&self, line_prefix: &str) -> f64 {
        let text = self.get_text_blocking("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(line_prefix).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
    }

    /// The body of `GET path`, over a plain-HTTP connection of its own.
    pub fn get_text_blocking(&self, path: &str) -> String {
        assert!(!self.tls, "a blocking GET speaks plain HTTP only; use `get` over TLS");
        let mut s = TcpStream::connect(self.addr).expect("connect to the backend");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
        let addr = self.addr;
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .expect("send a GET");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read the answer");
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
    }
}

/// Signs and posts a batch from a load task, which holds only a client and the URL; true when
/// the backend acknowledged it.
pub async fn post_batch(http: &reqwest::Client, base: &str, batch: &IngestBatch) -> bool {
    let body = serde_json::to_vec(batch).expect("a batch serializes");
    let sent = signed_ingest(http, base, TOKEN, SECRET, now_secs(), body).send().await;
    matches!(sent, Ok(r) if r.status().is_success())
}

/// The status and the JSON body; a body that is not JSON fails the test, since every answer of
/// the API is.
pub async fn split(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("read the body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, value)
}
