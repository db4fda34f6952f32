//! Who may read and who may clear, and which requests a browser page may make at all.
//!
//! - Reads (`GET /api/*`, `/ws`) are open, as in the seed, only while the backend listens on
//!   loopback and `READ_TOKEN` is unset. Otherwise they need a read or admin token, or a session
//!   made from one by `POST /api/session` (what the dashboard's login form does).
//! - Clearing needs `ADMIN_TOKEN` (or an admin session). Without one, it is allowed only under
//!   the development rules: the development API token, sent from loopback.
//! - While anything is open (reads on loopback, or the development credentials), a request must
//!   name this machine in `Host`: a page on another site that rebinds its DNS name to 127.0.0.1
//!   would otherwise read the fleet or clear it from the operator's browser.
//! - A WebSocket upgrade from a page must come from an allowed origin: browsers apply no CORS to
//!   WebSockets.
//!
//! Sessions are stateless, `s1.<r|a>.<expiry>.<hmac>` keyed by the token they were made from, so
//! every replica with the same tokens accepts them, and changing the token ends them.

use super::Refused;
use super::{constant_time_eq, header, is_local};
use crate::settings::Settings;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use protocol::{DEV_API_TOKEN, HEADER_TOKEN, Secret, codes};
use sha2::Sha256;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    Read,
    Admin,
}

impl Role {
    fn letter(self) -> &'static str {
        match self {
            Role::Read => "r",
            Role::Admin => "a",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// A session made by a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub token: String,
    pub role: Role,
    pub expires_s: i64,
}

#[derive(Debug)]
pub(crate) struct Access {
    read_tokens: Vec<Secret>,
    admin_tokens: Vec<Secret>,
    reads_open: bool,
    /// The API token is the seed's development default.
    dev_api_token: bool,
    host_check: bool,
    /// Lower-case host names (no port) a request may name while something is open.
    allowed_hosts: Vec<String>,
    origins: Vec<String>,
    any_origin: bool,
    session_ttl_s: i64,
}

const LOCAL_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The host part of a `Host` header value, lower-cased: `Example:8000` is `example`.
fn host_name(value: &str) -> String {
    let value = value.trim().to_ascii_lowercase();
    if value.starts_with('[') {
        return value.split_inclusive(']').next().unwrap_or_default().to_owned();
    }
    value.split(':').next().unwrap_or_default().to_owned()
}

impl Access {
    pub(crate) fn new(settings: &Settings) -> Self {
        let reads_open = settings.read_token.is_empty() && settings.loopback_only();
        let dev = settings.api_token.is_dev_default || settings.hmac_secret.is_dev_default;
        let mut allowed_hosts: Vec<String> = LOCAL_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        allowed_hosts.extend(settings.allowed_hosts.iter().map(|h| host_name(h)));
        Self {
            read_tokens: settings.read_token.clone(),
            admin_tokens: settings.admin_token.clone(),
            reads_open,
            dev_api_token: settings.api_token.is_dev_default,
            host_check: reads_open || dev,
            allowed_hosts,
            origins: settings.cors_origins.iter().map(|o| o.trim().to_owned()).collect(),
            any_origin: settings.cors_origins.iter().any(|o| o == "*"),
            session_ttl_s: i64::try_from(settings.session_ttl.as_secs()).unwrap_or(i64::MAX / 2),
        }
    }

    /// Whether reads need a credential (the dashboard shows its login form when they do).
    pub(crate) fn reads_open(&self) -> bool {
        self.reads_open
    }

    pub(crate) fn check_host(&self, headers: &HeaderMap) -> Result<(), Refused> {
        if !self.host_check {
            return Ok(());
        }
        let host = header(headers, "host").map(host_name).unwrap_or_default();
        if self.allowed_hosts.contains(&host) {
            Ok(())
        } else {
            Err(Refused::Forbidden {
                code: codes::HOST_NOT_ALLOWED,
                detail: format!(
                    "Host {host:?} is not this machine's name; add it to ALLOWED_HOSTS if it is \
                     (checked while reads are open or the development credentials are in use)"
                ),
            })
        }
    }

    /// A page may open the live feed only from an allowed origin, or from the backend's own
    /// (a dashboard served behind the same proxy); clients that are not browsers send none.
    pub(crate) fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let Some(origin) = header(headers, "origin") else { return Ok(()) };
        let same_origin = header(headers, "host").is_some_and(|host| {
            origin.eq_ignore_ascii_case(&format!("http://{host}"))
                || origin.eq_ignore_ascii_case(&format!("https://{host}"))
        });
        if self.any_origin || same_origin || self.origins.iter().any(|o| o == origin) {
            Ok(())
        } else {
            Err(Refused::Forbidden {
                code: codes::ORIGIN_NOT_ALLOWED,
                detail: format!("origin {origin:?} is not in CORS_ORIGINS"),
            })
        }
    }

