//! Delivering one batch body: signed anew for each attempt, and the answer classified.

use crate::tls::Trust;
use protocol::{ErrorBody, HEADER_SIGNATURE, HEADER_SIGNATURE_TS, HEADER_TOKEN, IngestResponse};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the backend's answer means for the queued batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Stored now, or already stored by an earlier attempt whose answer was lost.
    Stored {
        /// An earlier attempt had stored it already.
        duplicate: bool,
    },
    /// Not stored (or not known to be), worth retrying later; the reason says what to check.
    Retry(String),
    /// Refused for this body's own content: retrying it would never help.
    Rejected(String),
}

/// How batches leave the machine.
pub trait Transport: Send + Sync + 'static {
    /// One attempt to deliver `body`, a batch's exact JSON.
    fn send(&self, body: &[u8]) -> impl Future<Output = Delivery> + Send;
    /// A cheap question whether the backend answers at all, used while backing off.
    fn probe(&self) -> impl Future<Output = bool> + Send;
}

/// A signature's timestamp and the digest of the body it signed.
type Signed = (u64, [u8; 32]);

/// The real transport: a signed `POST /api/ingest` per attempt, `GET /healthz` as the probe.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    ingest_url: String,
    health_url: String,
    token: String,
    secret: String,
    /// The timestamp and body digest of the last signature, see [`HttpTransport::timestamp`].
    last_signed: Arc<Mutex<Option<Signed>>>,
    /// What the backend last said it takes ([`protocol::HEADER_INGEST_LEVEL`]), so that a
    /// batch is never refused for a field an older backend lacks; [`UNHEARD`] until it answers.
    level: Arc<AtomicU8>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("ingest_url", &self.ingest_url)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A client for the backend at `api_url`; `timeout` bounds each request, connecting included.
    /// Over https:// it trusts the public roots only.
    pub fn new(
        api_url: &str,
        token: &str,
        secret: &str,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        Self::trusting(&Trust::default(), api_url, token, secret, timeout)
    }

    /// The same, trusting the CAs of `trust` besides the public roots.
    pub fn trusting(
        trust: &Trust,
        api_url: &str,
        token: &str,
        secret: &str,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let base = api_url.trim_end_matches('/');
        Ok(Self {
            client: trust
                .apply(reqwest::Client::builder())
                .timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(concat!("telemetry-agent/", env!("CARGO_PKG_VERSION")))
                // Following a redirect would turn the POST into a GET and carry the token to
                // whatever host the answer names; a redirect is a fault to report instead.
                .redirect(reqwest::redirect::Policy::none())
                // The backend closes a connection idle for HEADER_TIMEOUT (15 s by default); one
                // dropped sooner here is never reused just as the backend closes it.
                .pool_idle_timeout(Duration::from_secs(10))
                .build()?,
            ingest_url: format!("{base}/api/ingest"),
            health_url: format!("{base}/healthz"),
            token: token.to_owned(),
            secret: secret.to_owned(),
            last_signed: Arc::default(),
            level: Arc::new(AtomicU8::new(UNHEARD)),
        })
    }

    /// Now, or one second past the last signature of this same body: the backend refuses a
    /// repeated signature as a replay, and a quick retry of a batch whose answer was lost would
    /// otherwise be signed identically within the same second and refused, holding the queue up
    /// for a back-off although it was stored. One second ahead is well within the backend's
    /// allowed drift.
    fn timestamp(&self, body: &[u8]) -> u64 {
        let digest: [u8; 32] = Sha256::digest(body).into();
        let mut last = self.last_signed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ts = unix_now();
        if let Some((last_ts, last_digest)) = *last
            && last_digest == digest
            && ts <= last_ts
        {
            ts = last_ts + 1;
        }
        *last = Some((ts, digest));
        ts
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Text from an answer of unknown origin, short and on one line, fit for a log field.
fn excerpt(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// A request that got no answer, with its causes (reqwest's own text names only the URL), and
/// what to check when the backend's certificate was refused.
fn failure(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    if text.contains("certificate") {
        text.push_str(
            " (the backend's certificate was refused: CA_CERT must name the PEM file of the CA \
             that signed it, and API_URL a name the certificate holds)",
        );
    }
    text
}

/// Maps an HTTP answer to what the queue should do with the batch.
///
/// A batch is set aside only for an answer about this body and no other: 413 (its size, whoever
/// measured it), and 400 or 422 when they come in our backend's own error body. Every other
/// answer would be the same for every batch and is fixed outside the agent, so it is retried
/// with back-off for as long as it takes; setting batches aside on it would throw the whole
/// queue away while someone fixes the cause:
/// - 401 and 403: credentials being rotated, or a clock off after resume from sleep
///   (`stale_timestamp`);
/// - 404, 405 and the other 4xx: a proxy, a backend being upgraded, a wrong `API_URL`; 400 or
///   422 without our error body is such a proxy refusing the request, not the batch;
/// - 3xx, never followed: a wrong `API_URL` or a captive portal;
/// - 2xx without `{"stored": n}`: not our backend (a captive portal, a rewriting proxy), so
///   nothing says the batch was stored;
/// - 408, 429 and 5xx: the backend is busy or down.
pub(crate) fn classify(
    status: reqwest::StatusCode,
    location: Option<&str>,
    text: &str,
) -> Delivery {
    if status.is_success() {
        return match serde_json::from_str::<IngestResponse>(text) {
            Ok(r) => Delivery::Stored { duplicate: r.duplicate },
            Err(_) => Delivery::Retry(format!(
                "{status} without the backend's answer (a captive portal or a proxy?): {}",
                excerpt(text)
            )),
        };
    }
    if status.is_redirection() {
        return Delivery::Retry(format!(
            "{status} to {:?} not followed: check API_URL, or a captive portal is in the way",
            excerpt(location.unwrap_or_default())
        ));
    }
    let ours = serde_json::from_str::<ErrorBody>(text).ok();
    let why = match &ours {
        Some(e) => format!("{status} {}: {}", excerpt(&e.code), excerpt(&e.detail)),
        None => format!("{status}: {}", excerpt(text)),
    };
    match status.as_u16() {
        413 => Delivery::Rejected(why),
        400 | 422 if ours.is_some() => Delivery::Rejected(why),
        401 | 403 => Delivery::Retry(format!("{why} (check API_TOKEN, HMAC_SECRET and the clock)")),
        _ => Delivery::Retry(why),
    }
}

/// The level before the backend has answered anything; batches then go as to level 1.
const UNHEARD: u8 = 0;

/// The parts of a batch that are sent once, not with every batch: the list of services goes
/// again only when it changes, and each notice only once. Left out for a backend not yet heard
/// from, they would be lost, so such a batch waits for an answer to a probe first.
const SENT_ONCE: [&str; 2] = ["services", "notices"];

fn has_sent_once_parts(body: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(batch)) = serde_json::from_slice(body) else { return false };
    SENT_ONCE.iter().any(|part| batch.contains_key(*part))
}

/// The level a backend's answer states; 1 without the header (a backend from before it).
fn level_of(headers: &reqwest::header::HeaderMap) -> u8 {
    headers
        .get(protocol::HEADER_INGEST_LEVEL)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(1)
}

/// The body as a backend of `level` takes it: the queue keeps what was collected, so a backend
/// upgraded later gets everything from the batches still queued.
pub(crate) fn for_level(body: &[u8], level: u8) -> std::borrow::Cow<'_, [u8]> {
    if level >= protocol::INGEST_LEVEL {
        return body.into();
    }
    let unknown = protocol::LEVELLED_FIELDS.iter().filter(|(_, from)| level < *from);
    // Written by the agent's own serializer, so an object; anything else goes as it is.
    let Ok(serde_json::Value::Object(mut batch)) = serde_json::from_slice(body) else {
        return body.into();
    };
    let removed = unknown.filter(|(field, _)| batch.remove(*field).is_some()).count();
    if removed == 0 {
        return body.into();
    }
    serde_json::to_vec(&batch).map_or(body.into(), Into::into)
}

