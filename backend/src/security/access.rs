//! Who may read and who may clear, and which requests a browser page may make at all.
//!
//! - Reads (`GET /api/*`, `/ws`) are open, as in the seed, only while the backend listens on
//!   loopback and `READ_TOKEN` is unset. Otherwise they need a read or admin token, or a session
//!   made from one by `POST /api/session` (what the dashboard's login form does).
//! - Clearing and alert settings need `ADMIN_TOKEN` (or an admin session). Without it, the
//!   development API token counts as the admin token for requests from loopback.
//! - While anything is open (reads on loopback, or the development credentials), a request must
//!   name this machine in `Host`: a page on another site that rebinds its DNS name to 127.0.0.1
//!   would otherwise read the fleet or clear it from the operator's browser.
//! - A WebSocket upgrade from a page must come from an allowed origin: browsers apply no CORS to
//!   WebSockets.
//!
//! Sessions are `s2.<r|a>.<epoch>.<expiry>.<nonce>.<hmac>`, keyed by the token they were made
//! from, so every replica with the same tokens accepts them and changing the token ends them.
//! The epoch and nonce let [`super::sessions`] end them early: all at once, or one by one.

use super::Refused;
use super::constant_time_eq;
use super::sessions::Ended;
use crate::settings::Settings;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use protocol::{DEV_API_TOKEN, HEADER_TOKEN, Secret, codes};
use sha2::Sha256;

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

/// What a session says of itself, once its MAC is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    pub role: Role,
    pub epoch: i64,
    pub expires_s: i64,
    pub nonce: String,
}

impl Claims {
    /// When the session stops being good (unix ms): it is good through the second it expires in.
    pub(crate) fn good_until_ms(&self) -> i64 {
        self.expires_s.saturating_add(1).saturating_mul(1000)
    }
}

/// What the credentials a request carries prove.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checked {
    /// The strongest role proven.
    role: Option<Role>,
    /// The session that proved it, when no token did: the live feed closes when it ends.
    pub session: Option<Claims>,
    /// Some credential is neither a token nor a session this backend made: a guess, which the
    /// throttle counts (a session that expired or ended is not one).
    pub guessed: bool,
}