    /// The strongest role the request proves, from `Authorization: Bearer`, the
    /// `access_token` query parameter (browsers cannot set headers on a WebSocket) or, for
    /// the seed's clear, `X-Api-Token`.
    fn role_of(&self, headers: &HeaderMap, query_token: Option<&str>, now_s: i64) -> Option<Role> {
        let bearer = header(headers, "authorization")
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        [bearer, query_token, header(headers, HEADER_TOKEN)]
            .into_iter()
            .flatten()
            .filter_map(|given| self.token_role(given).or_else(|| self.session_role(given, now_s)))
            .max()
    }

    fn token_role(&self, given: &str) -> Option<Role> {
        let matches = |set: &[Secret]| {
            set.iter().any(|t| constant_time_eq(t.expose().as_bytes(), given.as_bytes()))
        };
        if matches(&self.admin_tokens) {
            Some(Role::Admin)
        } else if matches(&self.read_tokens) {
            Some(Role::Read)
        } else {
            None
        }
    }

    fn tokens_of(&self, role: Role) -> &[Secret] {
        match role {
            Role::Read => &self.read_tokens,
            Role::Admin => &self.admin_tokens,
        }
    }

    fn session_role(&self, given: &str, now_s: i64) -> Option<Role> {
        let mut parts = given.split('.');
        let (Some("s1"), Some(letter), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let role = [Role::Read, Role::Admin].into_iter().find(|r| r.letter() == letter)?;
        let expires_s: i64 = expires.parse().ok()?;
        if expires_s < now_s {
            return None;
        }
        let mac = hex::decode(mac).ok()?;
        self.tokens_of(role)
            .iter()
            .any(|t| session_mac(t, role, expires_s).verify_slice(&mac).is_ok())
            .then_some(role)
    }

    /// Reads: open, or any credential.
    pub(crate) fn authorize_read(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
        now_s: i64,
    ) -> Result<(), Refused> {
        if self.reads_open || self.role_of(headers, query_token, now_s).is_some() {
            return Ok(());
        }
        let hint = if self.read_tokens.is_empty() && self.admin_tokens.is_empty() {
            "reads need a credential when the backend listens beyond loopback; set READ_TOKEN"
        } else {
            "reads need a credential: send Authorization: Bearer <READ_TOKEN> or log in"
        };
        Err(Refused::LoginRequired(hint.into()))
    }

    /// Clearing: the admin role, or the development rules without `ADMIN_TOKEN`.
    pub(crate) fn authorize_admin(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        now_s: i64,
    ) -> Result<(), Refused> {
        if self.role_of(headers, None, now_s) == Some(Role::Admin) {
            return Ok(());
        }
        let dev_rules = self.admin_tokens.is_empty()
            && self.dev_api_token
            && is_local(peer, headers)
            && header(headers, HEADER_TOKEN)
                .is_some_and(|t| constant_time_eq(t.as_bytes(), DEV_API_TOKEN.as_bytes()));
        if dev_rules {
            return Ok(());
        }
        Err(Refused::Forbidden {
            code: codes::FORBIDDEN,
            detail: if self.admin_tokens.is_empty() {
                "clearing and alert settings need ADMIN_TOKEN: set it on the backend and send it as X-Api-Token \
                 (the API token agents send no longer clears)"
                    .into()
            } else {
                "clearing and alert settings need the admin token (X-Api-Token or Authorization: Bearer)".into()
            },
        })
    }

    /// Exchanges a read or admin token for a session of the same role.
    pub(crate) fn login(&self, given: &str, now_s: i64) -> Result<Session, Refused> {
        let Some(role) = self.token_role(given) else {
            return Err(Refused::LoginRequired("that is not a read or admin token".into()));
        };
        let expires_s = now_s.saturating_add(self.session_ttl_s);
        let key = self
            .tokens_of(role)
            .iter()
            .find(|t| constant_time_eq(t.expose().as_bytes(), given.as_bytes()))
            .expect("token_role found it");
        let mac = hex::encode(session_mac(key, role, expires_s).finalize().into_bytes());
        Ok(Session { token: format!("s1.{}.{expires_s}.{mac}", role.letter()), role, expires_s })
    }
}

fn session_mac(token: &Secret, role: Role, expires_s: i64) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()).expect("any key length works");
    mac.update(format!("session.{}.{expires_s}", role.letter()).as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn access(loopback: bool, read: &[&str], admin: &[&str], dev: bool) -> Access {
        let host = if loopback { "127.0.0.1" } else { "0.0.0.0" };
        let env = |k: &str| match k {
            "HOST" => Some(host.into()),
            "ALLOWED_HOSTS" => Some("telemetry.lan".into()),
            "READ_TOKEN" if !read.is_empty() => Some(read.join(",")),
            "ADMIN_TOKEN" if !admin.is_empty() => Some(admin.join(",")),
            "API_TOKEN" | "HMAC_SECRET" if !dev => Some("prod".into()),
            _ => None,
        };
        Access::new(&Settings::from_lookup(env).unwrap())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const LOCAL: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn reads_are_open_only_on_loopback_without_a_read_token() {
        assert!(access(true, &[], &[], true).authorize_read(&headers(&[]), None, NOW).is_ok());
        let lan = access(false, &["r1"], &[], false);
        assert!(lan.authorize_read(&headers(&[]), None, NOW).is_err());
        assert!(lan.authorize_read(&headers(&[("authorization", "Bearer r1")]), None, NOW).is_ok());
        assert!(lan.authorize_read(&headers(&[]), Some("r1"), NOW).is_ok());
        assert!(
            lan.authorize_read(&headers(&[("authorization", "Bearer r2")]), None, NOW).is_err()
        );
        let locked = access(true, &["r1"], &[], true);
        assert!(
            locked.authorize_read(&headers(&[]), None, NOW).is_err(),
            "a READ_TOKEN always counts"
        );
        let none = access(false, &[], &[], false);
        assert!(matches!(
            none.authorize_read(&headers(&[]), None, NOW),
            Err(Refused::LoginRequired(hint)) if hint.contains("READ_TOKEN")
        ));
    }

    #[test]
    fn sessions_carry_their_role_until_they_expire() {
        let a = access(false, &["r1"], &["adm"], false);
        let read = a.login("r1", NOW).unwrap();
        assert_eq!(read.role, Role::Read);
        let bearer = format!("Bearer {}", read.token);
        let h = headers(&[("authorization", &bearer)]);
        assert!(a.authorize_read(&h, None, NOW).is_ok());
        assert!(a.authorize_admin(&h, LOCAL, NOW).is_err(), "a read session cannot clear");
        assert!(a.authorize_read(&h, None, read.expires_s + 1).is_err(), "expired");
        let admin = a.login("adm", NOW).unwrap();
        assert!(
            a.authorize_admin(
                &headers(&[("authorization", &format!("Bearer {}", admin.token))]),
                LOCAL,
                NOW
            )
            .is_ok()
        );
        // Promoting a read session to admin by editing its letter breaks its MAC.
        let forged = read.token.replacen(".r.", ".a.", 1);
        assert!(
            a.authorize_admin(
                &headers(&[("authorization", &format!("Bearer {forged}"))]),
                LOCAL,
                NOW
            )
            .is_err()
        );
        assert!(a.login("wrong", NOW).is_err());
        assert!(a.login("", NOW).is_err());
    }

    #[test]
    fn clearing_needs_the_admin_token_or_the_development_rules() {
        let prod = access(true, &[], &["adm"], false);
        assert!(prod.authorize_admin(&headers(&[("x-api-token", "adm")]), LOCAL, NOW).is_ok());
        assert!(prod.authorize_admin(&headers(&[("x-api-token", "prod")]), LOCAL, NOW).is_err());
        let no_admin = access(true, &[], &[], false);
        assert!(
            no_admin.authorize_admin(&headers(&[("x-api-token", "prod")]), LOCAL, NOW).is_err()
        );
        let dev = access(true, &[], &[], true);
        assert!(dev.authorize_admin(&headers(&[("x-api-token", "token")]), LOCAL, NOW).is_ok());
        let lan_peer: SocketAddr = "192.168.1.9:5000".parse().unwrap();
        assert!(dev.authorize_admin(&headers(&[("x-api-token", "token")]), lan_peer, NOW).is_err());
    }

    #[test]
    fn hosts_are_checked_while_anything_is_open() {
        let dev = access(true, &[], &[], true);
        for ok in
            ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "telemetry.lan:8000"]
        {
            assert!(dev.check_host(&headers(&[("host", ok)])).is_ok(), "{ok}");
        }
        for bad in ["evil.example:8000", "127.0.0.1.evil.example", ""] {
            assert!(dev.check_host(&headers(&[("host", bad)])).is_err(), "{bad}");
        }
        assert!(dev.check_host(&headers(&[])).is_err());
        let closed = access(false, &["r"], &["a"], false);
        assert!(closed.check_host(&headers(&[("host", "anything.example")])).is_ok());
    }

    #[test]
    fn websocket_origins_must_be_allowed_or_the_backends_own() {
        let a = access(true, &[], &[], true);
        assert!(a.check_origin(&headers(&[])).is_ok(), "not a browser");
        assert!(a.check_origin(&headers(&[("origin", "http://localhost:1337")])).is_ok());
        assert!(a.check_origin(&headers(&[("origin", "https://evil.example")])).is_err());
        let proxied = headers(&[("origin", "http://dash.lan:1337"), ("host", "dash.lan:1337")]);
        assert!(a.check_origin(&proxied).is_ok());
    }
}
