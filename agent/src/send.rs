//! Delivering one batch body: signed anew for each attempt, and the answer classified.

use protocol::{ErrorBody, HEADER_SIGNATURE, HEADER_SIGNATURE_TS, HEADER_TOKEN, IngestResponse};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the backend's answer means for the queued batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Stored now, or already stored by an earlier attempt whose answer was lost.
    Stored { duplicate: bool },
    /// Not stored, worth retrying later: connection error, timeout, 5xx, 429.
    Retry(String),
    /// Refused for its credentials: retried a few times, since an admin may be fixing them.
    Unauthorized(String),
    /// Refused for its content: retrying would never help.
    Rejected(String),
}

/// How batches leave the machine.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, body: &[u8]) -> impl Future<Output = Delivery> + Send;
    /// A cheap question whether the backend answers at all, used while backing off.
    fn probe(&self) -> impl Future<Output = bool> + Send;
}

/// A signature's timestamp and the digest of the body it signed.
type Signed = (u64, [u8; 32]);

#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    ingest_url: String,
    health_url: String,
    token: String,
    secret: String,
    /// The timestamp and body digest of the last signature, see [`HttpTransport::timestamp`].
    last_signed: Arc<Mutex<Option<Signed>>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("ingest_url", &self.ingest_url)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    pub fn new(
        api_url: &str,
        token: &str,
        secret: &str,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let base = api_url.trim_end_matches('/');
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(concat!("telemetry-agent/", env!("CARGO_PKG_VERSION")))
                .build()?,
            ingest_url: format!("{base}/api/ingest"),
            health_url: format!("{base}/healthz"),
            token: token.to_owned(),
            secret: secret.to_owned(),
            last_signed: Arc::default(),
        })
    }

    /// Now, or one second past the last signature of this same body: the backend refuses a
    /// repeated signature as a replay, and a quick retry of a batch whose answer was lost would
    /// otherwise be signed identically within the same second, refused three times and set aside
    /// although it was stored. One second ahead is well within the backend's allowed drift.
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

/// The backend's reason, from its JSON error body when it has one.
fn reason(status: reqwest::StatusCode, text: &str) -> String {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(e) => format!("{status} {}: {}", e.code, e.detail),
        Err(_) => format!("{status}: {}", text.chars().take(200).collect::<String>()),
    }
}

/// Maps an HTTP answer to what the queue should do with the batch.
pub fn classify(status: reqwest::StatusCode, text: &str) -> Delivery {
    if status.is_success() {
        return match serde_json::from_str::<IngestResponse>(text) {
            Ok(r) => Delivery::Stored { duplicate: r.duplicate },
            // Stored or not, the backend said 2xx; treating it as stored avoids a loop on a
            // proxy that rewrites bodies, and a retry would be recognised by batch_id anyway.
            Err(_) => Delivery::Stored { duplicate: false },
        };
    }
    let why = reason(status, text);
    match status.as_u16() {
        429 | 500..=599 | 408 => Delivery::Retry(why),
        401 | 403 => Delivery::Unauthorized(why),
        _ => Delivery::Rejected(why),
    }
}

impl Transport for HttpTransport {
    async fn send(&self, body: &[u8]) -> Delivery {
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
                let status = resp.status();
                match resp.text().await {
                    Ok(text) => classify(status, &text),
                    // The answer was lost on the way: the batch may be stored; the retry is
                    // recognised by its batch_id, so retrying is safe.
                    Err(e) => Delivery::Retry(format!("reading the answer failed: {e}")),
                }
            }
            Err(e) => Delivery::Retry(format!("{e}")),
        }
    }

    async fn probe(&self) -> bool {
        matches!(self.client.get(&self.health_url).send().await, Ok(r) if r.status().is_success())
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

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify(StatusCode::OK, r#"{"stored":2}"#),
            Delivery::Stored { duplicate: false }
        );
        assert_eq!(
            classify(StatusCode::OK, r#"{"stored":0,"duplicate":true}"#),
            Delivery::Stored { duplicate: true }
        );
        for code in [429, 500, 502, 503, 504, 408] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(classify(status, ""), Delivery::Retry(_)), "{code}");
        }
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, r#"{"detail":"wrong API token","code":"bad_token"}"#),
            Delivery::Unauthorized(r) if r.contains("bad_token: wrong API token")
        ));
        for code in [400, 404, 413, 422] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(classify(status, "{}"), Delivery::Rejected(_)), "{code}");
        }
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