#[derive(Debug)]
pub(crate) struct Access {
    read_tokens: Vec<Secret>,
    admin_tokens: Vec<Secret>,
    /// Without `ADMIN_TOKEN` while the API token is the development default: that token, which
    /// counts as the admin token for requests from loopback.
    dev_admin: Vec<Secret>,
    reads_open: bool,
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

/// Every credential a request carries: `Authorization: Bearer`, `X-Api-Token` (the seed's
/// clients clear with it) and, from browsers opening `/ws`, the bearer subprotocol (see
/// [`protocol::live_auth`]).
pub(crate) fn credentials(headers: &HeaderMap) -> Vec<String> {
    let bearer = super::header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let offered = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(protocol::live_auth::credential);
    [bearer, super::header(headers, HEADER_TOKEN)]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .chain(offered)
        .collect()
}

impl Access {
    pub(crate) fn new(settings: &Settings) -> Self {
        let reads_open = settings.read_token.is_empty() && settings.loopback_only();
        let dev = settings.api_token.is_dev_default || settings.hmac_secret.is_dev_default;
        let mut allowed_hosts: Vec<String> = LOCAL_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        allowed_hosts.extend(settings.allowed_hosts.iter().map(|h| host_name(h)));
        let dev_admin = if settings.admin_token.is_empty() && settings.api_token.is_dev_default {
            vec![Secret::new(DEV_API_TOKEN)]
        } else {
            Vec::new()
        };
        Self {
            read_tokens: settings.read_token.clone(),
            admin_tokens: settings.admin_token.clone(),
            dev_admin,
            reads_open,
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
        let host = super::header(headers, "host").map(host_name).unwrap_or_default();
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
        let Some(origin) = super::header(headers, "origin") else { return Ok(()) };
        let same_origin = super::header(headers, "host").is_some_and(|host| {
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

    /// The tokens a role's credentials and sessions are checked against; the development admin
    /// token only for requests from loopback.
    fn keys(&self, role: Role, local: bool) -> &[Secret] {
        match role {
            Role::Read => &self.read_tokens,
            Role::Admin if !self.admin_tokens.is_empty() => &self.admin_tokens,
            Role::Admin if local => &self.dev_admin,
            Role::Admin => &[],
        }
    }

    fn token_role(&self, given: &str, local: bool) -> Option<Role> {
        let matches = |set: &[Secret]| {
            set.iter().any(|t| constant_time_eq(t.expose().as_bytes(), given.as_bytes()))
        };
        [Role::Admin, Role::Read].into_iter().find(|role| matches(self.keys(*role, local)))
    }

    /// The claims of a session this backend made, whatever its expiry; `None` for anything else.
    fn session_claims(&self, given: &str, local: bool) -> Option<Claims> {
        let mut parts = given.split('.');
        let (Some("s2"), Some(letter), Some(epoch), Some(expires), Some(nonce), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let role = [Role::Read, Role::Admin].into_iter().find(|r| r.letter() == letter)?;
        let claims = Claims {
            role,
            epoch: epoch.parse().ok()?,
            expires_s: expires.parse().ok()?,
            nonce: nonce.to_owned(),
        };
        let mac = hex::decode(mac).ok()?;
        self.keys(role, local)
            .iter()
            .any(|t| session_mac(t, &claims).verify_slice(&mac).is_ok())
            .then_some(claims)
    }

    /// What `given` (see [`credentials`]) proves for a request from loopback or not, at `now_s`
    /// and with the sessions `ended` has ended.
    pub(crate) fn check(
        &self,
        given: &[String],
        local: bool,
        now_s: i64,
        ended: &Ended,
    ) -> Checked {
        let mut checked = Checked::default();
        for credential in given {
            let (role, session) = if let Some(role) = self.token_role(credential, local) {
                (role, None)
            } else if let Some(claims) = self.session_claims(credential, local) {
                if claims.expires_s < now_s || ended.ends(&claims) {
                    continue;
                }
                (claims.role, Some(claims))
            } else {
                checked.guessed = true;
                continue;
            };
            // A token outranks a session of the same role: it does not end.
            if checked.role < Some(role) || (checked.role == Some(role) && session.is_none()) {
                checked.role = Some(role);
                checked.session = session;
            }
        }
        checked
    }

    /// Reads: open, or any credential.
    pub(crate) fn authorize_read(&self, checked: &Checked) -> Result<(), Refused> {
        if self.reads_open || checked.role.is_some() {
            return Ok(());
        }
        let hint = if self.read_tokens.is_empty() && self.admin_tokens.is_empty() {
            "reads need a credential when the backend listens beyond loopback; set READ_TOKEN"
        } else {
            "reads need a credential: send Authorization: Bearer <READ_TOKEN> or log in"
        };
        Err(Refused::LoginRequired(hint.into()))
    }

    /// Clearing and alert settings: the admin role.
    pub(crate) fn authorize_admin(&self, checked: &Checked) -> Result<(), Refused> {
        if checked.role == Some(Role::Admin) {
            return Ok(());
        }
        Err(Refused::Forbidden {
            code: codes::FORBIDDEN,
            detail: if self.admin_tokens.is_empty() {
                "clearing and alert settings need ADMIN_TOKEN: set it on the backend and send it \
                 as X-Api-Token (the API token agents send no longer clears)"
                    .into()
            } else {
                "clearing and alert settings need the admin token (X-Api-Token or \
                 Authorization: Bearer)"
                    .into()
            },
        })
    }

    /// Exchanges a read or admin token for a session of the same role in `epoch`.
    pub(crate) fn login(
        &self,
        given: &str,
        local: bool,
        now_s: i64,
        epoch: i64,
    ) -> Result<Session, Refused> {
        let Some(role) = self.token_role(given, local) else {
            return Err(Refused::LoginRequired("that is not a read or admin token".into()));
        };
        let key = self
            .keys(role, local)
            .iter()
            .find(|t| constant_time_eq(t.expose().as_bytes(), given.as_bytes()))
            .expect("token_role found it");
        let claims = Claims {
            role,
            epoch,
            expires_s: now_s.saturating_add(self.session_ttl_s),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
        };
        let mac = hex::encode(session_mac(key, &claims).finalize().into_bytes());
        Ok(Session {
            token: format!(
                "s2.{}.{}.{}.{}.{mac}",
                role.letter(),
                claims.epoch,
                claims.expires_s,
                claims.nonce
            ),
            role,
            expires_s: claims.expires_s,
        })
    }
}

fn session_mac(token: &Secret, claims: &Claims) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()).expect("any key length works");
    let Claims { role, epoch, expires_s, nonce } = claims;
    mac.update(format!("session.{}.{epoch}.{expires_s}.{nonce}", role.letter()).as_bytes());
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
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const NOW: i64 = 1_800_000_000;

    /// What `pairs` prove from loopback (or not) at `now_s`, with nothing ended.
    fn check(a: &Access, pairs: &[(&'static str, &str)], local: bool, now_s: i64) -> Checked {
        a.check(&credentials(&headers(pairs)), local, now_s, &Ended::default())
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn reads_are_open_only_on_loopback_without_a_read_token() {
        let open = access(true, &[], &[], true);
        assert!(open.authorize_read(&check(&open, &[], true, NOW)).is_ok());
        let lan = access(false, &["r1"], &[], false);
        let read =
            |pairs: &[(&'static str, &str)]| lan.authorize_read(&check(&lan, pairs, false, NOW));
        assert!(read(&[]).is_err());
        assert!(read(&[("authorization", "Bearer r1")]).is_ok());
        assert!(read(&[("authorization", "Bearer r2")]).is_err());
        assert!(check(&lan, &[("authorization", "Bearer r2")], false, NOW).guessed);
        let locked = access(true, &["r1"], &[], true);
        assert!(
            locked.authorize_read(&check(&locked, &[], true, NOW)).is_err(),
            "a READ_TOKEN always counts"
        );
        let none = access(false, &[], &[], false);
        assert!(matches!(
            none.authorize_read(&check(&none, &[], false, NOW)),
            Err(Refused::LoginRequired(hint)) if hint.contains("READ_TOKEN")
        ));
    }

    #[test]
    fn sessions_carry_their_role_until_they_expire() {
        let a = access(false, &["r1"], &["adm"], false);
        let read = a.login("r1", false, NOW, 0).unwrap();
        assert_eq!(read.role, Role::Read);
        assert!(read.token.starts_with("s2.r.0."), "{}", read.token);
        let h = bearer(&read.token);
        let checked = check(&a, &[("authorization", &h)], false, NOW);
        assert!(a.authorize_read(&checked).is_ok());
        assert_eq!(checked.session.as_ref().map(|c| c.expires_s), Some(read.expires_s));
        assert!(a.authorize_admin(&checked).is_err(), "a read session cannot clear");
        let expired = check(&a, &[("authorization", &h)], false, read.expires_s + 1);
        assert!(a.authorize_read(&expired).is_err(), "expired");
        assert!(!expired.guessed, "an expired session is not a guess");
        let admin = a.login("adm", false, NOW, 0).unwrap();
        let h = bearer(&admin.token);
        assert!(a.authorize_admin(&check(&a, &[("authorization", &h)], false, NOW)).is_ok());
        // Promoting a read session to admin by editing its letter breaks its MAC.
        let forged = read.token.replacen(".r.", ".a.", 1);
        let checked = check(&a, &[("authorization", &bearer(&forged))], false, NOW);
        assert!(a.authorize_admin(&checked).is_err() && checked.guessed);
        assert!(a.login("wrong", false, NOW, 0).is_err());
        assert!(a.login("", false, NOW, 0).is_err());
        // Two logins in the same second are two sessions.
        assert_ne!(a.login("r1", false, NOW, 0).unwrap().token, read.token);
    }

    #[test]
    fn a_browser_sends_its_session_as_a_subprotocol() {
        let a = access(false, &["r1"], &[], false);
        let session = a.login("r1", false, NOW, 0).unwrap();
        let offered = format!(
            "{}, {}",
            protocol::live_auth::PROTOCOL,
            protocol::live_auth::bearer(&session.token)
        );
        let checked = check(&a, &[("sec-websocket-protocol", &offered)], false, NOW);
        assert!(a.authorize_read(&checked).is_ok());
        assert!(checked.session.is_some());
        let plain =
            check(&a, &[("sec-websocket-protocol", protocol::live_auth::PROTOCOL)], false, NOW);
        assert!(a.authorize_read(&plain).is_err() && !plain.guessed);
    }

    #[test]
    fn clearing_needs_the_admin_token_or_the_development_token_from_loopback() {
        let prod = access(true, &[], &["adm"], false);
        let admin = |a: &Access, token: &str, local: bool| {
            a.authorize_admin(&check(a, &[("x-api-token", token)], local, NOW))
        };
        assert!(admin(&prod, "adm", true).is_ok());
        assert!(admin(&prod, "prod", true).is_err());
        let no_admin = access(true, &[], &[], false);
        assert!(admin(&no_admin, "prod", true).is_err());
        let dev = access(true, &[], &[], true);
        assert!(admin(&dev, "token", true).is_ok());
        assert!(admin(&dev, "token", false).is_err());
        // A login with it from loopback is an admin session, good from loopback only.
        let session = dev.login("token", true, NOW, 0).unwrap();
        assert_eq!(session.role, Role::Admin);
        assert!(dev.login("token", false, NOW, 0).is_err());
        let h = bearer(&session.token);
        assert!(dev.authorize_admin(&check(&dev, &[("authorization", &h)], true, NOW)).is_ok());
        assert!(dev.authorize_admin(&check(&dev, &[("authorization", &h)], false, NOW)).is_err());
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
