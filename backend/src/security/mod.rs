//! Who may write: the API token, the HMAC signature, the timestamp window and the replay guard;
//! in [`access`], who may read and clear; in [`sessions`], which sessions ended early; and in
//! [`throttle`], how many wrong credentials a client may try.

pub(crate) mod access;
pub(crate) mod replay;
pub(crate) mod sessions;
pub(crate) mod throttle;

use crate::settings::{Credential, Settings};
use axum::http::HeaderMap;
use protocol::{HEADER_SIGNATURE, HEADER_SIGNATURE_TS, HEADER_TOKEN, SignatureError, codes};
use replay::{ReplayCheck, ReplayGuard, Signature};
use std::net::{IpAddr, SocketAddr};

/// Why an ingest request was refused as unauthorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    BadToken,
    BadSignature,
    StaleTimestamp,
    Replay,
}

impl AuthFailure {
    pub(crate) fn code(self) -> &'static str {
        match self {
            AuthFailure::BadToken => codes::BAD_TOKEN,
            AuthFailure::BadSignature => codes::BAD_SIGNATURE,
            AuthFailure::StaleTimestamp => codes::STALE_TIMESTAMP,
            AuthFailure::Replay => codes::REPLAY,
        }
    }
}

/// Why the checks refused a request; the HTTP edge turns it into its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("{detail}")]
    Unauthorized { reason: AuthFailure, detail: String },
    #[error("{0}")]
    LoginRequired(String),
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{0}")]
    Busy(String),
    #[error("too many wrong credentials from this address; retry in {retry_after_s} s")]
    Throttled { retry_after_s: u64 },
}

impl Refused {
    fn unauthorized(reason: AuthFailure, detail: impl Into<String>) -> Self {
        Refused::Unauthorized { reason, detail: detail.into() }
    }

    /// The machine-readable code clients and `/metrics` see.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refused::Unauthorized { reason, .. } => reason.code(),
            Refused::LoginRequired(_) => protocol::codes::LOGIN_REQUIRED,
            Refused::Forbidden { code, .. } => code,
            Refused::Busy(_) => protocol::codes::BUSY,
            Refused::Throttled { .. } => protocol::codes::LOGIN_THROTTLED,
        }
    }
}

/// A request that passed every check, with what the writer persists for the replay guard.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    pub signature: Signature,
    pub expires_ms: i64,
}

#[derive(Debug)]
pub(crate) struct Security {
    tokens: Credential,
    secrets: Credential,
    drift_ms: i64,
    pub replay: ReplayGuard,
    pub access: access::Access,
    pub logins: throttle::Throttle,
}

/// Equal-length inputs are compared without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request counts as local only when it comes over loopback and every address a proxy says it
/// forwarded for is loopback too: a proxy on the same host (nginx) would
/// otherwise make remote clients look local to the development-credentials rule. Proxies append
/// the real client, so a remote client cannot pass by sending the header itself.
pub(crate) fn is_local(peer: SocketAddr, headers: &HeaderMap) -> bool {
    let forwarded_for_loopback = headers.get_all("x-forwarded-for").iter().all(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .all(|a| a.trim().parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
        })
    });
    peer.ip().is_loopback() && forwarded_for_loopback && !headers.contains_key("forwarded")
}

/// The address wrong credentials are counted against: the peer's, or behind a proxy on this
/// host the client's that it appended to `X-Forwarded-For` (a client cannot choose it, since
/// the proxy appends after whatever the client sent).
pub(crate) fn client_ip(peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let forwarded = || {
        let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
        last.rsplit(',').next()?.trim().parse().ok()
    };
    if peer.ip().is_loopback() { forwarded().unwrap_or(peer.ip()) } else { peer.ip() }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) const REPLAY: &str = "this signed request was already received; sign each request anew";

const DEV_ONLY_LOOPBACK: &str = "the development credentials are accepted only over loopback; \
     set API_TOKEN and HMAC_SECRET on the backend and the agents";

