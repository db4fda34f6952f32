//! Requests as an agent sends them, for every suite that feeds a backend.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds by this machine's clock, as an agent stamps `X-Signature-Ts`.
pub fn now_secs() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("a clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

/// `POST {base}/api/ingest` with the given headers as they are (the security tests send broken
/// ones).
pub fn ingest_request(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    ts: &str,
    signature: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/api/ingest"))
        .header("content-type", "application/json")
        .header(protocol::HEADER_TOKEN, token)
        .header(protocol::HEADER_SIGNATURE_TS, ts)
        .header(protocol::HEADER_SIGNATURE, signature)
        .body(body)
}

/// The same, signed with `secret` at `ts` (unix seconds).
pub fn signed_ingest(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    secret: &str,
    ts: i64,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let ts = ts.to_string();
    let signature = protocol::sign(secret.as_bytes(), &ts, &body);
    ingest_request(http, base, token, &ts, &signature, body)
}