impl Transport for HttpTransport {
    async fn send(&self, body: &[u8]) -> Delivery {
        let mut level = self.level.load(Relaxed);
        if level == UNHEARD && has_sent_once_parts(body) {
            // Unanswered, the post would most likely fail the same way.
            if !self.probe().await && self.level.load(Relaxed) == UNHEARD {
                return Delivery::Retry(format!("{} did not answer", self.health_url));
            }
            level = self.level.load(Relaxed);
        }
        let body = for_level(body, level.max(1));
        let body = &body[..];
        let ts = self.timestamp(body).to_string();
        let signature = protocol::sign(self.secret.as_bytes(), &ts, body);
        let sent = self
            .client
            .post(&self.ingest_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_TOKEN, &self.token)
            .header(HEADER_SIGNATURE_TS, ts)
            .header(HEADER_SIGNATURE, signature)
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                self.level.store(level_of(resp.headers()), Relaxed);
                let status = resp.status();
                let location = resp.headers().get(reqwest::header::LOCATION).cloned();
                let location = location.as_ref().and_then(|l| l.to_str().ok());
                match resp.text().await {
                    Ok(text) => classify(status, location, &text),
                    // The answer was lost on the way: the batch may be stored; the retry is
                    // recognised by its batch_id, so retrying is safe.
                    Err(e) => Delivery::Retry(format!("reading the answer failed: {e}")),
                }
            }
            Err(e) => Delivery::Retry(failure(&e)),
        }
    }

    async fn probe(&self) -> bool {
        let Ok(r) = self.client.get(&self.health_url).send().await else { return false };
        self.level.store(level_of(r.headers()), Relaxed);
        r.status().is_success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[tokio::test]
    async fn quick_retries_of_one_batch_are_never_signed_alike() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(ResponseTemplate::new(503)).mount(&server).await;
        let transport =
            HttpTransport::new(&server.uri(), "t", "s", Duration::from_secs(5)).unwrap();
        for body in [&b"{\"a\":1}"[..], b"{\"a\":1}", b"{\"a\":1}", b"{\"b\":2}"] {
            transport.send(body).await;
        }
        let requests = server.received_requests().await.unwrap();
        let signatures: std::collections::HashSet<_> =
            requests.iter().map(|r| r.headers[HEADER_SIGNATURE].clone()).collect();
        assert_eq!(signatures.len(), 4, "a retry repeated a signature the backend would refuse");
        let ts: Vec<u64> = requests
            .iter()
            .map(|r| r.headers[HEADER_SIGNATURE_TS].to_str().unwrap().parse().unwrap())
            .collect();
        assert!(ts[3] <= unix_now() + 1, "another body is stamped with the time: {ts:?}");
    }

    /// A backend that does not say its level gets batches without `agent` (it would refuse
    /// them); once one says 2, they go whole.
    #[tokio::test]
    async fn the_agents_own_fields_go_only_to_a_backend_that_takes_them() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
        let body = br#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{"type":"metric"}],"agent":{"version":"0.1.0","uptime_s":5}}"#;
        let server = MockServer::start().await;
        let old = ResponseTemplate::new(200).set_body_string(r#"{"stored":1}"#);
        Mock::given(any()).respond_with(old).up_to_n_times(1).mount(&server).await;
        let new = ResponseTemplate::new(200)
            .set_body_string(r#"{"stored":1}"#)
            .insert_header(protocol::HEADER_INGEST_LEVEL, "2");
        Mock::given(any()).respond_with(new).mount(&server).await;
        let transport =
            HttpTransport::new(&server.uri(), "t", "s", Duration::from_secs(5)).unwrap();
        for _ in 0..3 {
            assert_eq!(transport.send(body).await, Delivery::Stored { duplicate: false });
        }
        let sent: Vec<serde_json::Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        let has_agent: Vec<bool> = sent.iter().map(|b| b.get("agent").is_some()).collect();
        // The first goes before anything is known; the second after a level-1 answer.
        assert_eq!(has_agent, [false, false, true]);
        assert_eq!(sent[0]["events"], sent[2]["events"], "only `agent` is left out");
    }

    /// Services and notices are not sent again: the first batch that has them asks the
    /// backend's level first instead of leaving them out, and waits while nothing answers.
    #[tokio::test]
    async fn parts_sent_once_wait_for_the_backends_level() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let body = br#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{"type":"metric"}],"services":[],"notices":[]}"#;
        let down = HttpTransport::new("http://127.0.0.1:9", "t", "s", Duration::from_secs(2));
        assert!(
            matches!(down.unwrap().send(body).await, Delivery::Retry(r) if r.contains("healthz"))
        );
        let server = MockServer::start().await;
        let level =
            |n: &str| ResponseTemplate::new(200).insert_header(protocol::HEADER_INGEST_LEVEL, n);
        Mock::given(path("/healthz")).respond_with(level("4")).mount(&server).await;
        let stored = level("4").set_body_string(r#"{"stored":1}"#);
        Mock::given(method("POST")).respond_with(stored).mount(&server).await;
        let transport =
            HttpTransport::new(&server.uri(), "t", "s", Duration::from_secs(5)).unwrap();
        for _ in 0..2 {
            assert_eq!(transport.send(body).await, Delivery::Stored { duplicate: false });
        }
        let requests = server.received_requests().await.unwrap();
        let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
        assert_eq!(paths, ["/healthz", "/api/ingest", "/api/ingest"], "asked once");
        assert_eq!(requests[1].body, body, "sent whole");
    }

    #[test]
    fn each_level_gets_the_fields_it_takes() {
        let body = br#"{"agent_id":"a","agent":{"version":"1","uptime_s":1},"drives":[],"host":{"cores":[0.5]},"services":[],"notices":[]}"#;
        let keys = |body: &[u8], level| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_slice(&for_level(body, level)).unwrap();
            v.as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(keys(body, 1), ["agent_id"]);
        assert_eq!(keys(body, 2), ["agent", "agent_id"]);
        assert_eq!(keys(body, 3), ["agent", "agent_id", "drives"]);
        let all = ["agent", "agent_id", "drives", "host", "notices", "services"];
        assert_eq!(keys(body, 4), all);
        assert_eq!(protocol::INGEST_LEVEL, 4, "a new level needs a line above");
        let borrowed =
            |body, level| matches!(for_level(body, level), std::borrow::Cow::Borrowed(_));
        assert!(borrowed(body, 4), "sent as queued");
        // Without the newer parts (a batch queued by an older agent), nothing to take out.
        assert!(borrowed(br#"{"agent_id":"a","drives":[]}"#, 3));
    }

    fn answer(code: u16, text: &str) -> Delivery {
        classify(StatusCode::from_u16(code).unwrap(), None, text)
    }

    const INVALID: &str = r#"{"detail":"events must not be empty","code":"invalid"}"#;

    #[test]
    fn only_the_backends_acknowledgement_counts_as_stored() {
        assert_eq!(answer(200, r#"{"stored":2}"#), Delivery::Stored { duplicate: false });
        assert_eq!(
            answer(200, r#"{"stored":0,"duplicate":true}"#),
            Delivery::Stored { duplicate: true }
        );
        for text in ["<html>Sign in to the hotel Wi-Fi</html>", "", "{}", r#"{"stored":-1}"#] {
            assert!(matches!(answer(200, text), Delivery::Retry(_)), "{text:?}");
        }
        assert!(matches!(answer(204, ""), Delivery::Retry(_)));
    }

    #[test]
    fn transient_and_configuration_answers_are_retried() {
        let stale = r#"{"detail":"timestamp too far from server time","code":"stale_timestamp"}"#;
        assert!(matches!(
            answer(401, stale),
            Delivery::Retry(r) if r.contains("stale_timestamp") && r.contains("the clock")
        ));
        for code in [301, 302, 307, 308, 401, 403, 404, 405, 408, 415, 429, 500, 502, 503, 504] {
            assert!(matches!(answer(code, ""), Delivery::Retry(_)), "{code}");
        }
        assert!(matches!(
            classify(StatusCode::FOUND, Some("http://portal.example/login"), "<html>"),
            Delivery::Retry(r) if r.contains("portal.example") && r.contains("API_URL")
        ));
    }

    #[test]
    fn only_answers_about_this_body_reject_it() {
        for code in [400, 422] {
            assert!(
                matches!(answer(code, INVALID), Delivery::Rejected(r) if r.contains("invalid: events")),
                "{code}"
            );
            // Not our backend's error body: a proxy refusing the request, not this batch.
            assert!(
                matches!(answer(code, "<html>Bad Request</html>"), Delivery::Retry(_)),
                "{code}"
            );
        }
        assert!(matches!(
            answer(413, "<html>Request Entity Too Large</html>"),
            Delivery::Rejected(_)
        ));
    }

    #[test]
    fn an_answer_of_unknown_origin_logs_on_one_line() {
        let Delivery::Retry(why) = answer(200, "line one\nline two\r\u{1b}[31m") else {
            panic!("a 2xx without an acknowledgement was not retried");
        };
        assert!(!why.chars().any(char::is_control), "{why:?}");
    }

    /// What the agent sends is exactly what the backend verifies: the signature is the HMAC of
    /// `ts + "." + body` for the timestamp header sent with it.
    #[tokio::test]
    async fn requests_are_signed_as_the_backend_verifies() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/ingest"))
            .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"stored":2}"#))
            .mount(&server)
            .await;
        let transport =
            HttpTransport::new(&server.uri(), "tok", "sec", Duration::from_secs(5)).unwrap();
        let body = include_bytes!("../../protocol/testdata/payloads/seed_example.json");
        assert_eq!(transport.send(body).await, Delivery::Stored { duplicate: false });
        let request = &server.received_requests().await.unwrap()[0];
        let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("x-api-token"), "tok");
        assert_eq!(request.body, body);
        let ts = header("x-signature-ts");
        assert!(protocol::verify(&["sec"], &ts, &request.body, &header("x-signature")).is_ok());
    }

    #[tokio::test]
    async fn an_unreachable_backend_is_retried_not_rejected() {
        let transport =
            HttpTransport::new("http://127.0.0.1:9", "t", "s", Duration::from_secs(2)).unwrap();
        assert!(matches!(transport.send(b"{}").await, Delivery::Retry(_)));
        assert!(!transport.probe().await);
    }
}