impl Security {
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            tokens: settings.api_token.clone(),
            secrets: settings.hmac_secret.clone(),
            drift_ms: i64::try_from(settings.hmac_drift.as_millis()).unwrap_or(i64::MAX),
            replay: ReplayGuard::new(
                i64::try_from(settings.replay_ttl.as_millis()).unwrap_or(i64::MAX / 2),
                settings.replay_cache_max,
            ),
            access: access::Access::new(settings),
            logins: throttle::Throttle::new(settings.login_max_failures),
        }
    }

    /// The API token of `POST /api/ingest`, checked from the headers before the body is read.
    pub(crate) fn check_token(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<(), Refused> {
        let Some(given) = header(headers, HEADER_TOKEN) else {
            return Err(Refused::unauthorized(AuthFailure::BadToken, "missing X-Api-Token header"));
        };
        if !self
            .tokens
            .values
            .iter()
            .any(|t| constant_time_eq(t.expose().as_bytes(), given.as_bytes()))
        {
            return Err(Refused::unauthorized(AuthFailure::BadToken, "wrong API token"));
        }
        if self.tokens.is_dev_default && !is_local(peer, headers) {
            return Err(Refused::unauthorized(AuthFailure::BadToken, DEV_ONLY_LOOPBACK));
        }
        Ok(())
    }

    /// The checks of `POST /api/ingest` that need its body, after [`Security::check_token`],
    /// cheapest first; the replay guard last, so that only correctly signed requests ever take
    /// a place in it.
    pub(crate) fn verify_signature(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Verified, Refused> {
        let Some(ts) = header(headers, HEADER_SIGNATURE_TS) else {
            return Err(Refused::unauthorized(
                AuthFailure::StaleTimestamp,
                "missing X-Signature-Ts header",
            ));
        };
        let Ok(ts_secs) = ts.parse::<i64>() else {
            return Err(Refused::unauthorized(
                AuthFailure::StaleTimestamp,
                "X-Signature-Ts must be unix seconds",
            ));
        };
        let skew = ts_secs.saturating_mul(1000).saturating_sub(now_ms);
        if skew.saturating_abs() > self.drift_ms {
            return Err(Refused::unauthorized(
                AuthFailure::StaleTimestamp,
                format!(
                    "X-Signature-Ts is {}s from the server's clock (allowed: {}s); check the clock",
                    skew / 1000,
                    self.drift_ms / 1000
                ),
            ));
        }
        let Some(given) = header(headers, HEADER_SIGNATURE) else {
            return Err(Refused::unauthorized(
                AuthFailure::BadSignature,
                "missing X-Signature header",
            ));
        };
        let secrets: Vec<&[u8]> =
            self.secrets.values.iter().map(|s| s.expose().as_bytes()).collect();
        let signature = protocol::verify(&secrets, ts, body, given).map_err(|e| {
            let detail = match e {
                SignatureError::Malformed => "X-Signature must be 64 lowercase hex characters",
                SignatureError::Mismatch => "X-Signature does not match the body and timestamp",
            };
            Refused::unauthorized(AuthFailure::BadSignature, detail)
        })?;
        if self.secrets.is_dev_default && !is_local(peer, headers) {
            return Err(Refused::unauthorized(AuthFailure::BadSignature, DEV_ONLY_LOOPBACK));
        }
        match self.replay.check_and_insert(signature, now_ms) {
            (ReplayCheck::Fresh, expires_ms) => Ok(Verified { signature, expires_ms }),
            (ReplayCheck::Replay, _) => Err(Refused::unauthorized(AuthFailure::Replay, REPLAY)),
            (ReplayCheck::Full, _) => {
                Err(Refused::Busy("replay guard is full; retry in a few seconds".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;
    use std::time::Duration;

    fn security(dev: bool) -> Security {
        let cred = |v: &str| Credential { values: vec![Secret::new(v)], is_dev_default: dev };
        Security {
            tokens: cred("tok"),
            secrets: Credential {
                values: vec![Secret::new("old"), Secret::new("sec")],
                is_dev_default: dev,
            },
            drift_ms: Duration::from_secs(30).as_millis() as i64,
            replay: ReplayGuard::new(120_000, 100),
            access: access::Access::new(&Settings::from_lookup(|_| None).unwrap()),
            logins: throttle::Throttle::new(10),
        }
    }

    /// Both halves of the ingest checks, in the order the routes run them.
    fn verify(
        s: &Security,
        headers: &HeaderMap,
        peer: SocketAddr,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Verified, Refused> {
        s.check_token(headers, peer)?;
        s.verify_signature(headers, peer, body, now_ms)
    }

    fn headers(token: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_TOKEN, token.parse().unwrap());
        h.insert(HEADER_SIGNATURE_TS, ts.parse().unwrap());
        h.insert(HEADER_SIGNATURE, sig.parse().unwrap());
        h
    }

    const LOCAL: &str = "127.0.0.1:5000";
    const REMOTE: &str = "192.0.2.7:5000";

    fn code(r: Result<Verified, Refused>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn each_failure_names_its_reason() {
        let s = security(false);
        let now = 1_700_000_000_000;
        let body = b"{}";
        let sig = protocol::sign(b"sec", "1700000000", body);
        let peer = LOCAL.parse().unwrap();
        assert_eq!(
            code(verify(&s, &headers("nope", "1700000000", &sig), peer, body, now)),
            "bad_token"
        );
        assert_eq!(
            code(verify(&s, &headers("tok", "1700000031", &sig), peer, body, now)),
            "stale_timestamp"
        );
        assert_eq!(
            code(verify(&s, &headers("tok", "soon", &sig), peer, body, now)),
            "stale_timestamp"
        );
        assert_eq!(
            code(verify(&s, &headers("tok", "1700000000", &sig), peer, b"{ }", now)),
            "bad_signature"
        );
        assert_eq!(code(verify(&s, &headers("tok", "1700000000", &sig), peer, body, now)), "ok");
        assert_eq!(
            code(verify(&s, &headers("tok", "1700000000", &sig), peer, body, now)),
            "replay"
        );
        assert_eq!(code(verify(&s, &HeaderMap::new(), peer, body, now)), "bad_token");
    }

    #[test]
    fn failures_count_against_the_client_a_local_proxy_names_and_no_other() {
        let forwarded = |peer: &str, xff: &[&str]| {
            let mut h = HeaderMap::new();
            for v in xff {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            client_ip(peer.parse().unwrap(), &h).to_string()
        };
        assert_eq!(forwarded(REMOTE, &[]), "192.0.2.7");
        assert_eq!(forwarded(REMOTE, &["198.51.100.4"]), "192.0.2.7", "not from a proxy here");
        assert_eq!(forwarded(LOCAL, &[]), "127.0.0.1");
        // The proxy appends the address it saw after whatever the client sent itself.
        assert_eq!(forwarded(LOCAL, &["10.0.0.1", "198.51.100.4"]), "198.51.100.4");
        assert_eq!(forwarded(LOCAL, &["10.0.0.1, 198.51.100.4"]), "198.51.100.4");
        assert_eq!(forwarded(LOCAL, &["garbage"]), "127.0.0.1");
    }

    #[test]
    fn development_credentials_work_only_over_loopback() {
        let s = security(true);
        let now = 1_700_000_000_000;
        let sig = protocol::sign(b"old", "1700000000", b"{}");
        let h = headers("tok", "1700000000", &sig);
        assert_eq!(code(verify(&s, &h, REMOTE.parse().unwrap(), b"{}", now)), "bad_token");
        assert_eq!(code(verify(&s, &h, LOCAL.parse().unwrap(), b"{}", now)), "ok");
        assert!(security(false).check_token(&h, REMOTE.parse().unwrap()).is_ok());
        // Through a proxy on the same host the peer is loopback, but the client is not.
        let mut proxied = h.clone();
        proxied.insert("x-forwarded-for", "127.0.0.1, 198.51.100.4".parse().unwrap());
        assert_eq!(code(verify(&s, &proxied, LOCAL.parse().unwrap(), b"{}", now)), "bad_token");
        // A browser on the same machine behind the local dashboard server is still local.
        let mut local_browser = h.clone();
        local_browser.insert("x-forwarded-for", "127.0.0.1".parse().unwrap());
        let sig = protocol::sign(b"old", "1700000001", b"{}");
        let mut local_browser_fresh = headers("tok", "1700000001", &sig);
        local_browser_fresh.insert("x-forwarded-for", "127.0.0.1".parse().unwrap());
        assert!(s.check_token(&local_browser, LOCAL.parse().unwrap()).is_ok());
        assert_eq!(
            code(verify(&s, &local_browser_fresh, LOCAL.parse().unwrap(), b"{}", now)),
            "ok"
        );
    }
}
